"""The openvino backend: OpenVINO running the export's graphs agrees with ONNX Runtime, keeps each
caption's own length (OpenVINO ignores GRU sequence lengths: the runner repairs that), and works in
validate, bench and index like any torch-free backend."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vsrn_deploy.backend.openvino import OpenVinoRunner
from vsrn_deploy.backend.registry import make_runner
from vsrn_deploy.core import backends
from vsrn_deploy.core.errors import VsrnError

pytest.importorskip("openvino", reason="no openvino here: pip install 'vsrn-deploy[openvino]'")


@pytest.mark.parametrize("encoder", ["image", "text"])
def test_openvino_matches_ort_fp32(encoder, tiny_graphs, image_feed, text_feed):
    feed = image_feed if encoder == "image" else text_feed
    with make_runner("ort", encoder, onnx_dir=tiny_graphs) as ort, \
            make_runner("openvino", encoder, onnx_dir=tiny_graphs, threads=1) as ov:
        ref, got = ort.infer(feed), ov.infer(feed)
        assert ov.name == f"openvino:{encoder}" and ov.precision == "fp32"
    assert got.keys() == ref.keys()
    for name, value in got.items():
        assert value.dtype == np.float32
        np.testing.assert_allclose(value, ref[name], atol=1e-5, rtol=0)  # the FP32 parity bound


def test_each_caption_keeps_its_own_length(tiny_graphs, text_feed):
    """OpenVINO 2026 ignores ONNX GRU's sequence_lens: unrepaired, a caption padded in a batch with a
    longer one got the state after the padding. The runner must give it what it gets alone."""
    lengths = text_feed["lengths"]
    assert len(set(lengths.tolist())) > 1  # mixed lengths, or the check proves nothing
    with make_runner("openvino", "text", onnx_dir=tiny_graphs) as ov:
        batched = ov.infer(text_feed)["text_embedding"]
        for i, n in enumerate(lengths):
            alone = ov.infer({"token_ids": text_feed["token_ids"][i:i + 1, :n], "lengths": lengths[i:i + 1]})
            np.testing.assert_allclose(batched[i], alone["text_embedding"][0], atol=1e-6, rtol=0)


def test_a_missing_openvino_names_the_extra(tiny_graphs):
    code = ("import sys; sys.modules['openvino'] = None\n"
            "from vsrn_deploy.backend.registry import make_runner\n"
            "from vsrn_deploy.core.errors import VsrnError\n"
            f"r = make_runner('openvino', 'image', onnx_dir={str(tiny_graphs)!r})\n"
            "try:\n    r.activate()\nexcept VsrnError as e:\n    print(e)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "pip install 'vsrn-deploy[openvino]'" in res.stdout


def test_bad_device_graph_and_encoder_are_clear_errors(tiny_graphs, tmp_path):
    with pytest.raises(VsrnError, match="--device cpu"):
        OpenVinoRunner("image", tiny_graphs / "image_encoder.onnx", device="cuda")
    with pytest.raises(VsrnError, match="is it the text encoder"):
        OpenVinoRunner("text", tiny_graphs / "image_encoder.onnx").activate()
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a graph")
    with pytest.raises(VsrnError, match="OpenVINO cannot read"):
        OpenVinoRunner("image", bad).activate()


def test_the_serving_path_never_imports_torch(tiny_graphs):
    code = ("import sys, numpy as np\n"
            "from vsrn_deploy.backend import make_runner\n"
            f"with make_runner('openvino', 'text', onnx_dir={str(tiny_graphs)!r}) as r:\n"
            "    out = r.infer({'token_ids': np.array([[1, 5, 2]]), 'lengths': np.array([3])})\n"
            "assert out['text_embedding'].shape[0] == 1\n"
            "assert 'torch' not in sys.modules\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


# --- the commands ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny checkpoint and its FP32 + INT8 export, through the exporter."""
    from vsrn_deploy.data.vocab import build_vocab
    from vsrn_deploy.export import ExportConfig, export_model
    from vsrn_deploy.model.checkpoint import save_checkpoint
    from vsrn_deploy.model.config import VSRNConfig
    from vsrn_deploy.model.vsrn import VSRN

    root = tmp_path_factory.mktemp("openvino")
    torch.manual_seed(0)
    vocab = build_vocab(["a dog runs on the grass with a red ball"], threshold=1)
    model = VSRN(VSRNConfig.tiny().replace(vocab_size=len(vocab))).eval()
    ckpt = save_checkpoint(root / "tiny.pth", model, vocab=vocab)
    export_model(ckpt, root / "export", ExportConfig(precision="int8", max_batch=8))
    return ckpt, root / "export"


def _cli(*args: str):
    from vsrn_deploy.cli.app import app

    return CliRunner().invoke(app, list(args))


