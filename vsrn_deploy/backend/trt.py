"""The TensorRT runner (`trt`): runs a serialized plan with the name-based API of TensorRT 10/11.

No torch: device memory and the stream come from cuda-python (`vsrn_deploy.backend.cuda`).
Before deserialising, the plan's JSON sidecar is checked against the running TensorRT version and
GPU (`vsrn_deploy.backend.sidecar.check_sidecar`), so a stale plan fails with the rebuild command.

API followed (identical in 10.x and 11.x, TensorRT Python API "ICudaEngine" and
"IExecutionContext" pages): `Runtime.deserialize_cuda_engine`, `ICudaEngine.num_io_tensors`,
`get_tensor_name`, `get_tensor_mode`, `get_tensor_dtype`, `get_tensor_profile_shape`,
`IExecutionContext.set_optimization_profile_async`, `set_input_shape`, `set_tensor_address`,
`get_tensor_shape`, `execute_async_v3`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from vsrn_deploy import contract
from vsrn_deploy.backend import cuda
from vsrn_deploy.backend.base import INPUT_NAMES, OUTPUT_NAMES, Runner
from vsrn_deploy.backend.feeds import check_feed
from vsrn_deploy.backend.sidecar import check_sidecar, read_sidecar, rebuild_hint
from vsrn_deploy.errors import VsrnError

Shape = tuple[int, ...]

TRT_INSTALL_HINT = ("pip install 'vsrn-deploy[trt]' on a machine with an NVIDIA GPU and driver")


def import_tensorrt() -> Any:
    """Import tensorrt, or raise a `VsrnError` with the install command."""
    try:
        import tensorrt

        return tensorrt
    except ImportError as exc:
        raise VsrnError(f"TensorRT is not installed here ({exc}); install it with: "
                        f"{TRT_INSTALL_HINT}") from None


def plan_path(engine_dir: str | os.PathLike, encoder: str, precision: str | None = None) -> Path:
    """The plan of `encoder` in `engine_dir` (`contract.plan_name`: `image_encoder.fp16.plan`).

    With `precision` None, prefers fp16 over fp32 (the deploy target), else raises.
    """
    engine_dir = Path(engine_dir)
    candidates = [precision] if precision else ["fp16", "fp32"]
    for p in candidates:
        path = engine_dir / contract.plan_name(contract.ENCODERS[encoder].graph, p)
        if path.is_file():
            return path
    names = ", ".join(contract.plan_name(contract.ENCODERS[encoder].graph, p) for p in candidates)
    raise VsrnError(f"no TensorRT plan ({names}) in {engine_dir}; build one with: "
                    f"vsrn-deploy build-engine --onnx-dir export --out {engine_dir} --fp16")


def fits(shapes: dict[str, tuple[Shape, Shape, Shape]], feed_shapes: dict[str, Shape]) -> bool:
    """Whether every input shape lies within the profile's [min, max] per dimension."""
    for name, shape in feed_shapes.items():
        if name not in shapes:
            return False
        lo, _, hi = shapes[name]
        if len(shape) != len(lo) or any(not a <= s <= c for a, s, c in zip(lo, shape, hi, strict=True)):
            return False
    return True


