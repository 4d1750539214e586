"""FP16 graphs with FP32 islands chosen from data.

1. `record_ranges` runs the FP32 graph in ONNX Runtime on calibration inputs with every float
   intermediate exposed as an output, and records each tensor's max |value|.
2. `choose_islands` keeps a node in FP32 when
   - range: any of its float inputs or outputs reaches `FP16_MAX / margin` (default margin 16, i.e.
     |x| >= 4094): the calibration set is small and the GCN is roughly cubic in its input on Flickr30K
     models, so inputs 2.5x larger than any calibration sample give 16x larger activations; and a
     tensor that is large must be FP32 at both its producer and its consumers, hence inputs AND outputs;
   - policy (always, whatever the data): the normalisation chains (square, sum, sqrt, eps clamp,
     divide: sums of squares overflow or underflow first, and the 1e-12 epsilon is 0 in FP16),
     each GCN affinity matmul (a D-long dot product feeding a k x k matrix, cheap to keep exact),
     the GRU node of the text graph (its state is carried through every token), Abs,
     and the output Identity nodes (outputs stay FP32).
3. `convert_to_fp16` stores float initializers in FP16 (a copy stays FP32 where an island reads
   it), computes every other node in FP16, and inserts Cast nodes at island boundaries. Inputs and
   outputs keep their float32 / int64 types, so clients never change when the precision does.

Why not onnxruntime's converter. `onnxruntime.transformers.float16.convert_float_to_float16(model,
keep_io_types=True, node_block_list=islands)` keeps the same nodes in FP32 and stores the same
initializers in FP16, but it does not write the same graph (onnxruntime 1.32, measured with
`benchmarks/fp16_converter_check.py` on the tiny model):
- it casts every blocked node's output to FP16 and back to FP32 before the next blocked node, so
  the values between consecutive islands are rounded to FP16 anyway (16 such round trips in the
  image graph, 6 in the text graph: the normalisation chains' sums of squares, the very values the
  islands exist to keep out of FP16's range, and the float32 outputs themselves);
- it appends its Cast nodes at the end of the node list: the graph is not topologically sorted, so
  `onnx.checker` (the export's graph hygiene) and the strict FP16 executor reject it;
- it adds 43 Cast nodes to the image graph where 12 suffice (17 vs 4 in the text graph), and its
  outputs differ from these by up to 6e-4 in ONNX Runtime.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FP16_MAX = 65504.0
DEFAULT_MARGIN = 16.0

_NORM_OPS = {"Mul", "ReduceSum", "Sqrt", "Max", "Div"}


def _float_tensors(model: onnx.ModelProto) -> dict[str, int]:
    """Names of every tensor in the graph with its element type (after shape inference)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types: dict[str, int] = {}
    g = inferred.graph
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        types[vi.name] = vi.type.tensor_type.elem_type
    for init in g.initializer:
        types[init.name] = init.data_type
    return types


def record_ranges(model: onnx.ModelProto, feeds: Iterable[dict[str, np.ndarray]]) -> dict[str, float]:
    """Max |value| of every float tensor of `model` over the calibration feeds.

    Args:
        model: the FP32 graph.
        feeds: input dicts (numpy arrays keyed by input name).
    Returns:
        {tensor name: max |value|} for graph inputs, intermediates and outputs (inf if non-finite).
    """
    import onnxruntime as ort

    types = _float_tensors(model)
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    existing = {o.name for o in probe.graph.output}
    init_names = {i.name for i in probe.graph.initializer}
    for node in probe.graph.node:
        for out in node.output:
            if out and out not in existing and out not in init_names and types.get(out) == TensorProto.FLOAT:
                probe.graph.output.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, None))
                existing.add(out)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor
    opts.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    ranges: dict[str, float] = {}
    for feed in feeds:
        values = dict(zip(names, session.run(names, feed), strict=True))
        values.update(feed)
        for name, value in values.items():
            if value.dtype != np.float32:
                continue
            m = float(np.max(np.abs(value))) if value.size else 0.0
            if not np.isfinite(m):
                m = float("inf")
            ranges[name] = max(ranges.get(name, 0.0), m)
    return ranges


