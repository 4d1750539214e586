"""Structural checks of the exported graphs (hygiene beyond the TensorRT lint).

- `onnx.checker` full check and strict shape inference;
- the image graph holds no recurrent, loop, conditional or BatchNormalization node (deploy form);
- every GRU node uses torch's semantics (linear_before_reset=1): with 0, the reset gate multiplies
  the hidden state before the recurrent matmul, a different function that runs without error;
- constant folding: no node computes from initializers alone (the builders fold weights at build time).
"""

from __future__ import annotations

import onnx

from vsrn_deploy.core.errors import CheckFailed

FORBIDDEN_IMAGE_OPS = frozenset({"GRU", "LSTM", "RNN", "Loop", "Scan", "If", "BatchNormalization"})


def graph_problems(model: onnx.ModelProto, *, forbidden: frozenset[str] = frozenset()) -> list[str]:
    """Every structural problem of `model` (empty list: clean).

    Args:
        model: the graph.
        forbidden: operator types that must not appear.
    Returns:
        One message per problem.
    """
    problems = []
    try:
        onnx.checker.check_model(model, full_check=True)
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        problems.append(f"onnx checker: {exc}")
    inits = {i.name for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type in forbidden:
            problems.append(f"node {node.name}: {node.op_type} is not allowed in this graph")
        if node.op_type == "GRU":
            lbr = next((a.i for a in node.attribute if a.name == "linear_before_reset"), 0)
            if lbr != 1:
                problems.append(f"node {node.name}: GRU with linear_before_reset={lbr}; torch's GRU needs 1")
        data_inputs = [i for i in node.input if i]
        if data_inputs and all(i in inits for i in data_inputs):
            problems.append(f"node {node.name}: {node.op_type} of constants only (not folded)")
    return problems


def assert_clean(model: onnx.ModelProto, name: str, *, forbidden: frozenset[str] = frozenset()) -> None:
    """Raise `CheckFailed` listing the problems `graph_problems` finds."""
    problems = graph_problems(model, forbidden=forbidden)
    if problems:
        raise CheckFailed(f"{name} failed the graph checks:\n  " + "\n  ".join(problems))
