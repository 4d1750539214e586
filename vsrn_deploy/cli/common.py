"""Shared pieces of the command modules."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from vsrn_deploy.errors import CheckFailed, VsrnError, torch_missing

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(fn: F) -> F:
    """Turn `VsrnError` into one 'error: ...' line and exit 2, `CheckFailed` into exit 1.

    Every command function is wrapped in this, so `CliRunner().invoke(app, ...)` sees the same
    exit codes as the console script. A command that reaches for torch where it is not installed
    (the package alone installs none) gets the one-line install hint and exit 2. Other exceptions
    are bugs and keep their traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (VsrnError, CheckFailed) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=exc.exit_code) from None
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] != "torch":
                raise
            command = fn.__name__.removesuffix("_command").replace("_", "-")
            typer.echo(f"error: {torch_missing(f'vsrn-deploy {command}')}", err=True)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]
