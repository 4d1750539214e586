"""Root of the `vsrn-deploy` command line: composes the command modules, maps errors to exit codes.

Every command is wrapped in `vsrn_deploy.cli.common.handle_errors`: user errors (`VsrnError`) print
one line and exit 2, failed checks (`CheckFailed`) exit 1, any other exception is a bug and keeps
its traceback.
"""

from __future__ import annotations

import importlib

import typer

# Each module defines `register(app: typer.Typer) -> None`.
_COMMAND_MODULES: list[str] = [
    "demo",
    "encode",
    "export",
    "data",
    "train",
    "evaluate",
    "build_engine",
    "validate",
    "bench",
    "triton_repo",
]

app = typer.Typer(
    name="vsrn-deploy",
    help="VSRN image-text retrieval: train, evaluate, export to ONNX, build TensorRT engines, "
    "validate and benchmark.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)

for _name in _COMMAND_MODULES:
    importlib.import_module(f"vsrn_deploy.cli.{_name}").register(app)


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM (kill, a job scheduler) unwinds like Ctrl-C: staging folders and temporary files are
    # removed by the code that made them, so nothing half-written is left behind
    raise KeyboardInterrupt


def main() -> None:
    """Console-script entry point."""
    import signal

    signal.signal(signal.SIGTERM, _terminate)
    app()
