"""Restricted unpickling: build only the classes a caller names, never run anything else.

A pickle is a small program; `pickle.load` on a user's file will call whatever callable the file
names (`os.system`, `builtins.eval`, ...). `restricted_loads` resolves every global the stream asks
for through an explicit allow-list, so a hostile file fails with `VsrnError` before any payload runs.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping
from typing import Any

from vsrn_deploy.core.errors import VsrnError

__all__ = ["RestrictedUnpickler", "restricted_loads", "decode_py2_str"]


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler whose `find_class` only returns objects from `allowed`.

    Args:
        file: a binary file object.
        allowed: ``{(module, name): object}``; anything else is refused.
        what: words for error messages, e.g. ``"vocabulary pickle"``.
        encoding: how Python 2 byte strings are decoded (``"bytes"`` keeps them as bytes).
    """

    def __init__(self, file: Any, allowed: Mapping[tuple[str, str], Any], *, what: str = "pickle",
                 encoding: str = "bytes") -> None:
        super().__init__(file, encoding=encoding)
        self._allowed = dict(allowed)
        self._what = what

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"{self._what} refers to '{module}.{name}', which is not allowed; "
                "refusing to load it (a pickle can run code when loaded)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError(f"{self._what} uses persistent ids, which are not allowed")


def restricted_loads(data: bytes, allowed: Mapping[tuple[str, str], Any], *, what: str = "pickle",
                     source: str = "", encoding: str = "bytes") -> Any:
    """Unpickle `data`, allowing only the globals in `allowed`.

    Args:
        data: the pickle bytes.
        allowed: ``{(module, name): object}`` that the stream may refer to.
        what: what the file should be, for messages.
        source: the file name, for messages.
        encoding: decoding of Python 2 byte strings (``"bytes"`` keeps bytes).
    Returns:
        The unpickled object.
    Raises:
        VsrnError: empty, truncated, corrupt or hostile data.
    """
    where = f" {source}" if source else ""
    if not data:
        raise VsrnError(f"{what}{where} is empty")
    try:
        return RestrictedUnpickler(io.BytesIO(data), allowed, what=what, encoding=encoding).load()
    except pickle.UnpicklingError as exc:
        raise VsrnError(f"cannot read {what}{where}: {exc}") from None
    except RecursionError:
        raise VsrnError(f"cannot read {what}{where}: nested too deeply to be a {what}") from None
    except (EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError, MemoryError,
            UnicodeDecodeError, OverflowError) as exc:
        raise VsrnError(f"cannot read {what}{where}: truncated or not a pickle "
                        f"({type(exc).__name__}: {exc})") from None


def decode_py2_str(value: str | bytes) -> str:
    """A Python 2 `str` (bytes) as text: UTF-8 if valid, else Latin-1 (which never fails)."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.decode("latin-1")
    return value
