"""The ONNX Runtime runner, for every ONNX Runtime row of the backend table (FP32, FP16 and INT8
graphs: `vsrn_deploy.core.backends`); the row says which graph precision it runs.

Imports neither torch nor (at module level) onnxruntime, so serving code stays light. Execution
providers: the CPU always; CUDA and TensorRT when the installed onnxruntime build has them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from vsrn_deploy.backend.base import INPUT_NAMES, OUTPUT_NAMES, Runner
from vsrn_deploy.backend.feeds import check_feed
from vsrn_deploy.core import contract
from vsrn_deploy.core.errors import VsrnError, import_optional

MANIFEST_NAME = contract.MANIFEST_NAME
# device -> the provider list handed to onnxruntime (best first; the CPU as the fallback for any
# node the accelerator does not take).
_PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


def _session(ort: Any, model: Any, threads: int | None, providers: list[str], quiet: bool) -> Any:
    """An ONNX Runtime session of a graph file or a ModelProto (all graph optimisations; `threads`
    intra-op threads, None: ONNX Runtime's default; `quiet`: its warnings and info not logged)."""
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if quiet:
        opts.log_severity_level = 3
    data = model.SerializeToString() if hasattr(model, "SerializeToString") else str(model)
    return ort.InferenceSession(data, opts, providers=providers)


def cpu_session(model: Any, threads: int | None = 2) -> Any:
    """A quiet ONNX Runtime CPU session of a graph file or a ModelProto, with `threads` intra-op
    threads (None: ONNX Runtime's default), for graphs that are not an encoder (the benchmarks'
    probes) or whose every output is wanted; encoders run through `OrtRunner`."""
    import onnxruntime as ort

    return _session(ort, model, threads, ["CPUExecutionProvider"], quiet=True)


def graph_path(onnx_dir: str | os.PathLike, encoder: str, precision: str = "fp32") -> Path:
    """Where the export put `encoder`'s graph of `precision` ("fp32", "fp16" or "int8"), asked of the
    artifacts layer (`vsrn_deploy.artifacts.export.graph_file`): with a manifest, the graph it names,
    checked against its sha256 before any runner uses it; without one, the contract's file name.

    Raises:
        VsrnError: the graph is not there or changed since export (with the command that writes it).
    """
    from vsrn_deploy.artifacts.export import graph_file

    return graph_file(onnx_dir, encoder, precision)


class OrtRunner(Runner):
    """Runs one exported graph in ONNX Runtime.

    Args:
        encoder: "image" or "text".
        onnx_path: the .onnx file, or an in-memory onnx ModelProto (the export's checks and the
            INT8 search run the graphs they make before or without writing them).
        device: "cpu", "cuda" or "tensorrt" (the execution provider to put first).
        threads: intra-op threads (None: onnxruntime's default, one per physical core).
        quiet: onnxruntime's warnings not logged (the export's checks run many sessions).
        row: its backend table row: its name is what `name` reports, its precision the graph's
            (None: an FP32 graph of no table row, as the export's checks run).
    """

    def __init__(self, encoder: str, onnx_path: str | os.PathLike | Any, *, device: str = "cpu",
                 threads: int | None = None, row: Any = None, quiet: bool = False) -> None:
        super().__init__(encoder)
        if device not in _PROVIDERS:
            raise VsrnError(f"onnxruntime device must be one of {sorted(_PROVIDERS)}, got {device!r}")
        if threads is not None and threads < 1:
            raise VsrnError(f"threads must be >= 1, got {threads}")
        if row is not None:
            self.backend = row.name
        self.precision = row.precision if row is not None else contract.PRECISIONS[0]
        self.model = onnx_path if hasattr(onnx_path, "SerializeToString") else None  # a ModelProto
        self.onnx_path = None if self.model is not None else Path(onnx_path)
        self.device = device
        self.threads = threads
        self.quiet = quiet
        self.session: Any = None

    def _activate(self) -> None:
        ort = import_optional("onnxruntime", "", "running ONNX graphs")
        if self.model is None and not self.onnx_path.is_file():
            raise VsrnError(f"ONNX graph not found: {self.onnx_path}")
        where = self.onnx_path or f"the in-memory {self.encoder} graph"
        wanted = _PROVIDERS[self.device]
        available = set(ort.get_available_providers())
        if wanted[0] not in available:
            raise VsrnError(f"onnxruntime here has no {wanted[0]} (available: {sorted(available)}); "
                            "install onnxruntime-gpu on a machine with an NVIDIA GPU, or use device='cpu'")
        try:
            source = self.model if self.model is not None else self.onnx_path
            self.session = _session(ort, source, self.threads,
                                    [p for p in wanted if p in available], self.quiet)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise VsrnError(f"onnxruntime cannot load {where}: {exc}") from None
        names = {i.name for i in self.session.get_inputs()}
        if encoder_inputs := [n for n in INPUT_NAMES[self.encoder] if n not in names]:
            raise VsrnError(f"{where} lacks inputs {encoder_inputs}; is it the "
                            f"{self.encoder} encoder?")

    def _deactivate(self) -> None:
        self.session = None

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = check_feed(self.encoder, feed)
        wanted = [o.name for o in self.session.get_outputs() if o.name in OUTPUT_NAMES[self.encoder]]
        values = self.session.run(wanted, feed)
        return {n: np.asarray(v, dtype=np.float32) for n, v in zip(wanted, values, strict=True)}
