"""`make_runner`: one entry point from a backend name (README, "Validate") to a runner.

The runner is built from the backend's row of the table (`vsrn_deploy.core.backends`): its class is
imported from `row.runner` only when asked for, so `make_runner("ort", ...)` and the other torch-free
backends never import torch, and TensorRT or OpenVINO are imported only by their own backends.
"""

from __future__ import annotations

import os
from typing import Any

from vsrn_deploy.backend.base import ENCODERS, Runner
from vsrn_deploy.core import backends
from vsrn_deploy.core.backends import Needs
from vsrn_deploy.core.contract import PLAN_PRECISIONS
from vsrn_deploy.core.errors import VsrnError, torch_missing

#: The backends that run a loaded torch model (read from the table).
TORCH_BACKENDS = tuple(b.name for b in backends.rows() if not b.torch_free)


def make_runner(backend: str, encoder: str, *, model: Any = None, onnx_dir: str | os.PathLike = "export",
                engine_dir: str | os.PathLike = "engines", device: str = "cpu", threads: int | None = None,
                dtype: Any = None) -> Runner:
    """Build (but do not activate) the runner of `backend` for `encoder`.

    Args:
        backend: a name of the backend table (`vsrn_deploy.core.backends.NAMES`).
        encoder: "image" or "text".
        model: a loaded VSRN (backends that need a model; the caller loads it, e.g.
            `vsrn_deploy.load_model`).
        onnx_dir: the export folder (backends that run its graphs).
        engine_dir: the engines folder (backends that run TensorRT plans).
        device: torch device for the torch backends ("cpu", "cuda", "cuda:1"); "cpu", "cuda" or
            "tensorrt" (execution provider) for the ONNX Runtime ones; "cpu" for OpenVINO;
            "cuda[:N]" for trt. The row's `devices` say which.
        threads: intra-op threads of the export runtimes. torch's thread count is process-global:
            the caller sets it (`torch.set_num_threads`), as `validate` and `bench` do.
        dtype: torch backends: fp32 (default), fp16, bf16. trt: which plan, fp16 or fp32 (default:
            fp16 when built, else fp32).

    Returns:
        An inactive `Runner`; use it as a context manager. `runner.backend` is `backend`.

    Raises:
        VsrnError: unknown backend or encoder, or a missing model / graph / plan / runtime.
    """
    try:
        row = backends.get(backend)
    except ValueError as exc:
        raise VsrnError(str(exc)) from None
    if encoder not in ENCODERS:
        raise VsrnError(f"unknown encoder {encoder!r}; choose from {', '.join(ENCODERS)}")
    if row.needs is Needs.MODEL and model is None:
        raise VsrnError(f"the {backend} backend needs a loaded model (make_runner(..., model=...)); "
                        "on the command line pass --checkpoint")

    try:
        cls = row.runner_class()
    except ImportError as exc:
        if (exc.name or "").split(".")[0] == "torch":
            raise torch_missing(f"the {backend} backend") from None
        hint = f"pip install 'vsrn-deploy[{row.extra}]'" if row.extra else "pip install vsrn-deploy"
        raise VsrnError(f"the {backend} backend cannot be loaded ({exc}); install it with: {hint}") from None

    runner: Runner
    if row.needs is Needs.MODEL:
        runner = cls(encoder, model, device=device, dtype=dtype)
    elif row.needs is Needs.EXPORT:
        from vsrn_deploy.backend.onnxrt import graph_path

        runner = cls(encoder, graph_path(onnx_dir, encoder, row.precision), device=device.split(":")[0],
                     threads=threads, row=row)
    else:
        from vsrn_deploy.backend.trt import plan_path

        if dtype is not None and str(dtype) not in PLAN_PRECISIONS:
            raise VsrnError(f"the {backend} backend's dtype picks the plan: {' or '.join(PLAN_PRECISIONS)}, "
                            f"got {dtype!r}")
        index = int(device.split(":")[1]) if device.startswith("cuda:") else 0
        runner = cls(encoder, plan_path(engine_dir, encoder, dtype), device_index=index)
    runner.backend = row.name
    return runner
