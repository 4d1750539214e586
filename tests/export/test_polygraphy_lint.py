"""`polygraphy check lint` beside the own TensorRT lint: what each reports on the same graphs."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from vsrn_deploy.export import trt_lint
from vsrn_deploy.export.polygraphy_lint import lint_graphs, polygraphy_lint


def _graph(nodes, inputs, outputs, inits=()):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lint")
    x = helper.make_tensor_value_info("region_features", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("image_embedding", TensorProto.FLOAT, ["batch", 4])
    clean = _graph([helper.make_node("Relu", ["region_features"], ["image_embedding"], name="relu")],
                   [x], [y])
    # ONNX Runtime runs a ReduceSum with runtime axes; TensorRT's parser needs them constant
    axes = helper.make_tensor_value_info("axes", TensorProto.INT64, [1])
    trt_only = _graph([helper.make_node("ReduceSum", ["region_features", "axes"], ["image_embedding"],
                                        name="sum", keepdims=1)], [x, axes], [y])
    # a Gemm whose operand shapes do not agree: fails in ONNX Runtime, TensorRT's lint sees nothing
    w = helper.make_tensor("w", TensorProto.FLOAT, [3, 4], [0.0] * 12)
    runtime_bad = _graph([helper.make_node("MatMul", ["region_features", "w"], ["image_embedding"],
                                           name="matmul")], [x], [y], [w])
    paths = {}
    for name, model in (("clean", clean), ("trt_only", trt_only), ("runtime_bad", runtime_bad)):
        paths[name] = folder / f"{name}.onnx"
        onnx.save(model, paths[name])
    return paths


@pytest.mark.export
def test_both_lints_on_the_same_graphs(graphs):
    names = list(graphs)
    poly_results = lint_graphs([graphs[n] for n in names])  # one child process for all three
    results = {n: (trt_lint.lint_model(onnx.load(graphs[n])), r)
               for n, r in zip(names, poly_results, strict=True)}
    own, poly = results["clean"]
    assert own == [] and poly.ran and poly.passed
    own, poly = results["trt_only"]  # TensorRT's constant-axes rule: only the own lint knows it
    assert any("must be an initializer" in p for p in own)
    assert poly.ran and poly.passed
    own, poly = results["runtime_bad"]  # a shape error ONNX Runtime hits: only Polygraphy sees it
    assert own == []
    assert poly.ran and poly.passed is False and poly.messages


def test_without_polygraphy_the_check_says_not_run(graphs, monkeypatch):
    import importlib.util

    real_find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "polygraphy" else real_find(name, *a))
    result = polygraphy_lint(graphs["clean"])
    assert result.ran is False and result.passed is None and "polygraphy not installed" in result.reason


def test_check_export_fails_on_a_failing_graph(graphs):
    from vsrn_deploy.core.errors import CheckFailed
    from vsrn_deploy.export.polygraphy_lint import check_export

    lines = []
    with pytest.raises(CheckFailed, match="runtime_bad.onnx: failing nodes") as failed:
        check_export(graphs["clean"].parent, ["clean.onnx", "runtime_bad.onnx"], lines.append)
    assert "clean.onnx" not in str(failed.value) and lines == []


@pytest.mark.export
def test_export_runs_polygraphy_lint_when_asked(tmp_path):
    from export_helpers import tiny_model

    from vsrn_deploy.export import ExportConfig, export_loaded

    result = export_loaded(tiny_model(), None, tmp_path / "export",
                           ExportConfig(precision="all", max_batch=4, polygraphy_lint=True))
    lint = result.manifest["polygraphy_lint"]  # the passing path of check_export
    assert sorted(lint) == ["image_encoder.fp16.onnx", "image_encoder.int8.onnx", "image_encoder.onnx",
                            "text_encoder.fp16.onnx", "text_encoder.int8.onnx", "text_encoder.onnx"]
    assert all(entry["ran"] and entry["passed"] for entry in lint.values()), lint
