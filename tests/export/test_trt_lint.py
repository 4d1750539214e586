"""The TensorRT compatibility lint: our graphs pass, unsupported constructs are caught."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from export_helpers import tiny_model
from onnx import TensorProto, helper, numpy_helper

from vsrn_deploy.core.errors import CheckFailed
from vsrn_deploy.export.graphs import build_image_graph, build_text_graph
from vsrn_deploy.export.trt_lint import SUPPORTED_OPS, assert_trt_compatible, lint_model
from vsrn_deploy.model.deploy import ImageEncoderDeploy, TextEncoderDeploy


def _one_node(op: str, dtype=TensorProto.FLOAT, dims=("batch", 4), opset=17, **attrs) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node(op, ["x"], ["y"], name="n0", **attrs)],
        "g",
        [helper.make_tensor_value_info("x", dtype, list(dims))],
        [helper.make_tensor_value_info("y", dtype, list(dims))],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_our_graphs_pass_the_lint():
    model = tiny_model(0, text_layers=2)
    assert lint_model(build_image_graph(ImageEncoderDeploy.from_encoder(model.img_enc))) == []
    assert lint_model(build_text_graph(TextEncoderDeploy.from_encoder(model.txt_enc))) == []


def test_table_is_the_parser_matrix():
    assert {"GRU", "MatMul", "Split", "ReduceSum", "Gather", "Cast"} <= set(SUPPORTED_OPS)
    assert "Unique" not in SUPPORTED_OPS and "SequenceAt" not in SUPPORTED_OPS
    assert "INT64" not in SUPPORTED_OPS["MatMul"]


def test_unsupported_operator_is_caught():
    model = _one_node("Unique")
    problems = lint_model(model)
    assert any("Unique is not supported" in p for p in problems)
    with pytest.raises(CheckFailed, match="Unique"):
        assert_trt_compatible(model, "bad graph")


def test_double_and_wrong_type_and_extra_dynamic_axis_are_caught():
    assert any("DOUBLE" in p for p in lint_model(_one_node("Relu", dtype=TensorProto.DOUBLE)))
    assert any(
        "dynamic axis 'regions'" in p for p in lint_model(_one_node("Relu", dims=("batch", "regions")))
    )
    assert any("opset 8" in p for p in lint_model(_one_node("Relu", opset=8)))


def test_axes_must_be_initializers():
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x", "axes"], ["y"], name="r")],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4]),
            helper.make_tensor_value_info("axes", TensorProto.INT64, [1]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert any("must be an initializer" in p for p in lint_model(model))
    model.graph.input.pop()
    model.graph.initializer.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"))
    assert not any("initializer" in p for p in lint_model(model))
