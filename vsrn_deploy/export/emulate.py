"""A strict FP16 reference executor for the graphs vsrn-deploy writes.

ONNX Runtime's CPU provider has no FP16 kernels for MatMul, Add, Mul, Div, Sqrt, Sigmoid, Tanh,
ReduceSum, ... on x86: it wraps each such node in Casts to FP32 and then removes the
FP32 -> FP16 -> FP32 cast pairs between neighbouring nodes, so a chain of "FP16" nodes runs in FP32
and an FP16 overflow never shows (measured with ORT 1.32: Mul(1000, 1000) / 1e4 gives 100, not
inf). Validating FP16 graphs there alone would be optimistic.

This executor runs a graph node by node the way an FP16 engine does: inputs upcast, FP32
arithmetic and accumulation, every FP16 node's outputs rounded to FP16 (overflow -> inf). It
supports exactly the operators of `vsrn_deploy.export.graphs`; any other is an error.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.helper import tensor_dtype_to_np_dtype

from vsrn_deploy.backend.base import OUTPUT_NAMES, Runner
from vsrn_deploy.backend.feeds import check_feed


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)


def _gru(node: onnx.NodeProto, x, w, r, b, seq_lens) -> tuple[np.ndarray, np.ndarray]:
    """ONNX GRU, forward, layout 0, linear_before_reset=1, gates z, r, h. x (T, B, I)."""
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if attrs.get("linear_before_reset", 0) != 1 or attrs.get("direction", b"forward") not in (
        "forward",
        b"forward",
    ):
        raise NotImplementedError("only forward GRUs with linear_before_reset=1 are supported")
    d = int(attrs["hidden_size"])
    steps, batch = x.shape[0], x.shape[1]
    w, r, b = w[0], r[0], b[0]
    wb, rb = b[: 3 * d], b[3 * d :]
    h = np.zeros((batch, d), dtype=np.float32)
    ys = np.zeros((steps, 1, batch, d), dtype=np.float32)
    lens = np.full(batch, steps) if seq_lens is None else seq_lens.astype(np.int64)
    for t in range(steps):
        gi = x[t] @ w.T + wb  # (B, 3D): z, r, h
        gh = h @ r.T + rb
        z = _sigmoid(gi[:, :d] + gh[:, :d])
        rr = _sigmoid(gi[:, d : 2 * d] + gh[:, d : 2 * d])
        n = np.tanh(gi[:, 2 * d :] + rr * gh[:, 2 * d :])
        new_h = (1 - z) * n + z * h
        valid = (t < lens)[:, None]
        h = np.where(valid, new_h, h)
        ys[t, 0] = np.where(valid, new_h, 0.0)
    return ys, h[None]


def run_strict(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Execute `model` with FP32 arithmetic and FP16 rounding of every FP16-typed node output.

    Args:
        model: a graph written by vsrn-deploy (FP32 or FP16 with islands).
        feeds: input arrays keyed by input name.
    Returns:
        The graph outputs keyed by name.
    """
    env: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    # FP16 weights upcast once (the unrolled GRU reads the same matrices at every step)
    upcast = {name: a.astype(np.float32) for name, a in env.items() if a.dtype == np.float16}
    env.update(feeds)
    for node in model.graph.node:
        ins = [env[n] if n else None for n in node.input]
        # the node's compute dtype: FP16 when any float input is FP16
        half = any(a is not None and a.dtype == np.float16 for a in ins)
        f = [
            upcast[n]
            if n in upcast
            else (a.astype(np.float32) if a is not None and a.dtype == np.float16 else a)
            for n, a in zip(node.input, ins, strict=True)
        ]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        op = node.op_type
        if op == "MatMul":
            outs = [np.matmul(f[0], f[1])]
        elif op in ("Add", "Sub", "Mul", "Div", "Max"):
            fn = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Max": np.maximum}[
                op
            ]
            with np.errstate(all="ignore"):
                outs = [fn(f[0], f[1])]
        elif op == "Sigmoid":
            outs = [_sigmoid(f[0])]
        elif op in ("Tanh", "Sqrt", "Abs"):
            with np.errstate(all="ignore"):
                outs = [{"Tanh": np.tanh, "Sqrt": np.sqrt, "Abs": np.abs}[op](f[0])]
        elif op == "ReduceSum":
            outs = [np.sum(f[0], axis=tuple(int(a) for a in f[1]), keepdims=bool(attrs.get("keepdims", 1)))]
        elif op == "Split":
            points = np.cumsum(f[1])[:-1]
            outs = np.split(f[0], points, axis=attrs.get("axis", 0))
        elif op == "Transpose":
            outs = [np.transpose(f[0], attrs["perm"])]
        elif op == "Squeeze":
            outs = [np.squeeze(f[0], axis=tuple(int(a) for a in f[1]))]
        elif op == "Identity":
            outs = [f[0]]
        elif op == "Gather":
            outs = [np.take(f[0], f[1], axis=attrs.get("axis", 0))]
        elif op == "Cast":
            outs = [ins[0].astype(tensor_dtype_to_np_dtype(attrs["to"]))]
            half = False
        elif op == "GRU":
            outs = list(_gru(node, *(f + [None] * (5 - len(f)))[:5]))
        else:
            raise NotImplementedError(f"strict FP16 executor: unsupported operator {op} ({node.name})")
        for name, value in zip(node.output, outs, strict=False):
            if half and value.dtype == np.float32:
                with np.errstate(over="ignore"):
                    value = value.astype(np.float16)
            env[name] = value
    return {o.name: env[o.name] for o in model.graph.output}


class StrictFp16Runner(Runner):
    """The strict FP16 executor as a runner (`strict-fp16`): one encoder's graph (a ModelProto),
    run by `run_strict`; how the export checks its FP16 graphs beside ONNX Runtime."""

    backend = "strict-fp16"

    def __init__(self, encoder: str, model: onnx.ModelProto) -> None:
        super().__init__(encoder)
        self.model = model

    def _activate(self) -> None:
        pass

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outs = run_strict(self.model, check_feed(self.encoder, feed))
        return {name: outs[name] for name in OUTPUT_NAMES[self.encoder] if name in outs}
