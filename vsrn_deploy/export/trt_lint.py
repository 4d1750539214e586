"""A TensorRT compatibility lint for ONNX graphs, run at export (no TensorRT needed).

The data below is the operator support matrix of the TensorRT ONNX parser, onnx-tensorrt
`docs/operators.md` for TensorRT 10.15 ("TensorRT 10.15 supports operators in the inclusive range
of opset 9 to opset 24"; https://github.com/onnx/onnx-tensorrt/blob/main/docs/operators.md).
Only the operators marked supported ("Y") are listed, with their supported types.

Checks: the opset is in range; every node's op type is supported; every float/int tensor's type
is one TensorRT takes (no DOUBLE, no unsigned types other than UINT8 at the boundary); each node's
tensor types are in its supported list; the documented restrictions that apply to our graphs hold
(axes inputs of Reduce*/Squeeze/Unsqueeze/Split are initializers, GRU/LSTM layout 0); and only the
declared axes (batch, tokens) are dynamic.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto

from vsrn_deploy.core.errors import CheckFailed

TRT_VERSION = "10.15"
TRT_DOC = "https://github.com/onnx/onnx-tensorrt/blob/main/docs/operators.md"
OPSET_RANGE = (9, 24)

_F = "FP32 FP16 BF16"
_FI = "FP32 FP16 BF16 INT32 INT64"
_FIB = "FP32 FP16 BF16 INT32 INT64 BOOL"
_TABLE = f"""
Abs {_FI}|Acos {_F}|Acosh {_F}|Add {_FI}|And BOOL|ArgMax {_FI}|ArgMin {_FI}|Asin {_F}|Asinh {_F}|Atan {_F}
Atanh {_F}|Attention {_F} INT8 FP8|AveragePool {_F}|BatchNormalization {_F}|BlackmanWindow FP32 FP16
Cast {_FIB} UINT8|CastLike {_FIB} UINT8|Ceil {_F}|Celu {_F}|Clip {_F}|Concat {_FIB}
Constant {_FIB} FP8 FP4 INT4|ConstantOfShape {_FIB} FP8 FP4 INT4|Conv {_F}|ConvTranspose {_F}|Cos {_F}
Cosh {_F}|CumSum {_F}|DeformConv FP32 FP16|DepthToSpace {_FI}|DequantizeLinear INT8 FP8 FP4 INT4|Div {_FI}
Dropout {_F}|Einsum {_F}|Elu {_F}|Equal {_FI}|Erf {_F}|Exp {_F}|Expand {_FIB}|EyeLike {_FIB}|Flatten {_FIB}
Floor {_F}|Gather {_FIB}|GatherElements {_FIB}|GatherND {_FIB}|Gelu {_FI} INT8|Gemm {_F}
GlobalAveragePool {_F}
GlobalLpPool {_F}|GlobalMaxPool {_F}|Greater {_FI}|GreaterOrEqual {_FI}|GridSample FP32 FP16
GroupNormalization {_F}|GRU {_F}|HammingWindow FP32 FP16|HannWindow FP32 FP16|HardSigmoid {_F}|HardSwish {_F}
Hardmax {_F}|Identity {_FIB}|If {_FIB}|ImageScaler {_F}|InstanceNormalization {_F}|IsInf {_F}|IsNaN {_FI}
LayerNormalization {_F}|LeakyRelu {_F}|Less {_FI}|LessOrEqual {_FI}|Log {_F}|LogSoftmax {_F}|Loop {_FIB}
LRN {_F}|LSTM {_F}|LpNormalization {_F}|LpPool {_F}|MatMul {_F}|Max {_FI}|MaxPool {_F}|Mean {_FI} FP8
MeanVarianceNormalization {_F}|Min {_FI}|Mish FP32 FP16|Mod {_FI}|Mul {_FI}|Neg {_FI}
NonMaxSuppression FP32 FP16
NonZero FP32 FP16|Not BOOL|OneHot {_FIB}|Or BOOL|Pad {_FI}|ParametricSoftplus {_F}|Pow {_FI}|PRelu {_F}
QuantizeLinear {_F}|RandomNormal {_F}|RandomNormalLike {_F}|RandomUniform {_F}|RandomUniformLike {_F}
Range {_FI}|Reciprocal {_F}|ReduceL1 {_FI}|ReduceL2 {_FI}|ReduceLogSum {_FI}|ReduceLogSumExp {_FI}
ReduceMax {_FI}|ReduceMean {_FI}|ReduceMin {_FI}|ReduceProd {_FI}|ReduceSum {_FI}|ReduceSumSquare {_FI}
Relu {_FI}|Reshape {_FIB}|Resize {_F}|ReverseSequence {_FIB}|RMSNormalization {_F}|RNN {_F}|RoiAlign FP32 FP16
RotaryEmbedding {_F}|Round {_F}|STFT FP32|ScaledTanh {_F}|Scan {_F}|Scatter {_FI}|ScatterElements {_FI}
ScatterND {_FI}|Selu {_F}|Shape {_FIB}|Shrink {_FI}|Sigmoid {_F}|Sign {_FI}|Sin {_F}|Sinh {_F}|Size {_FIB}
Slice {_FIB}|Softmax {_F}|Softplus {_F}|Softsign {_F}|SpaceToDepth {_FI}|Split {_FIB}|Sqrt {_F}|Squeeze {_FIB}
Sub {_FI}|Sum {_FI}|Tan {_F}|Tanh {_F}|TensorScatter {_F} INT32|ThresholdedRelu {_F}|Tile {_FIB}|TopK {_FI}
Transpose {_FIB}|Trilu {_FIB}|Unsqueeze {_FIB}|Upsample {_F}|Where {_FIB}|Xor BOOL
"""

SUPPORTED_OPS: dict[str, frozenset[str]] = {}
for _entry in _TABLE.replace("\n", "|").split("|"):
    if _entry.strip():
        _name, *_types = _entry.split()
        SUPPORTED_OPS[_name] = frozenset(_types)

_TYPE_NAMES = {
    TensorProto.FLOAT: "FP32",
    TensorProto.FLOAT16: "FP16",
    TensorProto.BFLOAT16: "BF16",
    TensorProto.INT32: "INT32",
    TensorProto.INT64: "INT64",
    TensorProto.BOOL: "BOOL",
    TensorProto.INT8: "INT8",
    TensorProto.UINT8: "UINT8",
}
# inputs that TensorRT needs as build-time constants (operators.md restrictions)
_CONST_INPUTS = {
    "ReduceSum": 1,
    "ReduceMean": 1,
    "ReduceMax": 1,
    "ReduceMin": 1,
    "ReduceProd": 1,
    "ReduceL1": 1,
    "ReduceL2": 1,
    "ReduceSumSquare": 1,
    "Squeeze": 1,
    "Unsqueeze": 1,
    "Split": 1,
}


def lint_model(
    model: onnx.ModelProto, *, dynamic_axes: frozenset[str] = frozenset({"batch", "tokens"})
) -> list[str]:
    """Problems TensorRT's ONNX parser would have with `model` (empty list: none found).

    Args:
        model: the graph to check.
        dynamic_axes: the only symbolic dimension names allowed on inputs and outputs.
    Returns:
        One message per problem.
    """
    problems: list[str] = []
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or not OPSET_RANGE[0] <= opset <= OPSET_RANGE[1]:
        problems.append(f"opset {opset} is outside TensorRT {TRT_VERSION}'s range {OPSET_RANGE}")
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types = {
        vi.name: vi.type.tensor_type.elem_type for vi in list(g.input) + list(g.value_info) + list(g.output)
    }
    inits = {i.name for i in g.initializer}
    types.update({i.name: i.data_type for i in g.initializer})
    for name, t in types.items():
        if t not in _TYPE_NAMES and t != TensorProto.UNDEFINED:
            problems.append(
                f"tensor {name} has type {TensorProto.DataType.Name(t)}, which TensorRT does not take"
            )
    for node in g.node:
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"node {node.name}: custom domain {node.domain!r} needs a TensorRT plugin")
            continue
        allowed = SUPPORTED_OPS.get(node.op_type)
        if allowed is None:
            problems.append(
                f"node {node.name}: operator {node.op_type} is not supported by TensorRT "
                f"{TRT_VERSION}'s ONNX parser ({TRT_DOC})"
            )
            continue
        for tensor in list(node.input) + list(node.output):
            t = types.get(tensor)
            if not tensor or t is None or t == TensorProto.UNDEFINED:
                continue
            # shape-like operands (axes, split sizes, sequence_lens) are not the op's data type
            if node.op_type in (
                "Cast",
                "GRU",
                "LSTM",
                "RNN",
                "Gather",
                "Split",
                "Squeeze",
                "Unsqueeze",
            ) or node.op_type.startswith("Reduce"):
                if t in (TensorProto.INT32, TensorProto.INT64):
                    continue
            if _TYPE_NAMES.get(t) not in allowed:
                problems.append(
                    f"node {node.name}: {node.op_type} on {_TYPE_NAMES.get(t, t)} tensor {tensor} "
                    f"(TensorRT supports {sorted(allowed)})"
                )
                break
        const_idx = _CONST_INPUTS.get(node.op_type)
        if (
            const_idx is not None
            and len(node.input) > const_idx
            and node.input[const_idx]
            and node.input[const_idx] not in inits
        ):
            problems.append(
                f"node {node.name}: input {const_idx} of {node.op_type} must be an initializer for TensorRT"
            )
        if node.op_type in ("GRU", "LSTM", "RNN"):
            for attr in node.attribute:
                if attr.name == "layout" and attr.i != 0:
                    problems.append(f"node {node.name}: {node.op_type} layout must be 0 for TensorRT")
    for vi in list(g.input) + list(g.output):
        for dim in vi.type.tensor_type.shape.dim:
            if dim.HasField("dim_param") and dim.dim_param not in dynamic_axes:
                problems.append(
                    f"{vi.name}: dynamic axis {dim.dim_param!r} (only {sorted(dynamic_axes)} may be dynamic)"
                )
            elif not dim.HasField("dim_param") and not dim.HasField("dim_value"):
                problems.append(
                    f"{vi.name}: unnamed dynamic axis (only {sorted(dynamic_axes)} may be dynamic)"
                )
    return problems


def assert_trt_compatible(model: onnx.ModelProto, name: str) -> None:
    """Raise `CheckFailed` listing every problem `lint_model` finds in `model`."""
    problems = lint_model(model)
    if problems:
        raise CheckFailed(f"{name} is not TensorRT {TRT_VERSION} compatible:\n  " + "\n  ".join(problems))
