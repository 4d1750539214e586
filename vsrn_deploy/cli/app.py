"""Root of the `vsrn-deploy` command line: composes the command modules, maps errors to exit codes.

Every command is wrapped in `vsrn_deploy.cli.common.handle_errors`: user errors (`VsrnError`) print
one line and exit 2, failed checks (`CheckFailed`) exit 1, any other exception is a bug and keeps
its traceback.

Progress goes through `logging` (the library logs under `vsrn_deploy.*`): the root callback sets up
one handler on stderr, INFO by default, DEBUG with --verbose, WARNING with --quiet. Results (tables,
JSON, search hits) go to stdout.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from vsrn_deploy.cli.common import one_line

# Each module defines its command function(s) at module level and `register(app)`, which only adds them.
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
    "serve",
    "embed",
    "index",
    "search",
    "attention",
]



class _OneLineUsageErrors(TyperGroup):
    """The root group: a usage error (a wrong choice, an unknown option, a missing value) ends like
    every other user error, in one `error: ...` line and exit 2, not in a usage panel."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if not standalone_mode or not argv:  # no arguments at all: the help, as typer shows it
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as exc:  # typer's usage errors (BadParameter, NoSuchOption, ...)
            message = one_line(exc.format_message()).replace("Value error, ", "").rstrip(".")
            ctx = getattr(exc, "ctx", None)
            hint = f"; see {ctx.command_path} --help" if ctx is not None else ""
            typer.echo(f"error: {message}{hint}", err=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("error: aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    name="vsrn-deploy",
    cls=_OneLineUsageErrors,
    help="VSRN image-text retrieval: train, evaluate, export to ONNX, build TensorRT engines, "
    "validate and benchmark.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


class _StderrHandler(logging.StreamHandler):
    """A handler that writes to whatever `sys.stderr` is when a record is emitted (a test runner
    swaps it per invocation)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr  # not setStream: that flushes the old stream, which may be closed
        super().emit(record)


_HANDLER_FLAG = "_vsrn_deploy_cli"


def setup_logging(level: int = logging.INFO) -> logging.Logger:
    """One stderr handler with plain messages on the `vsrn_deploy` logger, at `level` (idempotent)."""
    logger = logging.getLogger("vsrn_deploy")
    for handler in list(logger.handlers):
        if getattr(handler, _HANDLER_FLAG, False):
            logger.removeHandler(handler)
    handler = _StderrHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    setattr(handler, _HANDLER_FLAG, True)
    logger.addHandler(handler)
    logger.setLevel(level)
    if not logging.root.handlers:
        # a library calling logging.info() directly (one does during export) would otherwise run
        # basicConfig on the root logger, and every line of ours would be printed twice
        # ("INFO:vsrn_deploy...:" after the plain one)
        logging.root.addHandler(logging.NullHandler())
    return logger


def _version(show: bool) -> None:
    if show:
        from vsrn_deploy.core.version import __version__

        typer.echo(f"vsrn-deploy {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also debug messages.")] = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Only warnings and errors (no progress lines).")] = False,
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """VSRN image-text retrieval: train, evaluate, export to ONNX, build TensorRT engines, validate and
    benchmark."""
    if verbose and quiet:
        typer.echo("error: give --verbose or --quiet, not both", err=True)
        raise typer.Exit(code=2)
    setup_logging(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)


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
