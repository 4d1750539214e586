"""INT8 export: files and interfaces, per-weight decisions from measured error, the Loop text GRU,
checks that fail hard, and the ort-int8 backend in validate and triton-repo."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from export_helpers import tiny_model

from vsrn_deploy.artifacts.export import read_export_manifest as read_manifest
from vsrn_deploy.artifacts.export import verify_listed_files as verify_files
from vsrn_deploy.core.contract import PARITY, onnx_name
from vsrn_deploy.core.errors import CheckFailed
from vsrn_deploy.data.synthetic_inputs import captions, region_features, text_feed
from vsrn_deploy.export import ExportConfig, export_loaded, graphs, int8
from vsrn_deploy.model.deploy import ImageEncoderDeploy, TextEncoderDeploy

pytestmark = pytest.mark.export


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _raw_outputs(model: onnx.ModelProto, feed: dict) -> list[np.ndarray]:
    """Every output of an in-memory graph in a plain session: the runners refuse lengths below 1,
    which the graphs themselves must clamp as the GRU node does."""
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)


def test_all_writes_int8_graphs_with_the_contract_interfaces(exported):
    assert exported["result"].exit_code == 0, exported["result"].output
    out = exported["out"]
    fp32 = {g: _session(out / onnx_name(g)) for g in ("image_encoder", "text_encoder")}
    for graph in ("image_encoder", "text_encoder"):
        q = _session(out / onnx_name(graph, "int8"))
        for kind in ("get_inputs", "get_outputs"):
            want = [(t.name, t.type, len(t.shape)) for t in getattr(fp32[graph], kind)()]
            assert [(t.name, t.type, len(t.shape)) for t in getattr(q, kind)()] == want
    ops = {n.op_type for n in onnx.load(str(out / "image_encoder.int8.onnx")).graph.node}
    assert "MatMulInteger" in ops and not ops & {"GRU", "Loop", "Scan"}
    text_ops = {n.op_type for n in onnx.load(str(out / "text_encoder.int8.onnx")).graph.node}
    assert "Loop" in text_ops and "GRU" not in text_ops


def test_manifest_records_settings_decisions_and_checks(exported):
    out = exported["out"]
    manifest = read_manifest(out)
    verify_files(out, manifest)
    assert manifest["graphs"]["image_encoder"]["int8"] == "image_encoder.int8.onnx"
    assert manifest["graphs"]["text_encoder"]["int8"] == "text_encoder.int8.onnx"
    entry = manifest["int8"]
    assert entry["settings"]["per_channel"] is True and "dynamic" in entry["settings"]["activations"]
    assert entry["settings"]["cosine_budget"] == pytest.approx(1 - PARITY["int8"].min_cosine)
    image = entry["graphs"]["image_encoder"]
    names = {n.name for n in onnx.load(str(out / "image_encoder.onnx")).graph.node}
    # every weight group was measured and decided, with the reason recorded
    assert set(image["groups"]) >= {"fc.weight", "gcn1.qkv.weight", int8.MERGED_WH}
    for group in image["groups"].values():
        assert isinstance(group["loss"], float) and isinstance(group["int8"], bool) and group["reason"]
    # the activation x activation matmuls stay FP32 by policy, named by node
    assert {"gcn1/affinity/MatMul", "gcn1/aggregate/MatMul"} <= set(image["fp32_nodes"])
    assert set(image["fp32_nodes"]) <= names
    assert image["calibration_loss"] <= entry["settings"]["total_limit"]
    text = entry["graphs"]["text_encoder"]
    assert set(text["groups"]) == {"rnn/l0.W", "rnn/l0.R"} and "Loop" in text["form"]
    results = manifest["parity"]["results"]
    for key, output in (("image_encoder.int8.onnx/ort", "image_embedding"),
                        ("image_encoder.int8.onnx/ort", "region_embeddings"),
                        ("text_encoder.int8.onnx/ort", "text_embedding")):
        assert results[key][output]["min_cosine"] >= PARITY["int8"].min_cosine
    retrieval = manifest["parity"]["retrieval"]["ort-int8"]
    assert retrieval["top1_agreement"] >= PARITY["int8"].top1
    assert retrieval["near_tie"] == PARITY["int8"].near_tie


def test_int8_text_graph_keeps_the_token_axis_dynamic(exported):
    model = exported["model"]
    q = _session(exported["out"] / "text_encoder.int8.onnx")
    ids, lengths = text_feed(captions(6, model.config.vocab_size, max_tokens=45, seed=7)).values()  # long
    got = q.run(None, {"token_ids": ids, "lengths": lengths})[0]
    with torch.no_grad():
        ref = model.txt_enc(torch.from_numpy(ids), torch.from_numpy(lengths)).numpy()
    cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() >= PARITY["int8"].min_cosine


@pytest.mark.parametrize("layers", [1, 2])
def test_loop_gru_equals_the_gru_node_and_quantizes_both_matrices(layers):
    model = tiny_model(3, text_layers=layers, use_abs=True)
    fp32 = graphs.build_text_graph(TextEncoderDeploy.from_encoder(model.txt_enc))
    feed = text_feed(captions(9, model.config.vocab_size, max_tokens=14, seed=2))
    ref = int8.run_all(fp32, "text", [feed])
    loop = int8.build_text_loop(fp32)
    onnx.checker.check_model(loop, full_check=True)
    np.testing.assert_allclose(int8.run_all(loop, "text", [feed])[0]["text_embedding"],
                               ref[0]["text_embedding"], atol=1e-6)
    zero = {**feed, "lengths": feed["lengths"].copy()}
    zero["lengths"][0] = 0  # counted as 1, like the GRU node's clamp
    np.testing.assert_allclose(_raw_outputs(loop, zero)[0], _raw_outputs(fp32, zero)[0], atol=1e-6)
    groups = int8.text_weight_groups(fp32)
    assert len(groups) == 2 * layers
    q = int8.build_text_loop(fp32, groups)
    assert sum(n.op_type == "MatMulInteger" for n in q.graph.node) == 1  # layer 0 input, before the loop
    body = next(n for n in q.graph.node if n.op_type == "Loop").attribute[0].g
    assert sum(n.op_type == "MatMulInteger" for n in body.node) == 2 * layers - 1
    assert 0 < int8.output_loss(ref, int8.run_all(q, "text", [feed])) < 1e-3


@pytest.mark.parametrize("pool, regions", [("gru", 6), ("mean", 6), ("gru", 1)])
def test_merge_recurrent_makes_one_matmul_per_gru_step_with_the_same_outputs(pool, regions):
    model = tiny_model(4, img_pool=pool, num_regions=regions)
    fp32 = graphs.build_image_graph(ImageEncoderDeploy.from_encoder(model.img_enc))
    merged = int8.merge_recurrent(fp32)
    onnx.checker.check_model(merged, full_check=True)
    feed = [{"region_features": region_features(5, model.config.num_regions, model.config.img_dim, seed=3)}]
    ref, got = int8.run_all(fp32, "image", feed)[0], int8.run_all(merged, "image", feed)[0]
    assert set(ref) == set(got) == {"image_embedding", "region_embeddings"}
    for name, a in ref.items():
        np.testing.assert_allclose(got[name], a, atol=1e-6)
    steps = regions - 1 if pool == "gru" else 0  # h0 = 0: the first step has none
    if steps == 0:  # mean pooling, or one region: nothing to merge
        assert merged.SerializeToString() == fp32.SerializeToString()
        return
    weights = [n.input[1] for n in merged.graph.node if n.op_type == "MatMul"]
    inits = {i.name for i in merged.graph.initializer}
    assert graphs.GRU_WH_RZ not in weights + list(inits) and graphs.GRU_WH_N not in weights + list(inits)
    assert weights.count(int8.MERGED_WH) == steps
    groups, _ = int8.weight_groups(merged)
    assert len(groups.get(int8.MERGED_WH, [])) == steps


def test_choose_int8_keeps_fp32_what_costs_too_much():
    settings = int8.Int8Settings()
    node_limit = settings.budget * settings.node_share
    alone = {"a": node_limit / 10, "b": node_limit * 3, "c": node_limit / 2, "d": node_limit / 4}

    def additive(chosen):
        return sum(alone[g] for g in chosen)

    decided, total, loss_all = int8.choose_int8(list(alone), additive, settings)
    assert [g for g, d in decided.items() if not d["int8"]] == ["b"]
    assert "alone costs" in decided["b"]["reason"] and total == pytest.approx(additive("acd"))
    assert loss_all == pytest.approx(additive("abcd"))

    def interacting(chosen):  # together they cost more than the total limit until "c" goes
        return settings.budget if "c" in chosen and len(chosen) > 1 else additive(chosen)

    decided, total, _ = int8.choose_int8(list(alone), interacting, settings)
    assert [g for g, d in decided.items() if not d["int8"]] == ["b", "c"]
    assert "together" in decided["c"]["reason"] and total <= settings.budget * settings.total_share


def _outlier_model():
    """fc weights with one output channel 1000x the others: a per-tensor int8 scale zeroes the rest."""
    model = tiny_model(5)
    with torch.no_grad():
        model.img_enc.fc.weight[0] *= 1000.0
    return model


def test_forced_bad_quantization_fails_the_export(tmp_path):
    settings = int8.Int8Settings(per_channel=False, search=False)
    out = tmp_path / "export"
    with pytest.raises(CheckFailed, match=r"image_encoder\.int8\.onnx .*min_cosine"):
        export_loaded(_outlier_model(), None, out, ExportConfig(precision="int8", max_batch=4,
                                                                retrieval_images=40, int8_settings=settings))
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_the_search_keeps_the_damaging_weight_fp32(tmp_path):
    settings = int8.Int8Settings(per_channel=False)
    result = export_loaded(_outlier_model(), None, tmp_path / "export",
                           ExportConfig(precision="int8", max_batch=4, retrieval_images=40,
                                        int8_settings=settings))
    image = result.manifest["int8"]["graphs"]["image_encoder"]
    assert image["groups"]["fc.weight"]["int8"] is False
    assert image["fp32_nodes"]["fc/MatMul"].startswith("FP32: alone costs")
    assert result.manifest["int8"]["settings"]["per_channel"] is False


def test_validate_and_triton_repo_with_ort_int8(exported, tmp_path):
    from typer.testing import CliRunner

    from vsrn_deploy.cli.app import app

    out = exported["out"]
    report_path = tmp_path / "report.json"
    res = CliRunner().invoke(app, ["validate", "--checkpoint", str(exported["path"]), "--onnx-dir", str(out),
                                   "--vocab", str(exported["vocab"]), "--backends", "torch,ort,ort-int8",
                                   "--synthetic", "40", "--batch-size", "16", "--out", str(report_path)])
    assert res.exit_code == 0, res.output
    report = json.loads(report_path.read_text())
    q = report["backends"]["ort-int8"]
    assert q["passed"] and q["precision"] == "int8" and q["max_abs_err"] > 0
    assert q["min_cosine"] >= PARITY["int8"].min_cosine and q["top1_agreement"] >= PARITY["int8"].top1

    repo = tmp_path / "repo"
    res = CliRunner().invoke(app, ["triton-repo", "--onnx-dir", str(out), "--out", str(repo),
                                   "--precision", "int8", "--kind", "cpu"])
    assert res.exit_code == 0, res.output
    assert (repo / "image_encoder" / "1" / "model.onnx").read_bytes() == (
        out / "image_encoder.int8.onnx").read_bytes()
    assert "KIND_CPU" in (repo / "text_encoder" / "config.pbtxt").read_text()
    res = CliRunner().invoke(app, ["triton-repo", "--onnx-dir", str(out), "--out", str(tmp_path / "py"),
                                   "--backend", "python", "--precision", "int8", "--kind", "cpu"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "py" / "text_encoder" / "1" / "model.onnx").read_bytes() == (
        out / "text_encoder.int8.onnx").read_bytes()
    tensorrt = ["--backend", "tensorrt", "--precision", "int8"]
    for refused in (["--precision", "int8"], tensorrt):
        res = CliRunner().invoke(app, ["triton-repo", "--onnx-dir", str(out), "--out", str(tmp_path / "no"),
                                       *refused])
        assert res.exit_code == 2 and "--kind cpu" in res.output, res.output


def test_int8_backend_runs_through_the_registry(exported):
    from vsrn_deploy.backend.registry import make_runner

    cfg = read_manifest(exported["out"])["config"]
    feats = region_features(2, cfg["num_regions"], cfg["img_dim"])
    with make_runner("ort-int8", "image", onnx_dir=exported["out"], threads=1) as runner:
        got = runner.infer({"region_features": feats})
        assert runner.precision == "int8" and runner.onnx_path.name == "image_encoder.int8.onnx"
    assert got["image_embedding"].dtype == np.float32 and got["region_embeddings"].shape[0] == 2


def test_f30k_authors_checkpoint_exports_int8_through_the_cli(tmp_path):
    """The authors' other variant (no fc norm, final BatchNorm), legacy CUDA-tagged serialisation."""
    from export_helpers import calibrate_batchnorm, write_vocab
    from typer.testing import CliRunner

    from vsrn_deploy.cli.app import app
    from vsrn_deploy.model.checkpoint import save_authors_checkpoint

    model = tiny_model(2, fc_norm=False, final_bn=True, data_name="f30k_precomp")
    calibrate_batchnorm(model)
    ckpt = save_authors_checkpoint(tmp_path / "model_best.pth.tar", model, legacy=True, cuda_tagged=True)
    vocab = write_vocab(tmp_path / "vocab.json", model.config.vocab_size)
    out = tmp_path / "export"
    # --calibration calibrates the INT8 search too (it was refused without fp16)
    from vsrn_deploy.data.synthetic_inputs import region_features

    calib = tmp_path / "calib.npy"
    np.save(calib, region_features(20, 36, model.config.img_dim, seed=7))  # authors: 36 regions
    res = CliRunner().invoke(app, ["export", str(ckpt), "--out", str(out), "--vocab", str(vocab),
                                   "--precision", "int8", "--max-batch", "4", "--no-polygraphy-lint",
                                   "--calibration", str(calib)])
    assert res.exit_code == 0, res.output
    manifest = read_manifest(out)
    assert manifest["int8"]["calibration"] == str(calib)
    assert manifest["config"]["final_bn"] is True and manifest["precision"] == "int8"
    assert {manifest["graphs"][g]["int8"] for g in ("image_encoder", "text_encoder")} == {
        "image_encoder.int8.onnx", "text_encoder.int8.onnx"}
    assert "fp16" not in manifest["graphs"]["image_encoder"] and manifest["int8"]["graphs"]
