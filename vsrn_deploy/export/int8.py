"""INT8 graphs for ONNX Runtime on the CPU, with the FP32 nodes chosen from measured error.

At batch 1 both encoders are bound by streaming weights (the image GRU reads its recurrent matrix
at each of its k-1 steps, the text GRU at each token); INT8 weights are a quarter of the bytes and
ONNX Runtime runs them on integer kernels (VNNI / AMX where the CPU has them).

Scheme (both graphs): weights int8, symmetric, one scale per output channel (per-tensor scales lose
small channels next to large ones); activations uint8, asymmetric, one scale and zero point per
tensor computed at each call (dynamic quantization: no calibrated activation ranges to go stale).
Only MatMuls with a weight operand are candidates. By policy the activation x activation MatMuls
(each GCN layer's affinity and aggregation: no weights to stream, both operands would lose digits)
and every other node (the normalisations, the GRU gates, the outputs) stay FP32.

Which weights are quantized is decided from data (`choose_int8`): the candidates are grouped by
weight (the unrolled image GRU's steps share one recurrent matrix: one decision); each group alone
is quantized and its output error measured on calibration inputs against the FP32 graph (loss =
1 - the smallest row cosine of any output). A group whose loss exceeds `node_share` of the
precision's cosine budget (1 - `PARITY["int8"].min_cosine`) stays FP32; then all accepted groups
together must stay within `total_share` of the budget, else the most sensitive accepted group is
reverted until they do. The measurements and the reason for every FP32 weight go in the manifest.

- Image graph: the FP32 graph with each GRU step's two recurrent MatMuls (h @ wh_rz, h @ wh_n) merged
  into one over `gru.wh` = [wh_rz | wh_n] with the n gate's bias folded in (`merge_recurrent`: one
  GEMV per step that streams the whole recurrent matrix, two fewer nodes per step, one decision), then
  `onnxruntime.quantization.quantize_dynamic` (per channel, QInt8) on the chosen nodes.
- Text graph: ONNX Runtime has no quantized GRU node, and the FP32 graph's GRU node cannot be
  quantized. `build_text_loop` writes the same GRU as a `Loop` over the tokens (the token axis stays
  dynamic; rows past their length keep their state, as the GRU node's `sequence_lens` does) with
  the first layer's input projection as one MatMul over all tokens before the loop and the recurrent
  projection inside it, each either FP32 or quantized in the pattern quantize_dynamic writes
  (DynamicQuantizeLinear -> MatMulInteger -> scale), which ONNX Runtime fuses into one kernel.

Inputs and outputs keep their float32 / int64 types and names (contract unchanged). The graphs are
for ONNX Runtime's CPU provider (MatMulInteger and Loop), not for TensorRT.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from vsrn_deploy.backend.base import Runner
from vsrn_deploy.core import backends
from vsrn_deploy.core.contract import IMAGE, PARITY, TEXT
from vsrn_deploy.evaluation import compare
from vsrn_deploy.export.graphs import GRU_BH_N, GRU_WH_N, GRU_WH_RZ, GraphBuilder
from vsrn_deploy.export.validation import graph_runner

# the names the INT8 checks are labelled with: ONNX Runtime's FP32 and INT8 backends
_ORT = backends.runs(backends.Family.ONNXRUNTIME, "fp32")
_ORT_INT8 = backends.runs(backends.Family.ONNXRUNTIME, "int8")
DEFAULT_NODE_SHARE = 0.05
DEFAULT_TOTAL_SHARE = 0.25
STATIC_NOTE = (
    "not used: in ONNX Runtime at the paper's sizes, calibrated (static) activation ranges were less "
    "accurate than dynamic ones and no faster (benchmarks/results/int8_cpu.md)"
)
POLICY_REASON = "activation x activation MatMul (GCN affinity / aggregation): no weights to stream"
MERGED_WH, MERGED_BH = "gru.wh", "gru.bh"
IMAGE_FORM = (
    "FP32 graph with each GRU step's recurrent MatMuls merged into one (gru.wh = [wh_rz | wh_n], the n "
    "gate's bias folded in as gru.bh), MatMuls quantized by onnxruntime.quantization.quantize_dynamic"
)
TEXT_FORM = (
    "GRU as a Loop over the tokens (dynamic token axis; rows past their length keep their state); "
    "layer-0 input projection one MatMul before the loop, recurrent projection inside it"
)


@dataclass(frozen=True)
class Int8Settings:
    """How the INT8 graphs are made.

    Args:
        per_channel: one weight scale per output channel (False: one per tensor; tests only).
        search: decide per weight group from measured error (False: quantize every candidate).
        node_share: a group alone may cost at most this share of the cosine budget.
        total_share: all quantized groups together may cost at most this share.
    """

    per_channel: bool = True
    search: bool = True
    node_share: float = DEFAULT_NODE_SHARE
    total_share: float = DEFAULT_TOTAL_SHARE

    @property
    def budget(self) -> float:
        """1 - the smallest row cosine INT8 graphs must keep (from the contract's parity bounds)."""
        return 1.0 - float(PARITY["int8"].min_cosine)

    def describe(self) -> dict[str, Any]:
        """The settings as the manifest records them."""
        return {
            **asdict(self),
            "weights": "int8, symmetric, "
            + ("one scale per output channel" if self.per_channel else "one scale per tensor"),
            "activations": "uint8, asymmetric, one scale and zero point per tensor, computed at each "
            "call (dynamic)",
            "op_types": ["MatMul"],
            "cosine_budget": self.budget,
            "node_limit": self.budget * self.node_share,
            "total_limit": self.budget * self.total_share,
        }


@dataclass
class Int8Graph:
    """One INT8 graph and how it was chosen."""

    model: onnx.ModelProto
    groups: dict[str, dict[str, Any]]  # weight -> {nodes, loss, int8, reason}
    fp32_nodes: dict[str, str]  # MatMul node -> why it stayed FP32
    loss: float  # measured loss of the chosen graph on the calibration inputs
    loss_all: float | None  # measured loss with every candidate quantized
    form: str = IMAGE_FORM
    extra: dict[str, Any] = field(default_factory=dict)

    def manifest_entry(self) -> dict[str, Any]:
        return {
            "form": self.form,
            "int8_weights": [w for w, g in self.groups.items() if g["int8"]],
            "groups": self.groups,
            "fp32_nodes": self.fp32_nodes,
            "calibration_loss": self.loss,
            "calibration_loss_all_int8": self.loss_all,
            **self.extra,
        }


# --- measuring ------------------------------------------------------------------------------------


def run_all(model: onnx.ModelProto, encoder: str,
            feeds: Sequence[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """Every output of `model` (the `encoder` graph, "image" or "text") on each feed, by name: the
    graph runs in the export checks' ONNX Runtime runner (`validation.graph_runner`)."""
    with graph_runner(encoder, model) as runner:
        return [runner.infer(feed) for feed in feeds]


def output_loss(reference: list[dict[str, np.ndarray]], got: list[dict[str, np.ndarray]]) -> float:
    """1 - the smallest row cosine (`compare.row_cosine`, the export checks' own measure) over every
    output and feed (rows: the last axis)."""
    worst = 1.0
    for ref_outs, got_outs in zip(reference, got, strict=True):
        for name, a in ref_outs.items():
            cos = compare.row_cosine(a, got_outs[name])
            worst = min(worst, float(cos.min()) if cos.size else 1.0)
    return 1.0 - worst


def choose_int8(
    groups: Sequence[str],
    loss_of: Callable[[Sequence[str]], float],
    settings: Int8Settings,
) -> tuple[dict[str, dict[str, Any]], float, float | None]:
    """Decide which weight groups are quantized, from measured loss.

    Args:
        groups: candidate weight groups.
        loss_of: measured loss with exactly the given groups quantized.
        settings: shares of the budget (and `search=False`: take every group).
    Returns:
        ({group: {"loss", "int8", "reason"}}, loss of the chosen set, loss with all groups or None).
    """
    if not settings.search:
        decided = {g: {"loss": None, "int8": True, "reason": "quantized without measuring (search off)"}
                   for g in groups}
        return decided, loss_of(list(groups)), None
    node_limit = settings.budget * settings.node_share
    total_limit = settings.budget * settings.total_share
    decided: dict[str, dict[str, Any]] = {}
    for g in groups:
        loss = loss_of([g])
        ok = loss <= node_limit
        decided[g] = {
            "loss": loss,
            "int8": ok,
            "reason": f"alone costs {loss:.3g} <= {node_limit:.3g}" if ok
            else f"FP32: alone costs {loss:.3g} > {node_limit:.3g} (1 - min cosine)",
        }
    loss_all = loss_of(list(groups)) if groups else 0.0
    chosen = [g for g in groups if decided[g]["int8"]]
    total = loss_all if len(chosen) == len(groups) else (loss_of(chosen) if chosen else 0.0)
    while chosen and total > total_limit:
        worst = max(chosen, key=lambda g: decided[g]["loss"])
        chosen.remove(worst)
        decided[worst]["int8"] = False
        decided[worst]["reason"] = (
            f"FP32: together the quantized weights cost {total:.3g} > {total_limit:.3g}; this one "
            f"costs the most alone ({decided[worst]['loss']:.3g})"
        )
        total = loss_of(chosen) if chosen else 0.0
    return decided, total, loss_all


# --- image graph ---------------------------------------------------------------------------------


def weight_groups(model: onnx.ModelProto) -> tuple[dict[str, list[str]], dict[str, str]]:
    """MatMul candidates grouped by weight, and the MatMuls that stay FP32 by policy.

    Returns:
        ({weight initializer: [node names]}, {node name: reason}).
    """
    inits = {i.name for i in model.graph.initializer}
    groups: dict[str, list[str]] = {}
    policy: dict[str, str] = {}
    for node in model.graph.node:
        if node.op_type not in ("MatMul", "Gemm"):
            continue
        weight = next((i for i in node.input[1:2] if i in inits), None)
        if weight is None:
            policy[node.name] = POLICY_REASON
        else:
            groups.setdefault(weight, []).append(node.name)
    return groups, policy


def merge_recurrent(fp32: onnx.ModelProto) -> onnx.ModelProto:
    """The image graph with each GRU step's two recurrent MatMuls as one (same outputs, FP32).

    Each step's `h @ wh_rz` and `h @ wh_n + bh_n` become `Split(h @ [wh_rz | wh_n] + [0 | bh_n])`:
    at batch 1 the step is one GEMV over the whole recurrent matrix (bound by streaming it), ONNX
    Runtime fuses the bias into the quantized MatMul, and the recurrence is one weight group.
    A graph without the image GRU (mean pooling) comes back unchanged.
    """
    out = onnx.ModelProto()
    out.CopyFrom(fp32)
    graph = out.graph
    inits = {i.name: i for i in graph.initializer}
    if GRU_WH_RZ not in inits or GRU_WH_N not in inits:
        return out
    w_rz, w_n = numpy_helper.to_array(inits[GRU_WH_RZ]), numpy_helper.to_array(inits[GRU_WH_N])
    b_n = numpy_helper.to_array(inits[GRU_BH_N]).reshape(-1)
    d2, d = w_rz.shape[1], w_n.shape[1]
    n_matmuls = {n.input[0]: n for n in graph.node if n.op_type == "MatMul" and n.input[1] == GRU_WH_N}
    if not n_matmuls:  # one region: h0 = 0 is the only state, no recurrent MatMul to merge
        return out
    bias_adds = {n.input[0]: n for n in graph.node if n.op_type == "Add" and n.input[1] == GRU_BH_N}
    nodes: list[onnx.NodeProto] = []
    merged: set[str] = set()
    for node in graph.node:
        if node.op_type == "MatMul" and node.input[1] == GRU_WH_RZ:
            n_mm = n_matmuls[node.input[0]]  # the same step's n-gate MatMul (same h)
            add = bias_adds[n_mm.output[0]]
            merged |= {n_mm.name, add.name}
            step = node.name.rsplit("/rz/", 1)[0]
            mm, biased = f"{step}/h/MatMul:0", f"{step}/h/AddBias:0"
            nodes += [
                helper.make_node("MatMul", [node.input[0], MERGED_WH], [mm], name=f"{step}/h/MatMul"),
                helper.make_node("Add", [mm, MERGED_BH], [biased], name=f"{step}/h/AddBias"),
                helper.make_node("Split", [biased, "gru/split_rz_n"], [node.output[0], add.output[0]],
                                 name=f"{step}/h/Split", axis=-1),
            ]
        elif node.name not in merged:
            nodes.append(node)
    if len(merged) != 2 * len(n_matmuls):
        raise RuntimeError("merge_recurrent: the image GRU's recurrent MatMuls are not in the expected pairs")
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for n in graph.node for i in n.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept + [
        numpy_helper.from_array(np.concatenate([w_rz, w_n], axis=1), MERGED_WH),
        numpy_helper.from_array(np.concatenate([np.zeros(d2), b_n]).astype(np.float32), MERGED_BH),
        numpy_helper.from_array(np.array([d2, d], dtype=np.int64), "gru/split_rz_n"),
    ])
    return out


@contextlib.contextmanager
def quiet_quantizer() -> Iterator[None]:
    """onnxruntime.quantization logs a pre-processing hint on the root logger at every call."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def quantize_nodes(model: onnx.ModelProto, nodes: Sequence[str], per_channel: bool = True) -> onnx.ModelProto:
    """`model` with the MatMul `nodes` quantized dynamically by onnxruntime (weights int8)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if not nodes:
        out = onnx.ModelProto()
        out.CopyFrom(model)
        return out
    with tempfile.TemporaryDirectory(prefix="vsrn-int8-") as tmp, quiet_quantizer():
        path = Path(tmp) / "q.onnx"
        quantize_dynamic(
            model,
            str(path),
            op_types_to_quantize=["MatMul"],
            nodes_to_quantize=list(nodes),
            per_channel=per_channel,
            reduce_range=False,
            weight_type=QuantType.QInt8,
        )
        out = onnx.load(str(path))
    out.graph.doc_string = model.graph.doc_string + " (INT8 weights, dynamic quantization)"
    return out


def quantize_image(
    fp32: onnx.ModelProto, feeds: Sequence[dict[str, np.ndarray]], settings: Int8Settings
) -> Int8Graph:
    """The INT8 image graph: MatMul weights quantized where the measured output error allows.

    Args:
        fp32: the FP32 image graph.
        feeds: calibration inputs ({"region_features": ...}).
        settings: the quantization settings.
    Returns:
        The Int8Graph.
    """
    reference = run_all(fp32, IMAGE.key, feeds)
    fp32 = merge_recurrent(fp32)
    groups, policy = weight_groups(fp32)

    def loss_of(chosen: Sequence[str]) -> float:
        nodes = [n for g in chosen for n in groups[g]]
        return output_loss(reference, run_all(quantize_nodes(fp32, nodes, settings.per_channel), IMAGE.key,
                                              feeds))

    decided, loss, loss_all = choose_int8(list(groups), loss_of, settings)
    nodes = [n for g, d in decided.items() if d["int8"] for n in groups[g]]
    model = quantize_nodes(fp32, nodes, settings.per_channel)
    for g, d in decided.items():
        d["nodes"] = len(groups[g])
    fp32_nodes = dict(policy)
    for g, d in decided.items():
        if not d["int8"]:
            fp32_nodes.update(dict.fromkeys(groups[g], d["reason"]))
    return Int8Graph(model, decided, fp32_nodes, loss, loss_all)


# --- text graph ----------------------------------------------------------------------------------


def _quantize_weight(w: np.ndarray, per_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 of a (K, N) weight: (int8 weight, float32 scale per column or (1,))."""
    peak = np.abs(w).max(axis=0) if per_channel else np.array(np.abs(w).max())  # (N,) or a scalar
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    return np.clip(np.rint(w / scale), -127, 127).astype(np.int8), scale


def _matmul(b: GraphBuilder, x: str, w: np.ndarray, weight: str, name: str, quantize: bool,
            per_channel: bool) -> str:
    """x @ w in FP32, or in quantize_dynamic's INT8 pattern (fused by ONNX Runtime), added to `b`."""
    if not quantize:
        return b.op("MatMul", [x, b.const(weight, w)], f"{name}/MatMul")
    wq, scale = _quantize_weight(w, per_channel)
    xq, xs, xz = b.node("DynamicQuantizeLinear", [x], f"{name}/QuantizeInput", n_out=3)
    zero = np.zeros(scale.shape, dtype=np.int8)
    acc = b.op(
        "MatMulInteger",
        [xq, b.const(f"{weight}_quantized", wq), xz, b.const(f"{weight}_zero_point", zero)],
        f"{name}/MatMulInteger",
    )
    acc = b.op("Cast", [acc], f"{name}/Cast", to=TensorProto.FLOAT)
    s = b.op("Mul", [xs, b.const(f"{weight}_scale", scale)], f"{name}/Scale")
    return b.op("Mul", [acc, s], f"{name}/Dequantize")


def text_weight_groups(fp32: onnx.ModelProto) -> list[str]:
    """The text graph's quantizable weights: each GRU layer's input (W) and recurrent (R) matrices."""
    inits = {i.name for i in fp32.graph.initializer}
    layers = sum(1 for n in fp32.graph.node if n.op_type == "GRU")
    return [f"rnn/l{i}.{m}" for i in range(layers) for m in ("W", "R") if f"rnn/l{i}.{m}" in inits]


def build_text_loop(
    fp32: onnx.ModelProto, quantized: Sequence[str] = (), per_channel: bool = True
) -> onnx.ModelProto:
    """The text encoder with its GRU as a Loop, the `quantized` weights (`text_weight_groups`) INT8.

    Computes what the FP32 graph's GRU node computes (ONNX gate order z, r, h, linear_before_reset=1,
    state frozen past each row's length, lengths below 1 counted as 1).

    Args:
        fp32: the FP32 text graph (`graphs.build_text_graph`): its weights and I/O are reused.
        quantized: weights to quantize ("rnn/l0.W", "rnn/l0.R", ...).
        per_channel: one weight scale per output channel.
    Returns:
        The ModelProto: token_ids (B, T) int64, lengths (B,) int64 -> text_embedding (B, D).
    """
    src = {i.name: numpy_helper.to_array(i) for i in fp32.graph.initializer}
    gru_nodes = [n for n in fp32.graph.node if n.op_type == "GRU"]
    layers = len(gru_nodes)
    d = next(a.i for a in gru_nodes[0].attribute if a.name == "hidden_size")
    eps = float(src["embed_norm/eps"].reshape(-1)[0])
    use_abs = any(n.op_type == "Abs" for n in fp32.graph.node)
    quantized = set(quantized)
    inits: dict[str, onnx.TensorProto] = {}  # shared by the main graph and the loop body (outer-scope names)
    b = GraphBuilder(initializers=inits, keep_0d=True)
    i64 = np.int64

    def weights(layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        p = f"rnn/l{layer}"
        bias = src[f"{p}.B"][0]
        return src[f"{p}.W"][0].T, src[f"{p}.R"][0].T, bias[: 3 * d], bias[3 * d :]  # (in, 3D), (D, 3D)

    emb = b.op("Gather", [b.const("embed.weight", src["embed.weight"]), "token_ids"], "embed/Gather", axis=0)
    w0, _, wb0, _ = weights(0)
    q = "rnn/l0.W" in quantized
    x0 = _matmul(b, emb, w0, "rnn/l0.W", "rnn/l0/input", q, per_channel)  # (B, T, 3D)
    x0 = b.op("Add", [x0, b.const("rnn/l0.Wb", wb0)], "rnn/l0/input/Add")
    x0 = b.op("Transpose", [x0], "rnn/l0/input/Transpose", perm=[1, 0, 2])  # (T, B, 3D)
    shape = b.op("Shape", ["token_ids"], "tokens/Shape")
    steps = b.op("Gather", [shape, b.const("index_1", np.array(1, dtype=i64))], "tokens/Gather", axis=0)
    batch = b.op("Slice", [shape, b.const("start_0", np.array([0], dtype=i64)),
                           b.const("end_1", np.array([1], dtype=i64))], "batch/Slice")
    h0_shape = b.op("Concat", [batch, b.const("hidden", np.array([d], dtype=i64))], "h0/Concat", axis=0)
    h0 = b.op("ConstantOfShape", [h0_shape], "h0/Zeros",
              value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]))  # (B, D)
    lens = b.op("Max", ["lengths", b.const("lengths/one", np.array(1, dtype=i64))], "lengths/ClampMin")
    lens = b.op("Unsqueeze", [lens, b.const("axes_1", np.array([1], dtype=i64))], "lengths/Unsqueeze")

    body = GraphBuilder(initializers=inits, keep_0d=True)
    split_in = b.const("split_2d_d", np.array([2 * d, d], dtype=i64))
    split_zr = b.const("split_d_d", np.array([d, d], dtype=i64))
    valid = body.op("Less", ["t", lens], "step/valid/Less")  # (B, 1)
    x = body.op("Gather", [x0, "t"], "step/l0/input/Gather", axis=0)  # (B, 3D)
    states = []
    for layer in range(layers):
        p = f"step/l{layer}"
        w, r, wb, rb = weights(layer)
        h = f"h{layer}_in"
        if layer > 0:
            wname = f"rnn/l{layer}.W"
            x = _matmul(body, x, w, wname, f"{p}/input", wname in quantized, per_channel)
            x = body.op("Add", [x, b.const(f"rnn/l{layer}.Wb", wb)], f"{p}/input/Add")
        rname = f"rnn/l{layer}.R"
        hr = _matmul(body, h, r, rname, f"{p}/recurrent", rname in quantized, per_channel)
        hr = body.op("Add", [hr, b.const(f"rnn/l{layer}.Rb", rb)], f"{p}/recurrent/Add")  # (B, 3D)
        x_zr, x_h = body.node("Split", [x, split_in], f"{p}/input/Split", n_out=2, axis=1)
        h_zr, h_h = body.node("Split", [hr, split_in], f"{p}/recurrent/Split", n_out=2, axis=1)
        zr = body.op("Sigmoid", [body.op("Add", [x_zr, h_zr], f"{p}/zr/Add")], f"{p}/zr/Sigmoid")
        z, r_gate = body.node("Split", [zr, split_zr], f"{p}/zr/Split", n_out=2, axis=1)
        n = body.op("Mul", [r_gate, h_h], f"{p}/n/ResetMul")
        n = body.op("Tanh", [body.op("Add", [x_h, n], f"{p}/n/Add")], f"{p}/n/Tanh")
        diff = body.op("Sub", [h, n], f"{p}/h/Sub")
        new = body.op("Add", [n, body.op("Mul", [z, diff], f"{p}/h/Mul")], f"{p}/h/Add")  # n + z (h - n)
        states.append(body.op("Where", [valid, new, h], f"{p}/h/KeepPastLength"))
        x = new
    body.nodes.append(helper.make_node("Identity", ["cond_in"], ["cond_out"], name="step/cond"))
    for layer, s in enumerate(states):
        body.nodes.append(helper.make_node("Identity", [s], [f"h{layer}_out"], name=f"step/l{layer}/out"))
    f32 = TensorProto.FLOAT
    body_graph = helper.make_graph(
        body.nodes,
        "gru_step",
        [helper.make_tensor_value_info("t", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, [])]
        + [helper.make_tensor_value_info(f"h{i}_in", f32, ["batch", d]) for i in range(layers)],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, [])]
        + [helper.make_tensor_value_info(f"h{i}_out", f32, ["batch", d]) for i in range(layers)],
    )
    finals = b.node("Loop", [steps, "", *([h0] * layers)], "rnn/Loop", n_out=layers, body=body_graph)
    feats = finals[-1]  # (B, D): the last layer's state at each row's length - 1
    feats = b.l2norm(feats, 1, eps, "embed_norm")  # the FP32 graph's normalisation, eps kept 0-d
    if use_abs:
        feats = b.op("Abs", [feats], "embed/Abs")
    b.nodes.append(helper.make_node("Identity", [feats], ["text_embedding"], name="text_embedding"))
    graph = helper.make_graph(
        b.nodes,
        fp32.graph.name,
        list(fp32.graph.input),
        list(fp32.graph.output),
        initializer=list(inits.values()),
        doc_string=f"{fp32.graph.doc_string}; {TEXT_FORM}; INT8 weights: {sorted(quantized) or 'none'}",
    )
    model = helper.make_model(graph, opset_imports=list(fp32.opset_import), producer_name="vsrn-deploy")
    model.ir_version = fp32.ir_version
    return model


