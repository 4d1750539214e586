"""A small CUDA runtime wrapper over cuda-python, loaded lazily (no torch, no pycuda).

cuda-python 12.6+ exposes the runtime as `cuda.bindings.runtime`; older releases as `cuda.cudart`.
Every call returns a tuple whose first item is a `cudaError_t`; `_check` turns a failure into an
exception naming the call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vsrn_deploy.errors import VsrnError


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


class DeviceBuffer:
    """A growable device allocation (bytes); reallocates only when a larger batch arrives."""

    def __init__(self, rt: Any) -> None:
        self._rt = rt
        self.ptr = 0
        self.nbytes = 0

    def reserve(self, nbytes: int) -> int:
        if nbytes > self.nbytes:
            self.free()
            self.ptr = int(_check(self._rt, self._rt.cudaMalloc(max(nbytes, 1)), "cudaMalloc"))
            self.nbytes = nbytes
        return self.ptr

    def free(self) -> None:
        if self.ptr:
            _check(self._rt, self._rt.cudaFree(self.ptr), "cudaFree")
        self.ptr, self.nbytes = 0, 0


class Stream:
    """A CUDA stream with host<->device copies of numpy arrays."""

    def __init__(self, device_index: int = 0) -> None:
        self._rt = cudart()
        # Allocations and the stream belong to the current device: select it first.
        _check(self._rt, self._rt.cudaSetDevice(device_index), "cudaSetDevice")
        self.handle = _check(self._rt, self._rt.cudaStreamCreate(), "cudaStreamCreate")

    @property
    def ptr(self) -> int:
        """The raw handle, as TensorRT's `execute_async_v3(stream_handle)` takes it."""
        try:
            return int(self.handle)
        except TypeError:  # cuda-python handle types without __int__
            return int(self.handle.getPtr())

    def buffer(self) -> DeviceBuffer:
        return DeviceBuffer(self._rt)

    def copy_to_device(self, dst: int, host: np.ndarray) -> None:
        rt = self._rt
        _check(rt, rt.cudaMemcpyAsync(dst, host.ctypes.data, host.nbytes,
                                      rt.cudaMemcpyKind.cudaMemcpyHostToDevice, self.handle),
               "cudaMemcpyAsync(H2D)")

    def copy_to_host(self, host: np.ndarray, src: int) -> None:
        rt = self._rt
        _check(rt, rt.cudaMemcpyAsync(host.ctypes.data, src, host.nbytes,
                                      rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.handle),
               "cudaMemcpyAsync(D2H)")

    def synchronize(self) -> None:
        _check(self._rt, self._rt.cudaStreamSynchronize(self.handle), "cudaStreamSynchronize")

    def destroy(self) -> None:
        if self.handle is not None:
            _check(self._rt, self._rt.cudaStreamDestroy(self.handle), "cudaStreamDestroy")
            self.handle = None