def policy_reason(node: onnx.NodeProto) -> str | None:
    """Why `node` stays FP32 whatever the data, or None."""
    name = node.name
    if node.op_type == "Identity" and name in node.output:
        return "graph output (float32 by contract)"
    if "_norm/" in name and node.op_type in _NORM_OPS:
        return "normalisation sum of squares / eps clamp (overflow and underflow first in FP16)"
    if "/affinity/" in name:
        return "GCN affinity (D-long dot products; tiny k x k matmul)"
    if node.op_type == "GRU":
        return "GRU node (its state is carried through every token; one node, kept FP32)"
    if node.op_type == "Abs":
        return "Abs (no FP16 kernel in ONNX Runtime's CPU provider)"
    return None


def choose_islands(
    model: onnx.ModelProto,
    ranges: dict[str, float],
    *,
    margin: float = DEFAULT_MARGIN,
    use_policy: bool = True,
    use_ranges: bool = True,
) -> dict[str, str]:
    """Pick the nodes that stay FP32.

    Args:
        model: the FP32 graph.
        ranges: `record_ranges` output.
        margin: a node whose float input or output reaches FP16_MAX / margin stays FP32.
        use_policy: keep the always-FP32 nodes of `policy_reason`; False only to prove islands matter
            (output Identity nodes stay FP32 regardless: outputs are float32 by contract).
        use_ranges: apply the data-driven range rule.
    Returns:
        {node name: reason} in graph order.
    """
    limit = FP16_MAX / margin
    islands: dict[str, str] = {}
    for node in model.graph.node:
        reason = policy_reason(node)
        if reason is not None and (use_policy or reason.startswith("graph output")):
            islands[node.name] = reason
            continue
        if not use_ranges:
            continue
        seen = [(t, ranges[t]) for t in list(node.input) + list(node.output) if t in ranges]
        if seen:
            name, peak = max(seen, key=lambda item: item[1])
            if peak >= limit:
                islands[node.name] = (
                    f"range: max |{name}| = {peak:.4g} >= {limit:.4g} (FP16 max / {margin:g})"
                )
    return islands


def convert_to_fp16(model: onnx.ModelProto, islands: Iterable[str]) -> onnx.ModelProto:
    """FP16 weights and compute except in `islands`; float32 inputs and outputs.

    Args:
        model: the FP32 graph (nodes in topological order, as the graph builders write them).
        islands: names of the nodes that compute in FP32.
    Returns:
        A new ModelProto.
    """
    islands = set(islands)
    types = _float_tensors(model)
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    is_float = {name for name, t in types.items() if t == TensorProto.FLOAT}
    dtype: dict[str, int] = {i.name: TensorProto.FLOAT for i in g.input if i.name in is_float}
    new_inits: dict[str, onnx.TensorProto] = {}
    new_nodes: list[onnx.NodeProto] = []
    casts: dict[tuple[str, int], str] = {}

    def init_as(name: str, want: int) -> str:
        if want == TensorProto.FLOAT:
            new_inits.setdefault(name, inits[name])
            return name
        key = f"{name}/fp16"
        if key not in new_inits:
            new_inits[key] = numpy_helper.from_array(
                numpy_helper.to_array(inits[name]).astype(np.float16), key
            )
        return key

    def cast_to(name: str, want: int) -> str:
        if dtype.get(name, TensorProto.FLOAT) == want:
            return name
        if (name, want) not in casts:
            suffix = "fp16" if want == TensorProto.FLOAT16 else "fp32"
            out = f"{name}/to_{suffix}"
            new_nodes.append(helper.make_node("Cast", [name], [out], name=f"{name}/Cast_{suffix}", to=want))
            dtype[out] = want
            casts[(name, want)] = out
        return casts[(name, want)]

    for node in g.node:
        want = TensorProto.FLOAT if node.name in islands else TensorProto.FLOAT16
        new = onnx.NodeProto()
        new.CopyFrom(node)
        for idx, name in enumerate(node.input):
            if not name or name not in is_float:
                if name in inits:
                    new_inits.setdefault(name, inits[name])
                continue
            new.input[idx] = init_as(name, want) if name in inits else cast_to(name, want)
        if node.op_type == "Cast":  # an existing cast keeps its target type
            for out in node.output:
                dtype[out] = types.get(out, TensorProto.UNDEFINED)
        else:
            for out in node.output:
                if out in is_float:
                    dtype[out] = want
        new_nodes.append(new)

    graph = helper.make_graph(
        new_nodes,
        g.name,
        list(g.input),
        list(g.output),
        initializer=list(new_inits.values()),
        doc_string=g.doc_string + " (FP16)",
    )
    out = helper.make_model(graph, opset_imports=list(model.opset_import), producer_name=model.producer_name)
    out.ir_version = model.ir_version
    return out