def quantize_text(
    fp32: onnx.ModelProto, feeds: Sequence[dict[str, np.ndarray]], settings: Int8Settings
) -> Int8Graph:
    """The INT8 text graph (`build_text_loop`) with the weights the measured error allows."""
    groups = text_weight_groups(fp32)
    reference = run_all(fp32, TEXT.key, feeds)

    def loss_of(chosen: Sequence[str]) -> float:
        return output_loss(reference, run_all(build_text_loop(fp32, chosen, settings.per_channel), TEXT.key,
                                              feeds))

    decided, loss, loss_all = choose_int8(groups, loss_of, settings)
    chosen = [g for g, d in decided.items() if d["int8"]]
    model = build_text_loop(fp32, chosen, settings.per_channel)
    fp32_nodes = {}
    for g, d in decided.items():
        d["nodes"] = 1
        if not d["int8"]:
            fp32_nodes[g] = d["reason"]
    return Int8Graph(model, decided, fp32_nodes, loss, loss_all, form=TEXT_FORM,
                     extra={"embedding": "FP32 (a Gather: no arithmetic to speed up)"})


# --- export --------------------------------------------------------------------------------------


@dataclass
class CheckInputs:
    """What the export checks the INT8 graphs on (the same inputs as the other precisions).

    Attributes:
        batches: the batch sizes checked.
        image, text: per batch size, the image and text feeds.
        reference: {"image", "text"}: the eager FP32 model's active runners (`validation.reference_runner`).
        retrieval_set: returns (image feed, text feed, (eager image, eager caption embeddings)) of
            the synthetic retrieval set (5 captions per image); computed once per export.
    """

    batches: Sequence[int]
    image: dict[int, dict[str, np.ndarray]]
    text: dict[int, dict[str, np.ndarray]]
    reference: dict[str, Runner]
    retrieval_set: Callable[[], tuple[dict, dict, tuple[np.ndarray, np.ndarray]]]


