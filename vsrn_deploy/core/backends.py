"""The backend table: every backend vsrn-deploy runs, declared once, as data.

Each row says what a backend is: its name (what users type), its family (the runtime), the graph
precision it runs, what it needs (a loaded model, an export folder, engine plans), whether it runs
without torch, the devices it runs on, and where its runner class lives. The registry, validate,
bench, index and search, attention, Triton flavours and the command line's choices all read this
table; nothing else spells a backend name.

Adding a backend: one row here and its runner's module under `vsrn_deploy/backend/`, its tests, its
pip extra in pyproject.toml and a line in the docs (docs/extending.md has the list). Nothing outside
this module tests a backend's name: code asks the row (`get(name).needs`, `.precision_on(device)`,
`.parity(precision)`, ...) or the helpers below (`choices`, `defaults`).

How the registry builds a runner from a row (`vsrn_deploy.backend.registry.make_runner`), by `needs`:
    MODEL:   Class(encoder, model, device=..., dtype=...)
    EXPORT:  Class(encoder, <the export's graph of row.precision>, device=..., threads=..., row=row)
    ENGINES: Class(encoder, <the plan>, device_index=...)
and then sets `runner.backend = row.name` (what `runner.name` reports).
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
from dataclasses import dataclass
from typing import Any

from vsrn_deploy.core.contract import PARITY, PRECISIONS, TRT_FP32_MAX_ABS, ParityBounds


class Family(str, enum.Enum):
    """The runtime a backend runs in; its value is the runtime's Python package (the one whose
    version `validate` and `bench` report)."""

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
        takes_dtype: whether a compute dtype can be chosen for it (bench's --dtype: fp32/fp16/bf16).
        form: the formulation it runs: "authors" (the training model's modules) or "deploy" (GCN
            fused, GRU unrolled: what the export's graphs compute); sets bench's FLOP counts.
        best_effort: a failure to build or run it here (of any kind) is reported, not fatal: bench
            lists it under "skipped" (torch.compile needs a working compiler).
        fp32_max_abs: its FP32 max-abs parity bound when it differs from the contract's (TensorRT's
            FP32 kernels sum in another order than the CPU); see `parity`.
        default_for: the commands that use it when none is named ("validate", "bench", "index",
            "demo-validate", "demo-bench"); see `defaults`.
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
    takes_dtype: bool = False
    form: str = "deploy"
    best_effort: bool = False
    fp32_max_abs: float | None = None
    default_for: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for value in (self.precision, self.gpu_precision):
            if value is not None and value not in PRECISIONS:
                raise ValueError(f"{self.name}: precision {value!r} not in {PRECISIONS}")
        if self.form not in ("authors", "deploy"):
            raise ValueError(f"{self.name}: form must be 'authors' or 'deploy', got {self.form!r}")
        if ":" not in self.runner:
            raise ValueError(f"{self.name}: runner must be 'module:Class', got {self.runner!r}")

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

    def device_for(self, device: str) -> str:
        """The device it runs on when `device` is asked for: `device` itself when it runs there
        ("cuda:1" counts as "cuda"), else its default (the first of `devices`)."""
        return device if device.split(":")[0] in self.devices else self.devices[0]

    def parity(self, precision: str | None = None) -> ParityBounds:
        """The parity bounds it must meet when computing in `precision` (default: its own):
        `contract.PARITY`, with `fp32_max_abs` in place of the FP32 max-abs bound when set."""
        bounds = PARITY[precision or self.precision]
        if self.fp32_max_abs is not None and bounds.max_abs is not None:
            bounds = dataclasses.replace(bounds, max_abs=self.fp32_max_abs)
        return bounds

    def runner_class(self) -> Any:
        """Import and return its runner class (the runtime's module is imported only now).

        Raises:
            ImportError: the runner's module cannot be imported (its runtime, e.g. torch, is missing).
        """
        module, _, cls = self.runner.partition(":")
        return getattr(importlib.import_module(module), cls)


_TORCH_DEVICES = ("cpu", "cuda")
_ORT_DEVICES = ("cpu", "cuda", "tensorrt")  # ONNX Runtime's execution providers
_TABLE = (
    Backend("torch", Family.TORCH, "fp32", Needs.MODEL, _TORCH_DEVICES,
            "vsrn_deploy.backend.torch_runners:TorchRunner", "torch",
            "the eager training model, FP32: the reference", form="authors",
            default_for=("validate", "bench", "demo-validate", "demo-bench")),
    Backend("torch-deploy", Family.TORCH, "fp32", Needs.MODEL, _TORCH_DEVICES,
            "vsrn_deploy.backend.torch_runners:TorchDeployRunner", "torch",
            "the deploy-form modules (GCN fused, GRU unrolled) in eager torch", gpu_precision="fp16",
            takes_dtype=True, default_for=("bench", "demo-bench")),
    Backend("torch-compile", Family.TORCH, "fp32", Needs.MODEL, _TORCH_DEVICES,
            "vsrn_deploy.backend.torch_runners:TorchCompileRunner", "torch",
            "the deploy-form modules through torch.compile", gpu_precision="fp16",
            takes_dtype=True, best_effort=True),
    Backend("ort", Family.ONNXRUNTIME, "fp32", Needs.EXPORT, _ORT_DEVICES,
            "vsrn_deploy.backend.onnxrt:OrtRunner", "",
            "the FP32 graphs in ONNX Runtime",
            default_for=("validate", "bench", "index", "demo-validate", "demo-bench")),
    Backend("ort-fp16", Family.ONNXRUNTIME, "fp16", Needs.EXPORT, _ORT_DEVICES,
            "vsrn_deploy.backend.onnxrt:OrtRunner", "",
            "the FP16 graphs in ONNX Runtime",
            default_for=("validate", "bench", "demo-validate", "demo-bench")),
    Backend("ort-int8", Family.ONNXRUNTIME, "int8", Needs.EXPORT, ("cpu",),
            "vsrn_deploy.backend.onnxrt:OrtRunner", "",
            "the INT8 graphs in ONNX Runtime (CPU)", default_for=("demo-validate", "demo-bench")),
    Backend("trt", Family.TENSORRT, "fp16", Needs.ENGINES, ("cuda",),
            "vsrn_deploy.backend.trt:TrtRunner", "trt",
            "TensorRT plans (FP16 when built, else FP32)", fp32_max_abs=TRT_FP32_MAX_ABS),
    Backend("openvino", Family.OPENVINO, "fp32", Needs.EXPORT, ("cpu",),
            "vsrn_deploy.backend.openvino:OpenVinoRunner", "openvino",
            "the FP32 graphs in OpenVINO (CPU)"),
    Backend("openvino-int8", Family.OPENVINO, "int8", Needs.EXPORT, ("cpu",),
            "vsrn_deploy.backend.openvino:OpenVinoRunner", "openvino",
            "the INT8 graphs in OpenVINO (CPU)"),
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


def defaults(command: str) -> tuple[str, ...]:
    """The backends `command` uses when none is named, in table order ("validate", "bench",
    "index" (also search and attention: its one backend), "demo-validate", "demo-bench")."""
    names = tuple(b.name for b in _TABLE if command in b.default_for)
    if not names:
        raise ValueError(f"no default backends for {command!r}")
    return names


def runs(family: Family, precision: str) -> str:
    """The backend of `family` that runs an export's graphs of `precision` (the export's own checks
    and the manifest's retrieval entries are named after it)."""
    for b in _TABLE:
        if b.family is family and b.precision == precision and b.runs_export:
            return b.name
    raise ValueError(f"no {family.value} backend runs {precision} graphs")


def rows(names: tuple[str, ...] | list[str] | None = None) -> tuple[Backend, ...]:
    """The rows of `names` (default: every backend), in the order given."""
    return tuple(get(n) for n in names) if names is not None else _TABLE


# An enum of the names, for typer options: --help lists the choices and a wrong one exits 2.
BackendName = enum.Enum("BackendName", {n.replace("-", "_").upper(): n for n in NAMES}, type=str)
