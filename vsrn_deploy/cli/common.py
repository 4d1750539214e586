"""Shared pieces of the command modules."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from vsrn_deploy.core.errors import CheckFailed, VsrnError, torch_missing

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


def _from_interrupt(exc: BaseException) -> bool:
    """Whether `exc` was raised because of a KeyboardInterrupt (Ctrl-C, or SIGTERM: see app.py).

    Some libraries turn an interrupt that lands inside them into their own error: onnxruntime's
    import raises `ImportError: initialization failed` from it. That is still the user's Ctrl-C.
    """
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, KeyboardInterrupt):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def handle_errors(fn: F) -> F:
    """Turn `VsrnError` into one 'error: ...' line and exit 2, `CheckFailed` into exit 1.

    Every command function is wrapped in this, so `CliRunner().invoke(app, ...)` sees the same
    exit codes as the console script. A command that reaches for torch where it is not installed
    (the package alone installs none) gets the one-line install hint and exit 2. Ctrl-C (and any
    error a library raised because of it) ends with one line and exit 130. Other exceptions are
    bugs and keep their traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                if _from_interrupt(exc):  # Ctrl-C that a library re-raised as its own error
                    raise KeyboardInterrupt from exc
                raise
        except (VsrnError, CheckFailed) as exc:
            typer.echo(f"error: {one_line(str(exc))}", err=True)
            raise typer.Exit(code=exc.exit_code) from None
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] != "torch":
                raise
            command = fn.__name__.removesuffix("_command").replace("_", "-")
            typer.echo(f"error: {torch_missing(f'vsrn-deploy {command}')}", err=True)
            raise typer.Exit(code=2) from None
        except MemoryError:
            # a size the user asked for (--synthetic, --batch-size, --train ...) does not fit in memory
            typer.echo("error: not enough memory for the sizes asked for; ask for fewer items or smaller "
                       "batches, then run again", err=True)
            raise typer.Exit(code=2) from None
        except OSError as exc:
            # the file system refused something the user asked for (permissions, a full disk, a
            # read-only mount, a name too long): the user's to fix, so one line and exit 2
            typer.echo(f"error: {describe_os_error(exc)}", err=True)
            raise typer.Exit(code=2) from None
        except KeyboardInterrupt:
            typer.echo("error: interrupted; nothing half-written was kept", err=True)
            raise typer.Exit(code=130) from None

    return wrapper  # type: ignore[return-value]
