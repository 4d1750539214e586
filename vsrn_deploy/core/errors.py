"""Error types the command line turns into exit codes without a traceback.

`VsrnError` is a user error (bad input, missing file, missing optional package): exit 2.
`CheckFailed` is a failed parity or accuracy check: exit 1.
Anything else is a bug in vsrn-deploy and keeps its traceback.
"""

from __future__ import annotations


class VsrnError(Exception):
    """A problem with the user's input or environment; the message says how to fix it."""

    exit_code = 2


class CheckFailed(Exception):
    """A numerical or retrieval check did not pass."""

    exit_code = 1


def require(condition: bool, message: str) -> None:
    """Raise `VsrnError(message)` unless `condition` holds."""
    if not condition:
        raise VsrnError(message)


#: The one line a command that needs torch prints where torch is not installed.
TORCH_HINT = "install it with: pip install 'vsrn-deploy[torch]'"


def torch_missing(purpose: str) -> VsrnError:
    """The error for `purpose` needing torch where it is not installed (the package alone has none)."""
    return VsrnError(f"{purpose} needs PyTorch, which is not installed here (vsrn-deploy without extras "
                     f"serves, indexes and searches without it); {TORCH_HINT}")


def import_optional(module: str, extra: str, purpose: str):
    """Import an optional heavy package, or raise a `VsrnError` naming the extra to install.

    Args:
        module: the module to import, e.g. ``"onnxruntime"``.
        extra: the pip extra of vsrn-deploy that provides it (a backend row's `extra`); "" when
            the base install has it (the message then names the package itself).
        purpose: what the caller needs it for, used in the message.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise VsrnError(
            f"{purpose} needs the Python package '{module}', which is not installed ({exc}). "
            + (f"Install it with: pip install 'vsrn-deploy[{extra}]'" if extra
               else f"Install it with: pip install {module}")
        ) from None
