"""What the TensorRT backend needs from CUDA that Polygraphy does not offer: the GPU's name and
compute capability (recorded in and checked against a plan's sidecar) and selecting the device.

Device memory, streams and copies are Polygraphy's (`polygraphy.cuda`, used by its `TrtRunner`);
nothing here allocates. cuda-python is loaded lazily (no torch, no pycuda): 12.6+ exposes the
runtime as `cuda.bindings.runtime`, older releases as `cuda.cudart`. Every call returns a tuple
whose first item is a `cudaError_t`; `_check` turns a failure into an exception naming the call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vsrn_deploy.core.errors import VsrnError


@dataclass(frozen=True)
class GpuInfo:
    """The GPU an engine was built on or is loaded on."""

    name: str
    compute_capability: str  # "8.6"
    index: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "compute_capability": self.compute_capability, "index": self.index}


def cudart() -> Any:
    """The cuda-python runtime module, or a `VsrnError` saying how to install it."""
    try:
        from cuda.bindings import runtime  # cuda-python >= 12.6

        return runtime
    except ImportError:
        pass
    try:
        from cuda import cudart as runtime  # older cuda-python layout

        return runtime
    except ImportError:
        raise VsrnError("the TensorRT backend needs cuda-python for device memory and streams; "
                        "install it with: pip install 'vsrn-deploy[trt]' on a machine with an "
                        "NVIDIA GPU and driver") from None


def _check(rt: Any, result: Any, what: str) -> Any:
    """Unpack a cuda-python result tuple; raise on a CUDA error."""
    if isinstance(result, tuple):
        err, rest = result[0], result[1:]
    else:
        err, rest = result, ()
    if int(err) != int(rt.cudaError_t.cudaSuccess):
        raise RuntimeError(f"CUDA call {what} failed: {err}")
    if not rest:
        return None
    return rest[0] if len(rest) == 1 else rest


def gpu_info(index: int = 0) -> GpuInfo:
    """Name and compute capability of GPU `index`.

    Raises:
        VsrnError: cuda-python is missing, or no GPU is visible (no driver, CUDA_VISIBLE_DEVICES).
    """
    rt = cudart()
    err, count = rt.cudaGetDeviceCount()
    if int(err) != int(rt.cudaError_t.cudaSuccess) or count < 1:
        raise VsrnError(f"no NVIDIA GPU is visible ({err}); TensorRT engines need a GPU and its "
                        "driver (check nvidia-smi and CUDA_VISIBLE_DEVICES)")
    if index >= count:
        raise VsrnError(f"GPU {index} requested but only {count} visible")
    prop = _check(rt, rt.cudaGetDeviceProperties(index), "cudaGetDeviceProperties")
    name = prop.name
    if isinstance(name, bytes):
        name = name.split(b"\0", 1)[0].decode(errors="replace")
    return GpuInfo(name=str(name).strip(), compute_capability=f"{prop.major}.{prop.minor}", index=index)


def select_device(index: int = 0) -> None:
    """Make GPU `index` current (cudaSetDevice); Polygraphy's CUDA wrapper has no call for it."""
    rt = cudart()
    _check(rt, rt.cudaSetDevice(index), "cudaSetDevice")
