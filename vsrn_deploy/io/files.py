"""Writing files and folders so that nothing half-written remains, and hashing them.

The one file writer (`atomic_write_bytes` / `_text` / `_json`), the one folder swap
(`swap_in_folder`) and the one hasher (`sha256_file`, `sha256_bytes`) of vsrn-deploy. Standard
library only, so every layer may use them.

- A file is written to a temporary name unique to this process and call, in the same folder,
  flushed and fsync'ed, then renamed over the target: a reader sees the old file or the new one,
  never a mix; a failure (or Ctrl-C) removes the temporary file.
- A folder is built under a temporary name beside its target (`staging_folder`) and swapped in by
  `swap_in_folder`: an existing target is first moved aside, and put back if the swap fails.
- New files and folders get the usual permissions under the process umask (0644 / 0755 under
  umask 022), not the 0600 / 0700 of `tempfile`, so a server running as another user can read them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of bytes in memory."""
    return hashlib.sha256(data).hexdigest()


def _temp_beside(path: Path, suffix: str = "") -> Path:
    # short prefix: a target name near 255 bytes must still leave room (the name is truncated)
    fd, name = tempfile.mkstemp(prefix=f".{path.name[:40]}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    return Path(name)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically (`atomic_writer`: unique temporary name, fsync, rename).

    The parent folder must exist. Permissions are 0666 minus the umask, like `open()`. Returns `path`.
    """
    with atomic_writer(path) as handle:
        handle.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """`atomic_write_bytes` of UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, *, sort_keys: bool = False) -> Path:
    """`atomic_write_bytes` of indented JSON with a final newline."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=sort_keys) + "\n")


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """A file handle whose content replaces `path` only when the block ends without an exception.

    For writers that stream (np.save, torch.save): `with atomic_writer(p) as f: np.save(f, a)`.
    """
    path = Path(path)
    tmp = _temp_beside(path)
    try:
        with open(tmp, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def staging_folder(target: str | os.PathLike) -> Iterator[Path]:
    """A new empty folder beside `target` (same file system) to build its content in.

    Removed with everything in it if the block raises; otherwise left for `swap_in_folder`
    (which consumes it) and removed at exit if still there. Mode 0777 minus the umask.
    """
    target = Path(target)
    parent = target.resolve().parent
    folder = Path(tempfile.mkdtemp(prefix=f".{target.name[:40]}.", suffix=".tmp", dir=parent))
    os.chmod(folder, 0o777 & ~_umask())
    try:
        yield folder
    finally:
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)


def swap_in_folder(staged: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Put the finished folder `staged` at `target`.

    An existing `target` is renamed aside first, removed only after `staged` is in place, and renamed
    back if that fails: at every moment `target` is the old complete folder or the new one.
    Callers decide beforehand whether an existing `target` may be replaced (see ownership checks).
    """
    staged, target = Path(staged), Path(target)
    if not target.exists() and not target.is_symlink():
        os.replace(staged, target)
        return target
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name[:40]}.", suffix=".old", dir=target.resolve().parent))
    os.replace(target, aside / "previous")
    try:
        os.replace(staged, target)
    except BaseException:
        os.replace(aside / "previous", target)
        shutil.rmtree(aside, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)
    return target