def export_int8(
    fp32_models: dict[str, onnx.ModelProto],
    out_dir: Path,
    *,
    image_calibration: np.ndarray,
    text_calibration: dict[str, np.ndarray],
    settings: Int8Settings,
    validator: Any,
    inputs: CheckInputs,
    write: Callable[[onnx.ModelProto, Path], None],
    say: Callable[[str], None] = lambda _msg: None,
) -> dict[str, Any]:
    """Make, write and check `image_encoder.int8.onnx` and `text_encoder.int8.onnx`.

    The checks go into `validator` (the export's `validation.Validator`, which fails the export),
    judged by `compare.judge` under `PARITY["int8"]`: graph hygiene; the written files (in ONNX
    Runtime's runner) against the eager reference's runners, every row's cosine at each batch size;
    on the synthetic retrieval set, R@1/5/10 changed beyond near-ties and the tie-aware top-1
    agreement; a row holding NaN or Inf fails anywhere.

    Returns:
        {"paths": {graph: written path}, "manifest": the manifest's "int8" entry,
        "retrieval": {the ONNX Runtime INT8 backend's name: the retrieval summary}}.
    """
    import time

    from onnxruntime import __version__ as ort_version

    from vsrn_deploy.core.contract import onnx_name
    from vsrn_deploy.export import graph_checks

    t0 = time.perf_counter()
    chunks = [image_calibration[i : i + 16] for i in range(0, len(image_calibration), 16)]
    made = {
        IMAGE.graph: quantize_image(fp32_models[IMAGE.graph], [dict(zip(IMAGE.input_names, [c], strict=True))
                                                               for c in chunks], settings),
        TEXT.graph: quantize_text(fp32_models[TEXT.graph], [text_calibration], settings),
    }
    forbidden = {IMAGE.graph: graph_checks.FORBIDDEN_IMAGE_OPS, TEXT.graph: frozenset()}
    paths: dict[str, Path] = {}
    runners: dict[str, Runner] = {}
    for spec in (IMAGE, TEXT):
        g = made[spec.graph]
        validator.problems += [f"{spec.graph} (int8): {p}" for p in graph_checks.graph_problems(
            g.model, forbidden=forbidden[spec.graph])]
        path = out_dir / onnx_name(spec.graph, "int8")
        write(g.model, path)
        paths[spec.graph] = path
        runners[spec.key] = graph_runner(spec.key, path)  # the written file is what is checked
        n_int8 = sum(1 for d in g.groups.values() if d["int8"])
        all_int8 = "not measured" if g.loss_all is None else f"{g.loss_all:.3g}"
        say(f"{spec.graph}: {n_int8} of {len(g.groups)} weight groups INT8, {len(g.fp32_nodes)} "
            f"MatMul/weights FP32; calibration loss {g.loss:.3g} (all INT8: {all_int8})")
    say(f"INT8 graphs chosen and written in {time.perf_counter() - t0:.1f} s")

    with contextlib.ExitStack() as stack:
        for runner in runners.values():
            stack.enter_context(runner)
        for b in inputs.batches:
            for spec, feeds in ((IMAGE, inputs.image), (TEXT, inputs.text)):
                ref_out = inputs.reference[spec.key].infer_batched(feeds[b])
                validator.check(paths[spec.graph].name, _ORT, b, ref_out, runners[spec.key].infer(feeds[b]),
                                "int8")
        images, texts, ref = inputs.retrieval_set()
        got = (runners[IMAGE.key].infer_batched(images)[IMAGE.embedding],
               runners[TEXT.key].infer_batched(texts)[TEXT.embedding])
    summary = validator.check_retrieval(_ORT_INT8, ref, got, "int8")
    manifest = {
        "settings": settings.describe(),
        "quantizer": f"onnxruntime.quantization.quantize_dynamic (onnxruntime {ort_version}) for the image "
        "graph; the same pattern written directly for the text graph's Loop",
        "static_activations": STATIC_NOTE,
        "calibration": {"images": int(len(image_calibration)),
                        "captions": int(len(next(iter(text_calibration.values()))))},
        "graphs": {name: {"file": paths[name].name, **g.manifest_entry()} for name, g in made.items()},
        "runtime": "ONNX Runtime CPU provider (MatMulInteger, Loop); not for TensorRT",
    }
    return {"paths": paths, "manifest": manifest, "retrieval": {_ORT_INT8: summary}}
