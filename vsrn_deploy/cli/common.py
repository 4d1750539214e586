"""Shared pieces of the command modules."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from vsrn_deploy.errors import CheckFailed, VsrnError

F = TypeVar("F", bound=Callable[..., Any])


def one_line(message: str) -> str:
    """A message on one line (multi-line check reports keep their lines joined by '; ')."""
    parts = [part.strip() for part in message.splitlines() if part.strip()]
    return "; ".join(parts) if parts else message


def describe_os_error(exc: OSError) -> str:
    """'cannot write PATH: Permission denied; check the path and its permissions' from an OSError."""
    where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
    reason = exc.strerror or str(exc) or type(exc).__name__
    subject = f"{where}: {reason}" if where else reason
    return f"{subject}; check the path, its permissions and the free space, then run again"


def handle_errors(fn: F) -> F:
    """Turn `VsrnError` into one 'error: ...' line and exit 2, `CheckFailed` into exit 1.

    Every command function is wrapped in this, so `CliRunner().invoke(app, ...)` sees the same
    exit codes as the console script. Other exceptions are bugs and keep their traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (VsrnError, CheckFailed) as exc:
            typer.echo(f"error: {one_line(str(exc))}", err=True)
            raise typer.Exit(code=exc.exit_code) from None
        except OSError as exc:
            # the file system refused something the user asked for (permissions, a full disk, a
            # read-only mount, a name too long): the user's to fix, so one line and exit 2
            typer.echo(f"error: {describe_os_error(exc)}", err=True)
            raise typer.Exit(code=2) from None
        except KeyboardInterrupt:
            typer.echo("error: interrupted; nothing half-written was kept", err=True)
            raise typer.Exit(code=130) from None

    return wrapper  # type: ignore[return-value]
