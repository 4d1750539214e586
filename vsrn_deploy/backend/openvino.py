"""The OpenVINO runner: the export's ONNX graphs compiled by OpenVINO for the CPU, for every OpenVINO
row of the backend table (`openvino`: the FP32 graphs; `openvino-int8`: the INT8 graphs, as exported
for ONNX Runtime: dynamic quantization, MatMulInteger).

OpenVINO reads the export's graph file as it is (no conversion step, no IR files written), compiles
it once in `activate()` and runs it with the contract's input and output names. Compute stays in
FP32 outside the INT8 matmuls: OpenVINO's CPU plugin would otherwise pick bf16 on CPUs that have it
(AMX, AVX512-BF16), so the inference precision is pinned to f32, and each row is judged by the
parity bounds of its graph's precision.

One repair is made to the graph as OpenVINO reads it, never to the file: OpenVINO (2026.4, CPU)
ignores the `sequence_lens` input of ONNX's GRU. Its `Y_h` is the state after the LAST padded step,
not after each caption's own last token, so every caption shorter than its batch's longest would be
embedded wrongly (max abs error ~0.1 on a tiny model). The per-step output `Y` is right up to each
caption's length, so the runner takes the final state from there: `Y[b, :, lengths[b] - 1]` (exact
whether or not a later OpenVINO masks the padded steps).

Imports neither torch nor (at module level) openvino.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from vsrn_deploy.backend.base import INPUT_NAMES, OUTPUT_NAMES, Runner
from vsrn_deploy.backend.feeds import check_feed
from vsrn_deploy.core.errors import VsrnError, import_optional

# device -> OpenVINO's device name
_DEVICES = {"cpu": "CPU"}
# what OpenVINO's inference precision hint says for each graph precision the runner may be given
_INFERENCE_PRECISION = {"fp32": "f32", "fp16": "f16", "int8": "f32"}


class OpenVinoRunner(Runner):
    """Runs one exported graph in OpenVINO.

    Args:
        encoder: "image" or "text".
        onnx_path: the .onnx file.
        device: "cpu" (OpenVINO's CPU plugin).
        threads: inference threads (None: OpenVINO's default, one per core).
        row: its backend table row (its precision: the inference precision asked of OpenVINO).
    """

    def __init__(self, encoder: str, onnx_path: str | os.PathLike, *, device: str = "cpu",
                 threads: int | None = None, row: Any = None) -> None:
        super().__init__(encoder)
        if device not in _DEVICES:
            raise VsrnError(f"openvino runs on {', '.join(sorted(_DEVICES))} here, not {device!r}; "
                            "use --device cpu")
        if threads is not None and threads < 1:
            raise VsrnError(f"threads must be >= 1, got {threads}")
        if row is not None:
            self.backend = row.name
        self.precision = row.precision if row is not None else "fp32"
        self.onnx_path = Path(onnx_path)
        self.device = device
        self.threads = threads
        self.compiled: Any = None
        self._request: Any = None
        self._outputs: list[str] = []

    def _activate(self) -> None:
        ov = import_optional("openvino", "openvino", "running ONNX graphs in OpenVINO")
        if not self.onnx_path.is_file():
            raise VsrnError(f"ONNX graph not found: {self.onnx_path}")
        core = ov.Core()
        try:
            model = core.read_model(str(self.onnx_path))
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own
            raise VsrnError(f"OpenVINO cannot read {self.onnx_path}: {_first_line(exc)}") from None
        _take_last_valid_state(model)
        names = {name for port in model.inputs for name in port.get_names()}
        if missing := [n for n in INPUT_NAMES[self.encoder] if n not in names]:
            raise VsrnError(f"{self.onnx_path} lacks inputs {missing}; is it the {self.encoder} encoder?")
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": _INFERENCE_PRECISION[self.precision]}
        if self.threads is not None:
            config["INFERENCE_NUM_THREADS"] = self.threads
        try:
            self.compiled = core.compile_model(model, _DEVICES[self.device], config)
        except Exception as exc:
            raise VsrnError(f"OpenVINO cannot compile {self.onnx_path} for {_DEVICES[self.device]}: "
                            f"{_first_line(exc)}") from None
        produced = {name for port in self.compiled.outputs for name in port.get_names()}
        self._outputs = [n for n in OUTPUT_NAMES[self.encoder] if n in produced]
        if not self._outputs:
            raise VsrnError(f"{self.onnx_path} has none of the outputs {list(OUTPUT_NAMES[self.encoder])}")
        self._request = self.compiled.create_infer_request()

    def _deactivate(self) -> None:
        self._request = None
        self.compiled = None

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = check_feed(self.encoder, feed)
        self._request.infer(feed)
        # copies: the request's output buffers are reused by the next call
        return {n: np.array(self._request.get_tensor(n).data, dtype=np.float32, copy=True)
                for n in self._outputs}


def _take_last_valid_state(model: Any) -> int:
    """Rewire every consumer of a forward recurrent sequence's final state (`Ho`, output 1) to the
    per-step output at each sequence's last valid step, `Y[b, 0, lengths[b] - 1]` (see the module
    docstring). Returns the number of sequences rewired.

    Raises:
        VsrnError: a reverse or bidirectional recurrence whose final state is used (not exported by
            vsrn-deploy; its repair would differ).
    """
    import openvino.opset13 as ops

    rewired = 0
    for node in model.get_ordered_ops():
        if node.get_type_name() not in ("GRUSequence", "RNNSequence"):
            continue
        final = node.output(1)  # Ho: [batch, directions, hidden]
        if not final.get_target_inputs():
            continue
        if str(node.get_attributes().get("direction", "forward")).lower() != "forward":
            raise VsrnError(f"{node.get_friendly_name()}: OpenVINO ignores the sequence lengths of a "
                            "recurrence and only forward ones are repaired here")
        per_step = ops.squeeze(node.output(0), ops.constant(np.array([1], dtype=np.int64)))  # [B, T, H]
        last = ops.subtract(ops.convert(node.input_value(2), "i64"), ops.constant(np.int64(1)))
        state = ops.gather(per_step, last, ops.constant(np.int64(1)), batch_dims=1)  # [B, H]
        state = ops.unsqueeze(state, ops.constant(np.array([1], dtype=np.int64)))  # [B, 1, H]
        for target in list(final.get_target_inputs()):
            target.replace_source_output(state.output(0))
        rewired += 1
    if rewired:
        model.validate_nodes_and_infer_types()
    return rewired


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
