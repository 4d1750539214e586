"""The root command line: help works with no heavy package imported, errors map to exit codes."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import typer
from typer.testing import CliRunner

from vsrn_deploy.cli.common import handle_errors
from vsrn_deploy.core.errors import CheckFailed, VsrnError

HEAVY = ("torch", "onnxruntime", "tensorrt", "polygraphy", "pycuda", "matplotlib", "cuda")


def test_help_lists_commands_and_imports_nothing_heavy():
    code = textwrap.dedent(
        f"""
        import sys
        from typer.testing import CliRunner
        from vsrn_deploy.cli.app import app
        result = CliRunner().invoke(app, ["--help"])
        assert result.exit_code == 0, result.output
        print(result.output)
        heavy = [m for m in {HEAVY!r} if m in sys.modules]
        print("HEAVY=" + ",".join(heavy))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY=\n" in proc.stdout or proc.stdout.rstrip().endswith("HEAVY="), proc.stdout
    for command in ("export", "build-engine", "validate", "bench", "train", "evaluate"):
        assert command in proc.stdout


def test_module_entry_point_runs():
    proc = subprocess.run([sys.executable, "-m", "vsrn_deploy", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0
    assert "vsrn-deploy" in proc.stdout or "Usage" in proc.stdout


def _app_with(exc: Exception) -> typer.Typer:
    demo = typer.Typer()

    @demo.command()
    @handle_errors
    def fail() -> None:
        raise exc

    @demo.command()
    def other() -> None:  # a second command keeps typer in multi-command mode
        pass

    return demo


def test_user_error_is_one_line_exit_2():
    result = CliRunner().invoke(_app_with(VsrnError("bad input: do X")), ["fail"])
    assert result.exit_code == 2
    assert "error: bad input: do X" in result.output
    assert "Traceback" not in result.output


def test_failed_check_exits_1():
    result = CliRunner().invoke(_app_with(CheckFailed("parity missed")), ["fail"])
    assert result.exit_code == 1
    assert "parity missed" in result.output


def _raised_from_interrupt() -> ImportError:
    """What onnxruntime's import raises when Ctrl-C lands inside it."""
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as interrupt:
            raise ImportError("initialization failed") from interrupt
    except ImportError as exc:
        return exc


def test_an_error_a_library_raised_from_ctrl_c_is_an_interrupt():
    result = CliRunner().invoke(_app_with(_raised_from_interrupt()), ["fail"])
    assert result.exit_code == 130, result.output
    assert result.output.strip() == "error: interrupted; nothing half-written was kept"
    # the same error without an interrupt behind it is a bug, traceback kept
    result = CliRunner().invoke(_app_with(ImportError("initialization failed")), ["fail"])
    assert result.exit_code == 1 and isinstance(result.exception, ImportError)


def test_bugs_keep_their_traceback():
    result = CliRunner().invoke(_app_with(ZeroDivisionError("boom")), ["fail"])
    assert result.exit_code != 0
    assert isinstance(result.exception, ZeroDivisionError)
