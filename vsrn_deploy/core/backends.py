"""The backend table: every backend vsrn-deploy runs, declared once, as data.

Each row says what a backend is: its name (what users type), its family (the runtime), the graph
precision it runs, what it needs (a loaded model, an export folder, engine plans), whether it runs
without torch, the devices it runs on, and where its runner class lives. The registry, validate,
bench, index and search, attention, Triton flavours and the command line's choices all read this
table; nothing else spells a backend name.

Adding a backend: one row here and its runner's module under `vsrn_deploy/backend/`
(docs/extending.md has the full list of files).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from vsrn_deploy.core.contract import PRECISIONS


class Family(str, enum.Enum):
    """The runtime a backend runs in."""

    TORCH = "torch"
    ONNXRUNTIME = "onnxruntime"
    OPENVINO = "openvino"
    TENSORRT = "tensorrt"


class Needs(str, enum.Enum):
    """What a backend's runner is built from."""

    MODEL = "model"  # a loaded torch model (a checkpoint)
    EXPORT = "export"  # an export folder's ONNX graphs
    ENGINES = "engines"  # TensorRT plans built from an export


@dataclass(frozen=True)
class Backend:
    """One backend.

    Attributes:
        name: what users type (`--backends torch,ort`).
        family: the runtime.
        precision: the graph precision it runs (contract.PRECISIONS); for torch backends the
            default compute precision on the CPU.
        needs: what its runner is built from.
        devices: the devices it runs on, the default first.
        runner: "module:Class" of its runner, imported only when the backend is used.
        extra: the pip extra of vsrn-deploy that installs its runtime ("" when the base install has it).
        description: one line for --help and the docs.
        gpu_precision: the compute precision on CUDA when it differs from `precision` (torch-deploy
            and torch-compile run FP16 there).
    """

    name: str
    family: Family
    precision: str
    needs: Needs
    devices: tuple[str, ...]
    runner: str
    extra: str
    description: str
    gpu_precision: str | None = None

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"{self.name}: precision {self.precision!r} not in {PRECISIONS}")

    @property
    def torch_free(self) -> bool:
        """Whether it runs without torch installed."""
        return self.needs is not Needs.MODEL

    @property
    def runs_export(self) -> bool:
        """Whether it runs an export folder's ONNX graphs directly."""
        return self.needs is Needs.EXPORT

    def precision_on(self, device: str) -> str:
        """The precision it computes in on `device` ("cpu", "cuda", "cuda:1", ...)."""
        if device.startswith("cuda") and self.gpu_precision:
            return self.gpu_precision
        return self.precision


_TORCH_DEVICES = ("cpu", "cuda")
_TABLE = (
    Backend("torch", Family.TORCH, "fp32", Needs.MODEL, _TORCH_DEVICES,
            "vsrn_deploy.backend.torch_runners:TorchRunner", "torch",
            "the eager training model, FP32: the reference"),
    Backend("torch-deploy", Family.TORCH, "fp32", Needs.MODEL, _TORCH_DEVICES,
            "vsrn_deploy.backend.torch_runners:TorchDeployRunner", "torch",
            "the deploy-form modules (GCN fused, GRU unrolled) in eager torch", gpu_precision="fp16"),
    Backend("torch-compile", Family.TORCH, "fp32", Needs.MODEL, _TORCH_DEVICES,
            "vsrn_deploy.backend.torch_runners:TorchCompileRunner", "torch",
            "the deploy-form modules through torch.compile", gpu_precision="fp16"),
    Backend("ort", Family.ONNXRUNTIME, "fp32", Needs.EXPORT, ("cpu", "cuda", "tensorrt"),
            "vsrn_deploy.backend.onnxrt:OrtRunner", "",
            "the FP32 graphs in ONNX Runtime"),
    Backend("ort-fp16", Family.ONNXRUNTIME, "fp16", Needs.EXPORT, ("cpu", "cuda", "tensorrt"),
            "vsrn_deploy.backend.onnxrt:OrtRunner", "",
            "the FP16 graphs in ONNX Runtime"),
    Backend("ort-int8", Family.ONNXRUNTIME, "int8", Needs.EXPORT, ("cpu",),
            "vsrn_deploy.backend.onnxrt:OrtRunner", "",
            "the INT8 graphs in ONNX Runtime (CPU)"),
    Backend("trt", Family.TENSORRT, "fp16", Needs.ENGINES, ("cuda",),
            "vsrn_deploy.backend.trt:TrtRunner", "trt",
            "TensorRT plans (FP16 when built, else FP32)"),
)

BACKENDS: dict[str, Backend] = {b.name: b for b in _TABLE}
NAMES: tuple[str, ...] = tuple(BACKENDS)
REFERENCE = "torch"  # what validate compares every other backend against
TORCH_FREE: tuple[str, ...] = tuple(b.name for b in _TABLE if b.torch_free)
EXPORT_BACKENDS: tuple[str, ...] = tuple(b.name for b in _TABLE if b.runs_export)


def get(name: str) -> Backend:
    """The row of backend `name`.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; choose from {', '.join(NAMES)}") from None


def choices(where: str = "all") -> tuple[str, ...]:
    """Backend names a command accepts: "all", "torch-free" (index, search, attention, serving) or
    "export" (those that run an export's graphs)."""
    return {"all": NAMES, "torch-free": TORCH_FREE, "export": EXPORT_BACKENDS}[where]


# An enum of the names, for typer options: --help lists the choices and a wrong one exits 2.
BackendName = enum.Enum("BackendName", {n.replace("-", "_").upper(): n for n in NAMES}, type=str)
