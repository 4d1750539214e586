"""The TensorRT runner (`trt`): runs a serialized plan through Polygraphy's `TrtRunner`.

Polygraphy (`polygraphy.backend.trt.EngineFromBytes` and `TrtRunner`, with its CUDA wrapper
`polygraphy.cuda`) deserialises the plan, owns the execution context, the stream, the device input
buffers and the output allocator, and copies results back; nothing here allocates device memory.
What stays ours is around it: the sidecar check against the running TensorRT version and GPU and
the plan's sha256 (`vsrn_deploy.backend.sidecar.check_sidecar`) before deserialising, the contract's
tensor names, the choice of optimisation profile per batch, the feed checks and the error messages
with the rebuild command. The device is selected with cuda-python (`backend.cuda.select_device`)
because Polygraphy's CUDA wrapper has no call for it (polygraphy 0.53).

The TensorRT calls made (here and by Polygraphy 0.53's runner) are checked against the real 10.13
and 11.4 Python bindings by the `trt_api` tests (tests/trt_api); the 11.x runtime API the runner
needs is the same as 10.x's, so Polygraphy serves both.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from vsrn_deploy.backend import cuda
from vsrn_deploy.backend.base import INPUT_NAMES, OUTPUT_NAMES, Runner
from vsrn_deploy.backend.feeds import check_feed
from vsrn_deploy.backend.sidecar import check_sidecar, read_sidecar, rebuild_hint
from vsrn_deploy.core import contract
from vsrn_deploy.core.errors import VsrnError

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
                    f"vsrn-deploy build-engine --onnx-dir ONNX_DIR --out {engine_dir} --fp16 (ONNX_DIR: "
                    "the folder `vsrn-deploy export` wrote)")


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


    def __init__(self, encoder: str, plan: str | os.PathLike, *, device_index: int = 0,
                 check: bool = True) -> None:
        super().__init__(encoder)
        self.plan = Path(plan)
        self.device_index = device_index
        self.check = check
        self.sidecar: dict[str, Any] = {}
        self._trt: Any = None
        self.engine: Any = None
        self._runner: Any = None  # polygraphy.backend.trt.TrtRunner while active
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
        cuda.select_device(self.device_index)  # before TensorRT and Polygraphy allocate
        try:
            self._load(trt)
        except BaseException:
            self._deactivate()  # release what a half-activated runner holds
            raise

    def _load(self, trt: Any) -> None:
        from polygraphy.backend.trt import EngineFromBytes
        from polygraphy.backend.trt import TrtRunner as PolygraphyTrtRunner
        from polygraphy.exception import PolygraphyException

        try:
            self.engine = EngineFromBytes(self.plan.read_bytes())()
        except PolygraphyException:
            self.engine = None
        if not self.engine:
            raise VsrnError(f"TensorRT could not deserialise {self.plan}; {rebuild_hint(self.plan)}")
        engine = self.engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        wanted = set(INPUT_NAMES[self.encoder]) | set(OUTPUT_NAMES[self.encoder])
        if missing := sorted(wanted - set(names)):
            raise VsrnError(f"{self.plan} lacks tensors {missing}; {rebuild_hint(self.plan)}")
        self._inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._dtypes = {n: trt.nptype(engine.get_tensor_dtype(n)) for n in self._inputs}
        self._profiles = [
            {n: tuple(tuple(d) for d in engine.get_tensor_profile_shape(n, p)) for n in self._inputs}
            for p in range(engine.num_optimization_profiles)
        ]
        self._profile = -1
        self._runner = PolygraphyTrtRunner(engine, name=f"vsrn-deploy {self.name}")
        self._runner.activate()

    def _deactivate(self) -> None:
        if self._runner is not None and self._runner.is_active:
            # Polygraphy 0.53's TrtRunner.deactivate frees its input buffers and stream but not the
            # DeviceArrays its output allocator made (they have no __del__ either): freed here, or
            # every activation would leak device memory.
            allocator = getattr(self._runner, "output_allocator", None)
            for buf in (allocator.buffers.values() if allocator is not None else ()):
                if hasattr(buf, "free"):
                    buf.free()
            self._runner.deactivate()
        self._runner = None
        self.engine = None

    def synchronize(self) -> None:
        if self._runner is not None and self._runner.is_active:
            self._runner.stream.synchronize()

    def _select_profile(self, feed: dict[str, np.ndarray]) -> None:
        shapes = {n: tuple(a.shape) for n, a in feed.items()}
        for index, profile in enumerate(self._profiles):
            if fits(profile, shapes):
                if index != self._profile:
                    self._runner.set_profile(index)
                    self._profile = index
                return
        ranges = "; ".join(", ".join(f"{n} {lo}..{hi}" for n, (lo, _, hi) in p.items())
                           for p in self._profiles)
        raise VsrnError(f"input shapes {shapes} lie outside every optimisation profile of {self.plan} "
                        f"({ranges}); rebuild with a wider --profile / --max-batch / --max-tokens")

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from polygraphy.exception import PolygraphyException

        feed = check_feed(self.encoder, feed)
        self._select_profile(feed)
        arrays = {n: np.ascontiguousarray(feed[n], dtype=self._dtypes[n]) for n in self._inputs}
        try:
            outputs = self._runner.infer(arrays)
        except PolygraphyException as exc:
            raise RuntimeError(f"TensorRT inference failed for {self.plan}: {exc}") from exc
        return {n: np.asarray(outputs[n]).astype(np.float32, copy=True) for n in OUTPUT_NAMES[self.encoder]}
