"""`make_runner`: one entry point from a backend name (README, "Validate") to a runner.

Backend modules are imported only when asked for, so `make_runner("ort", ...)` and
`make_runner("trt", ...)` never import torch.
"""

from __future__ import annotations

import os
from typing import Any

from vsrn_deploy.backend.base import BACKENDS, ENCODERS, Runner
from vsrn_deploy.core.errors import VsrnError

TORCH_BACKENDS = ("torch", "torch-deploy", "torch-compile")


def make_runner(backend: str, encoder: str, *, model: Any = None, onnx_dir: str | os.PathLike = "export",
                engine_dir: str | os.PathLike = "engines", device: str = "cpu", threads: int | None = None,
                dtype: Any = None) -> Runner:
    """Build (but do not activate) the runner of `backend` for `encoder`.

    Args:
        backend: one of torch, torch-deploy, torch-compile, ort, ort-fp16, ort-int8, trt.
        encoder: "image" or "text".
        model: a loaded VSRN (torch backends; the caller loads it, e.g. `vsrn_deploy.load_model`).
        onnx_dir: the export folder (ort, ort-fp16).
        engine_dir: the engines folder (trt).
        device: torch device for the torch backends ("cpu", "cuda", "cuda:1"); "cpu", "cuda" or
            "tensorrt" (execution provider) for ort/ort-fp16; "cuda[:N]" for trt.
        threads: intra-op threads for ONNX Runtime. torch's thread count is process-global: the
            caller sets it (`torch.set_num_threads`), as `validate` and `bench` do.
        dtype: torch backends: fp32 (default), fp16, bf16. trt: which plan, fp16 or fp32 (default:
            fp16 when built, else fp32).

    Returns:
        An inactive `Runner`; use it as a context manager.

    Raises:
        VsrnError: unknown backend or encoder, or a missing model / graph / plan.
    """
    if backend not in BACKENDS:
        raise VsrnError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if encoder not in ENCODERS:
        raise VsrnError(f"unknown encoder {encoder!r}; choose from {', '.join(ENCODERS)}")

    if backend in TORCH_BACKENDS:
        from vsrn_deploy.backend import torch_runners

        if model is None:
            raise VsrnError(f"the {backend} backend needs a loaded model (make_runner(..., model=...)); "
                            "on the command line pass --checkpoint")
        cls = {"torch": torch_runners.TorchRunner, "torch-deploy": torch_runners.TorchDeployRunner,
               "torch-compile": torch_runners.TorchCompileRunner}[backend]
        return cls(encoder, model, device=device, dtype=dtype)

    if backend in ("ort", "ort-fp16", "ort-int8"):
        from vsrn_deploy.backend.onnxrt import PRECISION_OF, OrtRunner, graph_path

        precision = PRECISION_OF[backend]
        ort_device = device.split(":")[0]
        return OrtRunner(encoder, graph_path(onnx_dir, encoder, precision), device=ort_device,
                         threads=threads, backend=backend)

    from vsrn_deploy.backend.trt import TrtRunner, plan_path

    if dtype is not None and str(dtype) not in ("fp16", "fp32"):
        raise VsrnError(f"the trt backend's dtype picks the plan: fp16 or fp32, got {dtype!r}")
    index = int(device.split(":")[1]) if device.startswith("cuda:") else 0
    return TrtRunner(encoder, plan_path(engine_dir, encoder, dtype), device_index=index)
