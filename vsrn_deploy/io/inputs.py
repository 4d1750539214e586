"""Checks on what a user passes in, shared by every command: one function per kind of input.

- `require_file`: a path that must be a readable file (a folder or a missing path says which).
- `check_finite_features`: region features with NaN/Inf are refused, naming the first bad image.
- `read_caption_lines`: a captions file: UTF-8 (a BOM is stripped), CRLF or LF, one per line.
- `check_device`, `check_positive`: options that would otherwise fail deep inside torch.

Standard library and numpy only (the serving and search paths use them without torch).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vsrn_deploy.core.errors import VsrnError

BOM = "\ufeff"


def require_file(path: str | os.PathLike, what: str) -> Path:
    """`path` as a Path when it is an existing regular file; else a VsrnError naming `what`.

    Args:
        path: the path given.
        what: how the message names it, e.g. "--captions" or "checkpoint".
    """
    p = Path(path)
    if p.is_dir():
        raise VsrnError(f"{what} {path} is a folder; give the file itself")
    if not p.exists():
        raise VsrnError(f"{what} {path} not found (it does not exist)")
    if not p.is_file():
        raise VsrnError(f"{what} {path} is not a regular file")
    if not os.access(p, os.R_OK):
        raise VsrnError(f"{what} {path} is not readable (permission denied)")
    return p


NPY_MAGIC = b"\x93NUMPY"  # the first bytes of every .npy file


def load_npy(path: str | os.PathLike, what: str, *, mmap: bool = True,
             fix: str = "is it truncated? write it again with numpy.save") -> np.ndarray:
    """A user's .npy array, memory-mapped (or read whole), never unpickled.

    numpy's own messages for a bad file are replaced by one that says what to do; in particular an
    object array is refused without the advice numpy gives (load it with allow_pickle=True), which
    would run whatever the file holds.

    Args:
        path: the .npy file.
        what: how the message names it, e.g. "--calibration" or "region features".
        mmap: memory-map it (read-only) instead of reading it whole.
        fix: the advice for an unreadable file.
    Raises:
        VsrnError: missing, not a .npy file, an object array, or unreadable (e.g. truncated).
    """
    p = require_file(path, what)
    with open(p, "rb") as handle:
        if handle.read(len(NPY_MAGIC)) != NPY_MAGIC:
            raise VsrnError(f"{what} {path} is not a .npy file (it lacks the NumPy header); write the "
                            "array with numpy.save")
    try:
        return np.load(p, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "python objects" in str(exc).lower():
            raise VsrnError(f"{what} {path} holds Python objects (dtype object), which vsrn-deploy never "
                            "unpickles; save a numeric array instead") from None
        reason = exc
    except (OSError, EOFError) as exc:
        reason = exc
    first = (str(reason).splitlines() or [type(reason).__name__])[0][:200]
    raise VsrnError(f"{what} {path} is not a readable .npy array ({first}); {fix}")


def check_finite_features(features: np.ndarray, source: str, *, chunk: int = 256) -> None:
    """Refuse region features holding NaN or Inf (one such row would match every caption best).

    Reads memory-mapped arrays in chunks of `chunk` images.

    Raises:
        VsrnError: naming the first image (row of the first axis) with a non-finite value.
    """
    arr = np.asarray(features) if not isinstance(features, np.ndarray) else features
    if arr.dtype.kind not in "fc":
        return
    n = arr.shape[0] if arr.ndim else 1
    for start in range(0, max(n, 1), chunk):
        block = np.asarray(arr[start:start + chunk]) if arr.ndim else arr
        bad = ~np.isfinite(block)
        if bad.any():
            rows = np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1)) if block.ndim else [0]
            first = start + int(rows[0])
            value = block.reshape(block.shape[0], -1)[int(rows[0])] if block.ndim else block
            kind = "NaN" if np.isnan(value).any() else "Inf"
            total = int(bad.reshape(bad.shape[0], -1).any(axis=1).sum()) if block.ndim else 1
            raise VsrnError(f"{source}: image {first} has {kind} values ({total} image(s) with non-finite "
                            f"values from image {start} on); fix or drop those rows")


def read_caption_lines(path: str | os.PathLike, what: str = "caption file") -> list[str]:
    """Captions, one per line: UTF-8 with or without a BOM, LF or CRLF, blank lines at the end ignored.

    Raises:
        VsrnError: missing file, a folder, not UTF-8, no captions, or a blank line inside (which would
            shift every later caption onto the wrong image).
    """
    p = require_file(path, what)
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise VsrnError(f"{what} {path} is not UTF-8 text ({exc})") from None
    except OSError as exc:
        raise VsrnError(f"{what} {path} cannot be read ({exc.strerror})") from None
    text = text.removeprefix(BOM)
    lines = [line.rstrip("\r").replace(BOM, "").strip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise VsrnError(f"{what} {path} holds no captions")
    blank = next((i for i, line in enumerate(lines) if not line), None)
    if blank is not None:
        raise VsrnError(f"{what} {path}: line {blank + 1} is empty; write one caption per line (an empty "
                        "line would shift every later caption onto the wrong image)")
    return lines


def check_device(device: str, *, flag: str = "--device", allow_auto: bool = False) -> str:
    """`cpu`, `cuda` or `cuda:N` (and `auto` when allowed); `cuda` only when a GPU is visible."""
    ok = device == "cpu" or device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit())
    if allow_auto and device == "auto":
        return device
    if not ok:
        choices = "auto, cpu, cuda or cuda:N" if allow_auto else "cpu, cuda or cuda:N"
        raise VsrnError(f"{flag} {device!r} is not a device vsrn-deploy runs on; use {choices}")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise VsrnError(f"{flag} {device}, but torch sees no CUDA GPU here; use {flag} cpu")
        index = int(device[5:]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise VsrnError(f"{flag} {device}, but only {torch.cuda.device_count()} GPU(s) are visible")
    return device


def check_positive(value: int | None, flag: str, *, allow_none: bool = True) -> None:
    """An integer option that must be >= 1 (None allowed when `allow_none`)."""
    if value is None and allow_none:
        return
    if value is None or value < 1:
        raise VsrnError(f"{flag} must be >= 1 (got {value})")