def test_validate_ort_openvino_against_torch(tiny_export, tmp_path):
    ckpt, export = tiny_export
    out = tmp_path / "report.json"
    res = _cli("validate", "--checkpoint", str(ckpt), "--onnx-dir", str(export), "--backends",
               "ort,openvino,ort-int8,openvino-int8", "--synthetic", "20", "--batch-size", "8",
               "--out", str(out))
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert report["passed"] and report["reference"] == "torch"
    ov = report["backends"]["openvino"]
    assert ov["precision"] == "fp32" and ov["max_abs_err"] <= backends.get("openvino").parity().max_abs
    ov8, ort8 = report["backends"]["openvino-int8"], report["backends"]["ort-int8"]
    assert ov8["precision"] == "int8"
    assert ov8["min_cosine"] >= backends.get("openvino-int8").parity().min_cosine
    assert abs(ov8["max_abs_err"] - ort8["max_abs_err"]) < 1e-3  # the same INT8 graph, the same error
    assert "openvino" in report["versions"]


def test_openvino_int8_runs_the_int8_graph(tiny_export):
    _, export = tiny_export
    from vsrn_deploy.data.synthetic_inputs import captions, text_feed

    cfg = json.loads((export / "manifest.json").read_text())["config"]
    feed = text_feed(captions(6, cfg["vocab_size"], min_tokens=3, seed=2))
    with make_runner("openvino-int8", "text", onnx_dir=export) as ov, \
            make_runner("ort-int8", "text", onnx_dir=export) as ort:
        assert ov.onnx_path.name == "text_encoder.int8.onnx" and ov.precision == "int8"
        np.testing.assert_allclose(ov.infer(feed)["text_embedding"], ort.infer(feed)["text_embedding"],
                                   atol=1e-4, rtol=0)


def test_validate_between_non_torch_backends(tiny_export, tmp_path):
    """validate without torch takes the first backend as the reference (the torch-free path)."""
    _, export = tiny_export
    out = tmp_path / "report.json"
    code = ("import sys; sys.modules['torch'] = None\n"  # as if torch were not installed
            "import importlib.util; spec = importlib.util.find_spec\n"
            "importlib.util.find_spec = lambda n, *a: None if n == 'torch' else spec(n, *a)\n"
            "from vsrn_deploy.cli.app import main\n"
            f"sys.argv = ['vsrn-deploy', 'validate', '--onnx-dir', {str(export)!r}, '--backends', "
            f"'ort,openvino', '--synthetic', '20', '--out', {str(out)!r}]\n"
            "main()\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads(out.read_text())
    assert report["reference"] == "ort" and report["passed"]
    assert report["backends"]["openvino"]["max_abs_err"] <= 1e-5


def test_bench_ort_openvino(tiny_export, tmp_path):
    ckpt, export = tiny_export
    out = tmp_path / "bench.json"
    res = _cli("bench", "--checkpoint", str(ckpt), "--onnx-dir", str(export), "--backends", "ort,openvino",
               "--batch", "1,4", "--warmup", "0", "--iters", "2", "--threads", "1", "--out", str(out))
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    rows = {(r["encoder"], r["backend"], r["batch"]): r for r in report["results"]}
    assert set(rows) == {(e, b, n) for e in ("image", "text") for b in ("ort", "openvino") for n in (1, 4)}
    assert {r["precision"] for r in rows.values()} == {"fp32"} and not report["skipped"]
    assert all(r["p50_ms"] > 0 for r in rows.values())


def test_index_and_search_with_openvino(tiny_export, tmp_path):
    pytest.importorskip("faiss", reason="the search extra is not installed")
    from vsrn_deploy.data.synthetic_inputs import region_features

    _, export = tiny_export
    cfg = json.loads((export / "manifest.json").read_text())["config"]
    images = tmp_path / "ims.npy"
    np.save(images, region_features(12, cfg["num_regions"], cfg["img_dim"], seed=1))
    caps = tmp_path / "caps.txt"
    caps.write_text("a dog runs\na red ball\n" * 6)
    res = _cli("index", "--onnx-dir", str(export), "--images", str(images), "--captions", str(caps),
               "--out", str(tmp_path / "index"), "--backend", "openvino")
    assert res.exit_code == 0, res.output
    res = _cli("search", "--index", str(tmp_path / "index"), "--text", "a red ball", "--json")
    assert res.exit_code == 0, res.output
    # the same images, encoded by ort, rank the same way
    from vsrn_deploy.search import Index

    with Index.open(tmp_path / "index") as ov_index, \
            Index.open(tmp_path / "index", backend="ort") as ort_index:
        assert ov_index.backend == "openvino"  # recorded at build time
        a = ov_index.search_text("a red ball", k=5)
        b = ort_index.search_text("a red ball", k=5)
    assert [h.id for h in a] == [h.id for h in b]
    np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-5)