class TrtRunner(Runner):
    """Runs one TensorRT plan.

    Args:
        encoder: "image" or "text".
        plan: the .plan file (its .json sidecar must sit beside it).
        device_index: the CUDA device.
        check: compare the sidecar with this TensorRT and GPU before loading (keep True).
    """

    backend = "trt"

    def __init__(self, encoder: str, plan: str | os.PathLike, *, device_index: int = 0,
                 check: bool = True) -> None:
        super().__init__(encoder)
        self.plan = Path(plan)
        self.device_index = device_index
        self.check = check
        self.sidecar: dict[str, Any] = {}
        self._trt: Any = None
        self.engine: Any = None
        self.context: Any = None
        self.stream: cuda.Stream | None = None
        self._buffers: dict[str, cuda.DeviceBuffer] = {}
        self._profiles: list[dict[str, tuple]] = []
        self._profile = -1

    @property
    def precision(self) -> str:
        return str(self.sidecar.get("precision", "unknown"))

    def _activate(self) -> None:
        if not self.plan.is_file():
            raise VsrnError(f"TensorRT plan not found: {self.plan}")
        self.sidecar = read_sidecar(self.plan)
        if self.sidecar["encoder"] != self.encoder:
            raise VsrnError(f"{self.plan} holds the {self.sidecar['encoder']} encoder, not {self.encoder}")
        trt = self._trt = import_tensorrt()
        gpu = cuda.gpu_info(self.device_index)
        if self.check:
            check_sidecar(self.plan, self.sidecar, tensorrt_version=trt.__version__, gpu=gpu.to_dict())
        self.stream = cuda.Stream(self.device_index)  # selects the device before TensorRT allocates
        try:
            self._load(trt)
        except BaseException:
            self._deactivate()  # free the stream and buffers of a half-activated runner
            raise

    def _load(self, trt: Any) -> None:
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        self.engine = runtime.deserialize_cuda_engine(self.plan.read_bytes())
        if self.engine is None:
            raise VsrnError(f"TensorRT could not deserialise {self.plan}; {rebuild_hint(self.plan)}")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        wanted = set(INPUT_NAMES[self.encoder]) | set(OUTPUT_NAMES[self.encoder])
        if missing := sorted(wanted - set(names)):
            raise VsrnError(f"{self.plan} lacks tensors {missing}; {rebuild_hint(self.plan)}")
        self._io = names
        self._inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._outputs = [n for n in names if n not in self._inputs]
        self._profiles = [
            {n: tuple(tuple(d) for d in self.engine.get_tensor_profile_shape(n, p)) for n in self._inputs}
            for p in range(self.engine.num_optimization_profiles)
        ]
        self._profile = -1
        self._buffers = {n: self.stream.buffer() for n in names}

    def _deactivate(self) -> None:
        for buf in self._buffers.values():
            buf.free()
        self._buffers = {}
        if self.stream is not None:
            self.stream.destroy()
        self.stream = None
        self.context = None
        self.engine = None

    def synchronize(self) -> None:
        if self.stream is not None:
            self.stream.synchronize()

    def _select_profile(self, feed: dict[str, np.ndarray]) -> None:
        shapes = {n: tuple(a.shape) for n, a in feed.items()}
        for index, profile in enumerate(self._profiles):
            if fits(profile, shapes):
                if index != self._profile:
                    self.context.set_optimization_profile_async(index, self.stream.ptr)
                    self._profile = index
                return
        ranges = "; ".join(", ".join(f"{n} {lo}..{hi}" for n, (lo, _, hi) in p.items())
                           for p in self._profiles)
        raise VsrnError(f"input shapes {shapes} lie outside every optimisation profile of {self.plan} "
                        f"({ranges}); rebuild with a wider --profile / --max-batch / --max-tokens")

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        trt, stream = self._trt, self.stream
        feed = check_feed(self.encoder, feed)
        self._select_profile(feed)
        for name in self._inputs:
            host = np.ascontiguousarray(feed[name], dtype=trt.nptype(self.engine.get_tensor_dtype(name)))
            self.context.set_input_shape(name, host.shape)
            ptr = self._buffers[name].reserve(host.nbytes)
            stream.copy_to_device(ptr, host)
            self.context.set_tensor_address(name, ptr)
        hosts = {}
        for name in self._outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            host = np.empty(shape, dtype=trt.nptype(self.engine.get_tensor_dtype(name)))
            self.context.set_tensor_address(name, self._buffers[name].reserve(host.nbytes))
            hosts[name] = host
        if not self.context.execute_async_v3(stream.ptr):
            raise RuntimeError(f"TensorRT execute_async_v3 failed for {self.plan}")
        for name, host in hosts.items():
            stream.copy_to_host(host, self._buffers[name].ptr)
        stream.synchronize()
        return {n: hosts[n].astype(np.float32, copy=False) for n in OUTPUT_NAMES[self.encoder] if n in hosts}
