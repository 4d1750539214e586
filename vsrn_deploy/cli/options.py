"""The command line's shared options, each declared once: its flag, its type, its help.

Commands reuse these Annotated aliases (`onnx_dir: OnnxDir = Path("export")`), so a flag is spelled
and explained the same way everywhere. Choices come from the tables, never from a list typed here:
backend names from `vsrn_deploy.core.backends` (a backend added to that table shows up in every
command's --help and parser with no edit here), precisions from `vsrn_deploy.core.contract`.

A single `--backend` is typed with an enum, so typer lists the choices in --help and rejects a wrong
name with exit 2; `--backends` (comma-separated) goes through `parse_backends`, which refuses an
unknown name the same way, listing the choices.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Any

import typer

from vsrn_deploy.core import backends as _table
from vsrn_deploy.core import contract


def _enum(name: str, values: tuple[str, ...]) -> type[enum.Enum]:
    """A str enum of `values` (member names upper-cased, dashes as underscores)."""
    return enum.Enum(name, {v.replace("-", "_").upper(): v for v in values}, type=str)  # type: ignore[return-value]


# --- choices from the tables ------------------------------------------------------------------------

BackendName = _table.BackendName  # every backend of the table
TorchFreeBackend = _enum("TorchFreeBackend", _table.choices("torch-free"))  # index, search, attention
TORCH_FREE_DEFAULT = TorchFreeBackend(_table.defaults("index")[0])  # the table says which
Precision = contract.Precision  # fp32, fp16, int8: an export's graph precisions
PlanPrecision = _enum("PlanPrecision", contract.PLAN_PRECISIONS)  # what TensorRT plans are built in
ExportPrecision = _enum("ExportPrecision", (*contract.PRECISIONS, "all"))
# what torch-deploy / torch-compile compute in (bench); not graph precisions, so not the contract's
TorchPrecision = _enum("TorchPrecision", ("fp32", "fp16", "bf16"))


def value(choice: enum.Enum | str | None) -> str | None:
    """The plain string of an enum choice (None stays None)."""
    if choice is None:
        return None
    return choice.value if isinstance(choice, enum.Enum) else str(choice)


class BackendList(tuple):
    """The names of a `--backends` option, in the order given, each once."""


def backend_list(text: str, where: str = "all") -> BackendList:
    """Parse comma-separated backend names; an unknown or empty one is a usage error (exit 2)."""
    if isinstance(text, BackendList):  # click passes an already-parsed default back through
        return text
    allowed = _table.choices(where)
    names = tuple(dict.fromkeys(part.strip() for part in str(text).split(",") if part.strip()))
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise typer.BadParameter(
            f"unknown backend {', '.join(map(repr, unknown))}; choose from {', '.join(allowed)}")
    if not names:
        raise typer.BadParameter(f"no backend named; choose from {', '.join(allowed)}")
    return BackendList(names)


def parse_backends(text: str) -> BackendList:
    """`backend_list` over every backend of the table (typer's `parser=`)."""
    return backend_list(text, "all")


def _listed(where: str) -> str:
    return ", ".join(_table.choices(where))


# --- the shared options -----------------------------------------------------------------------------

OnnxDir = Annotated[Path, typer.Option(
    "--onnx-dir", help="The export folder (manifest.json, the ONNX graphs, vocab.json).")]
OptionalOnnxDir = Annotated[Path | None, typer.Option(
    "--onnx-dir", help="The export folder (manifest.json, the ONNX graphs, vocab.json).")]
EngineDir = Annotated[Path, typer.Option(
    "--engine-dir", help="The TensorRT plans and their JSON sidecars (vsrn-deploy build-engine --out); "
                         "read by the trt backend.")]
Device = Annotated[str, typer.Option(
    "--device", help="cpu, cuda or cuda:N (auto, where it is the default: cuda when a GPU is visible).")]
Vocab = Annotated[Path | None, typer.Option(
    "--vocab", help="Vocabulary: the authors' <data_name>_vocab.pkl or a vocab.json (default: the "
                    "checkpoint's own, else found beside the data or checkpoint).")]
Overwrite = Annotated[bool, typer.Option(
    "--overwrite", help="Replace what is in the way although vsrn-deploy did not write it (without "
                        "this, only vsrn-deploy's own earlier output is replaced).")]
Backend = Annotated[BackendName, typer.Option(
    "--backend", help="The backend (vsrn_deploy.core.backends lists them).", case_sensitive=False)]
TorchFreeBackendOption = Annotated[TorchFreeBackend, typer.Option(
    "--backend", help="The backend, one that runs without torch.", case_sensitive=False)]
OptionalTorchFreeBackend = Annotated[TorchFreeBackend | None, typer.Option(
    "--backend", help="The backend, one that runs without torch.", case_sensitive=False)]
Backends = Annotated[BackendList, typer.Option(
    "--backends", parser=parse_backends, metavar="NAME,NAME",
    help=f"Comma-separated backends, from: {_listed('all')}.")]
PrecisionOption = Annotated[Precision, typer.Option(
    "--precision", help="Graph precision.", case_sensitive=False)]
OptionalPrecision = Annotated[Precision | None, typer.Option(
    "--precision", help="Graph precision.", case_sensitive=False)]
ReportOut = Annotated[Path | None, typer.Option("--out", help="Write the JSON report here.")]
# bounds a usage error names: far more threads than cores crash the thread pools (libgomp aborts the
# process allocating them; ONNX Runtime's option is a 32-bit int), and numpy seeds are non-negative
MAX_THREADS = 1024
MAX_SEED = 2**32 - 1
# the largest count or dimension an option may ask for (array and tensor dimensions are int32 in
# ONNX Runtime and TensorRT; numpy refuses larger than int64 with a bare ValueError)
MAX_SIZE = 2**31 - 1


def _shown(number: float) -> str:
    """2147483647, 0.5, 86400 (a float that is a whole number without its '.0')."""
    return str(int(number)) if float(number).is_integer() else repr(float(number))


def bounded(help: str, low: float, high: float, *, why: str = "", above: bool = False) -> Any:
    """The `typer.Option` of an int or float option that must lie in [low, high] ((low, high] with
    `above`): anything else (NaN and the infinities too) is a usage error, one `error:` line and exit 2,
    before the command starts any work. `why` says where the bound comes from; --help shows the range."""
    allowed = f"{'(' if above else '['}{_shown(low)}, {_shown(high)}]"
    reason = f" ({why})" if why else ""

    def check(value: Any) -> Any:
        if value is None:  # an optional option left out
            return value
        if not ((low < value) if above else (low <= value)) or not value <= high:  # NaN fails both
            raise typer.BadParameter(f"must lie in {allowed}{reason}; got {value}; pass a number in that "
                                     "range")
        return value

    return typer.Option(callback=check, help=f"{help} Range: {allowed}.")


Threads = Annotated[int | None, typer.Option(
    "--threads", min=1, max=MAX_THREADS,
    help="Intra-op threads of torch and ONNX Runtime (default: their own).")]
Seed = Annotated[int, typer.Option(
    "--seed", min=0, max=MAX_SEED, help="Random seed; the result is a function of it.")]
