"""Triton python-backend model: one vsrn-deploy ONNX graph (model.onnx beside this file) in ONNX Runtime.

Written by `vsrn-deploy triton-repo --backend python` as `<model>/1/model.py`, for servers without
Triton's onnxruntime backend (CPU builds, the server inside nvidia-pytriton). Needs numpy and
onnxruntime in the Python that runs the backend stub; no torch, no vsrn-deploy.

Dynamic batching hands `execute` several requests at once: their inputs are stacked into one batch
(ragged `token_ids` padded with 0, which `lengths` makes inert, then cut to the longest caption so the
text GRU runs no step that is padding only), run once, and the outputs split back
per request as C-contiguous arrays (KServe-v2 JSON needs them so). A request the graph refuses
(ids outside the vocabulary, lengths outside 1..tokens) gets its own error, the others still run.
"""

from __future__ import annotations

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


def _param(config: dict, key: str, default: str = "") -> str:
    return config.get("parameters", {}).get(key, {}).get("string_value", default)


def _threads(config: dict, providers: str) -> int:
    """ONNX Runtime's intra-op threads for this instance: the `intra_op_threads` parameter, where "0"
    (the default written) means this instance's share of the CPUs the server may use. CPU instances
    run side by side, so N instances each take cores // N (at least 1) instead of each spinning a
    thread per core; on 2 cores two 1-thread sessions ran 1,280 INT8 paper-size captions/s at batch 8
    against 1,019 for one 2-thread session. A GPU provider's session gets ONNX Runtime's own default."""
    threads = int(_param(config, "intra_op_threads", "0"))
    if threads > 0 or not providers.startswith("CPU"):
        return threads
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    instances = sum(int(g.get("count", 1)) for g in config.get("instance_group", [])
                    if g.get("kind", "KIND_CPU") == "KIND_CPU") or 1
    return max(1, cpus // instances)


def _stack(arrays: list[np.ndarray]) -> np.ndarray:
    """Concatenate along the batch axis; trailing axes that differ are padded with 0 at the end."""
    widest = tuple(max(a.shape[d] for a in arrays) for d in range(1, arrays[0].ndim))
    padded = [np.pad(a, [(0, 0)] + [(0, w - s) for w, s in zip(widest, a.shape[1:], strict=True)])
              if a.shape[1:] != widest else a for a in arrays]
    return np.concatenate(padded)


class TritonPythonModel:
    """One ONNX Runtime session, fed the batch Triton's dynamic batcher assembled."""

    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        folder = os.path.join(args["model_repository"], args["model_version"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = _threads(config, _param(config, "providers", "CPUExecutionProvider"))
        options.inter_op_num_threads = 1
        wanted = _param(config, "providers", "CPUExecutionProvider").split(",")
        providers = [p for p in wanted if p in ort.get_available_providers()] or ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(os.path.join(folder, "model.onnx"), options, providers=providers)
        self.ranks = {i.name: len(i.shape) for i in self.session.get_inputs()}
        numpy_type = pb_utils.triton_string_to_numpy
        self.inputs = [(t["name"], numpy_type(t["data_type"])) for t in config["input"]]
        self.outputs = [(t["name"], numpy_type(t["data_type"])) for t in config["output"]]
        self.tokens_input = _param(config, "tokens_input")
        self.lengths_input = _param(config, "lengths_input")

    def _feed(self, request) -> dict[str, np.ndarray]:
        feed = {}
        for name, dtype in self.inputs:
            array = pb_utils.get_input_tensor_by_name(request, name).as_numpy().astype(dtype, copy=False)
            if array.ndim > self.ranks[name]:  # [batch, 1] per-row scalars -> [batch]
                array = array.reshape(array.shape[: self.ranks[name]])
            feed[name] = array
        if self.lengths_input:
            lengths, width = feed[self.lengths_input], feed[self.tokens_input].shape[1]
            if lengths.size and (lengths.min() < 1 or lengths.max() > width):
                raise ValueError(f"{self.lengths_input} must lie in 1..{width} (the {self.tokens_input} "
                                 f"width), got {lengths.min()}..{lengths.max()}")
        return feed

    def _run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        if self.lengths_input:  # token columns past the longest caption are padding (the tokenizer
            # rounds each request's width up, so that requests batch): the GRU would still step over them
            lengths, tokens = feed[self.lengths_input], feed[self.tokens_input]
            if lengths.size and int(lengths.max()) < tokens.shape[1]:
                feed = {**feed, self.tokens_input: np.ascontiguousarray(tokens[:, : int(lengths.max())])}
        return self.session.run([name for name, _ in self.outputs], feed)

    def _response(self, outputs: list[np.ndarray]):
        tensors = [pb_utils.Tensor(name, np.ascontiguousarray(out, dtype=dtype))
                   for (name, dtype), out in zip(self.outputs, outputs, strict=True)]
        return pb_utils.InferenceResponse(output_tensors=tensors)

    @staticmethod
    def _error(exc: Exception):
        return pb_utils.InferenceResponse(
            error=pb_utils.TritonError(str(exc).splitlines()[0][:500], pb_utils.TritonError.INVALID_ARG))

    def execute(self, requests: list) -> list:
        feeds: list = []
        for request in requests:
            try:
                feeds.append(self._feed(request))
            except Exception as exc:  # noqa: BLE001 - a bad request gets its own error
                feeds.append(exc)
        good = [f for f in feeds if not isinstance(f, Exception)]
        merged = None
        if len(good) > 1:
            try:
                merged = self._run({name: _stack([f[name] for f in good]) for name, _ in self.inputs})
            except Exception:  # noqa: BLE001 - one bad request: run each alone so only it fails
                merged = None
        responses, row = [], 0
        for feed in feeds:
            if isinstance(feed, Exception):
                responses.append(self._error(feed))
                continue
            rows = len(next(iter(feed.values())))
            if merged is not None:
                responses.append(self._response([out[row : row + rows] for out in merged]))
                row += rows
                continue
            try:
                responses.append(self._response(self._run(feed)))
            except Exception as exc:  # noqa: BLE001
                responses.append(self._error(exc))
        return responses
