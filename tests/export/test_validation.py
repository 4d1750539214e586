"""Export-time checks: the graphs run through the runners and are judged by `compare.judge`, the
NaN/Inf-rows rule included (a graph answering NaN for some rows fails the export with exit 1)."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
import torch
from export_helpers import tiny_model
from onnx import helper

from vsrn_deploy.core.contract import PARITY, TEXT
from vsrn_deploy.data.synthetic_inputs import captions, image_feed, region_features, text_feed
from vsrn_deploy.export import graphs
from vsrn_deploy.export.validation import GRAPH_BATCH, Validator, graph_runner, reference_runner
from vsrn_deploy.model.deploy import ImageEncoderDeploy, TextEncoderDeploy

pytestmark = pytest.mark.export


def test_retrieval_check_fails_one_nan_row_the_recall_bounds_forgive():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(100, 8)).astype(np.float32)
    captions_ = images.repeat(5, axis=0) + rng.normal(scale=0.05, size=(500, 8)).astype(np.float32)
    val = Validator()
    val.check_retrieval("ort", (images, captions_), (images, captions_.copy()), "fp16")
    assert val.passed
    broken = captions_.copy()
    broken[7] = np.nan  # one caption of 500: 0.2 points of t2i R@1 at most, top-1 99.8 %
    val = Validator()
    summary = val.check_retrieval("ort", (images, captions_), (images, broken), "fp16")
    assert summary["top1_agreement"] >= PARITY["fp16"].top1  # the recall bounds alone would pass it
    failed = [line for line in val.lines if not line.passed]
    assert [(line.output, line.metric, line.value) for line in failed] == [
        ("embeddings", "non_finite_rows", 1)]
    assert not val.passed and "non_finite_rows 1 <= 0" in val.failures()[0]


def test_checks_run_graphs_in_memory_or_written_and_split_large_feeds_in_one_place(tmp_path):
    model = tiny_model(0)
    with torch.no_grad():
        graph = graphs.build_image_graph(ImageEncoderDeploy.from_encoder(model.img_enc))
    path = tmp_path / "image.onnx"
    onnx.save_model(graph, str(path))
    feed = image_feed(region_features(70, model.config.num_regions, model.config.img_dim, seed=1))
    with graph_runner("image", graph) as in_memory, graph_runner("image", path) as written, \
            reference_runner("image", model) as eager:
        assert in_memory.batch == GRAPH_BATCH["image"] == 32 and in_memory.threads == 2
        whole = written.infer(feed)
        split = in_memory.infer_batched(feed)  # 32 + 32 + 6 rows
        assert set(split) == {"image_embedding", "region_embeddings"}
        for name, value in whole.items():
            np.testing.assert_allclose(split[name], value, atol=1e-6)
        ref = eager.infer_batched(feed)  # 64 + 6 rows
        val = Validator()
        val.check("image.onnx", "ort", 70, ref, split, "fp32")
        assert val.passed and {line.output for line in val.lines} == {"image_embedding", "region_embeddings"}


def _nan_for_short_captions(build):
    """`graphs.build_text_graph` doctored: rows whose caption has 3 tokens or fewer come out NaN
    (embedding + sqrt(min(length - 3.5, 0)): NaN there, +0 elsewhere; no op TensorRT would refuse)."""

    def doctored(deploy, opset=graphs.DEFAULT_OPSET):
        model = build(deploy, opset)
        g = model.graph
        out = TEXT.embedding
        next(n for n in g.node if out in n.output).output[0] = "clean_embedding"
        g.initializer.extend([
            onnx.numpy_helper.from_array(np.array([3.5], dtype=np.float32), "doctor/cut"),
            onnx.numpy_helper.from_array(np.array([0.0], dtype=np.float32), "doctor/zero"),
            onnx.numpy_helper.from_array(np.array([1], dtype=np.int64), "doctor/axis"),
        ])
        steps = [("Cast", ["lengths"], {"to": onnx.TensorProto.FLOAT}), ("Sub", ["doctor/cut"], {}),
                 ("Min", ["doctor/zero"], {}), ("Sqrt", [], {}), ("Unsqueeze", ["doctor/axis"], {})]
        x = "lengths"
        for i, (op, extra, attrs) in enumerate(steps):
            inputs = extra if op == "Cast" else [x, *extra]
            g.node.append(helper.make_node(op, inputs, [f"doctor/{i}"], name=f"doctor/{op}", **attrs))
            x = f"doctor/{i}"
        g.node.append(helper.make_node("Add", ["clean_embedding", x], [out], name="doctor/Add"))
        onnx.checker.check_model(model)
        return model

    return doctored


def test_export_refuses_a_graph_answering_nan_rows(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from vsrn_deploy.cli.app import app
    from vsrn_deploy.model.checkpoint import save_authors_checkpoint

    model = tiny_model(0)
    ckpt = save_authors_checkpoint(tmp_path / "model_best.pth.tar", model)
    from export_helpers import write_vocab

    vocab = write_vocab(tmp_path / "vocab.json", model.config.vocab_size)
    doctored = _nan_for_short_captions(graphs.build_text_graph)
    # the doctored graph answers NaN for short captions only
    with torch.no_grad():
        graph = doctored(TextEncoderDeploy.from_encoder(model.txt_enc))
    feed = text_feed(captions(12, model.config.vocab_size, max_tokens=8, seed=3))
    with graph_runner("text", graph) as runner:
        rows = ~np.isfinite(runner.infer(feed)[TEXT.embedding]).all(axis=1)
    assert rows.tolist() == (feed["lengths"] <= 3).tolist() and 0 < rows.sum() < len(rows)

    monkeypatch.setattr(graphs, "build_text_graph", doctored)
    out = tmp_path / "export"
    res = CliRunner().invoke(app, ["export", str(ckpt), "--out", str(out), "--vocab", str(vocab),
                                   "--precision", "fp32", "--max-batch", "8", "--no-polygraphy-lint"])
    assert res.exit_code == 1, res.output
    line = r"text_encoder\.onnx +ort +batch \d+ +text_embedding +non_finite_rows [1-9]\d* <= 0 +FAILED"
    assert re.search(line, res.output), res.output
    assert "Traceback" not in res.output
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model_best.pth.tar", "vocab.json"]
