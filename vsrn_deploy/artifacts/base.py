"""What every kind of folder shares: the manifest dataclass base, the one manifest reader, the file
list check, the kind declaration and its writer.

Standard library only (plus `vsrn_deploy.core` and `vsrn_deploy.io`): every layer may use it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from vsrn_deploy.artifacts.outputs import MARKER_KEY, OutputFolder, marker, parse_manifest
from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.io.files import sha256_file

__all__ = ["ABSENT", "Kind", "Manifest", "file_entry", "load_manifest", "verify_files", "MARKER_KEY",
           "marker"]



class _Absent:
    """A key the manifest did not have (older versions wrote fewer): not written back."""

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False


ABSENT: Any = _Absent()


@dataclass
class Manifest:
    """A manifest as a dataclass: one field per JSON key, in the order they are written.

    `from_dict` keeps keys it does not know (newer versions) in `extra`, marks keys the file did not
    have as `ABSENT` and remembers the order; `to_dict` gives back the same keys, values and order,
    so a manifest read and written again is the same JSON.
    """

    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    order: list[str] = field(default_factory=list, repr=False, compare=False)  # keys as read

    KEYS: ClassVar[tuple[str, ...]] = ()  # JSON key of each field, when it differs from the field name

    @classmethod
    def _names(cls) -> list[tuple[str, str]]:
        """(field name, JSON key) of every manifest field."""
        renamed = dict(cls.KEYS)
        return [(f.name, renamed.get(f.name, f.name)) for f in fields(cls)
                if f.name not in ("extra", "order")]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        names = cls._names()
        known = {key for _, key in names}
        values = {name: data.get(key, ABSENT) for name, key in names}
        return cls(**values, extra={k: v for k, v in data.items() if k not in known}, order=list(data))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: keys in the order they were read, then new ones in declaration order."""
        fresh = {key: getattr(self, name) for name, key in self._names() if getattr(self, name) is not ABSENT}
        fresh.update(self.extra)
        out = {key: fresh[key] for key in self.order if key in fresh}
        out.update(fresh)
        return out


def file_entry(path: str | os.PathLike, what: str | None = None) -> dict[str, Any]:
    """{sha256, bytes} of a file (and "what" it is, when given): how every manifest lists a file."""
    entry: dict[str, Any] = {"sha256": sha256_file(path), "bytes": Path(path).stat().st_size}
    if what is not None:
        entry["what"] = what
    return entry


def load_manifest(path: str | os.PathLike, *, what: str, fix: str) -> dict[str, Any]:
    """The JSON object in the manifest `path`: the one place a manifest is parsed.

    Args:
        path: the manifest file.
        what: what it should be, for the message ("an export manifest").
        fix: the advice, e.g. "rebuild the export with: vsrn-deploy export ...".
    Raises:
        VsrnError: missing, unreadable, not JSON, or not an object.
    """
    path = Path(path)
    if not path.is_file():
        raise VsrnError(f"{path} not found; {fix}")
    try:
        data = parse_manifest(path)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        raise VsrnError(f"{path} is not readable JSON; {fix}") from None
    if not isinstance(data, dict):
        raise VsrnError(f"{path} is not {what}; {fix}")
    return data


def check_sizes(folder: str | os.PathLike, listed: dict[str, Any], *, manifest_name: str, fix: str,
                since: str = "it was written", required: bool = False) -> None:
    """The cheap check before `verify_files` hashes anything: every listed file exists and has the size
    ("bytes") its manifest records (`required`: an entry without one fails too).

    The error text: `<file> is missing (listed in <manifest>); <fix>` or `<file> has N bytes, <manifest>
    records M: it is truncated or changed since <since>; <fix>`."""
    folder = Path(folder)
    for name, entry in listed.items():
        path = folder / str(name)
        if not path.is_file():
            raise VsrnError(f"{path} is missing (listed in {manifest_name}); {fix}")
        size = entry.get("bytes") if isinstance(entry, dict) else None
        if (isinstance(size, int) or required) and path.stat().st_size != size:
            raise VsrnError(f"{path} has {path.stat().st_size} bytes, {manifest_name} records {size}: it is "
                            f"truncated or changed since {since}; {fix}")


def verify_files(folder: str | os.PathLike, listed: dict[str, Any], names: Iterable[str] | None = None, *,
                 manifest_name: str, fix: str, since: str = "it was written") -> None:
    """Check files against the sha256 their manifest records, before they are used.

    The one error text: `<file> is missing (listed in <manifest>); <fix>` or `<file> changed since it
    was written (sha256 differs from <manifest>); <fix>` ("since export" for an export), `fix` naming
    the command that rebuilds the folder.

    Args:
        folder: the folder the manifest describes.
        listed: its {relative path: {"sha256", ...}}.
        names: the files to check (default: every listed file).
    """
    folder = Path(folder)
    for name in (list(listed) if names is None else names):
        entry = listed.get(name)
        path = folder / str(name)
        if not isinstance(entry, dict) or "sha256" not in entry:
            raise VsrnError(f"{path} is not listed in {folder / manifest_name}; {fix}")
        if not path.is_file():
            raise VsrnError(f"{path} is missing (listed in {manifest_name}); {fix}")
        if sha256_file(path) != entry["sha256"]:
            raise VsrnError(f"{path} changed since {since} (sha256 differs from {manifest_name}); "
                            f"{fix}")


@dataclass(frozen=True)
class Kind:
    """One kind of folder vsrn-deploy writes, declared once.

    Attributes:
        name: the kind (the ownership marker's "kind").
        manifest_name: its manifest's file name.
        rebuild: the command that rebuilds a folder of this kind (for error text), e.g.
            "vsrn-deploy index --onnx-dir EXPORT --images F.npy --out {folder}".
        owned_files: the relative paths an earlier manifest says the tool wrote.
        recognise: a manifest of this kind written without the ownership marker (older versions).
        overwrite_flag: the command's option to replace what is in the way (None: it has none).
    """

    name: str
    manifest_name: str
    rebuild: str
    owned_files: Callable[[dict[str, Any]], Iterable[str]] = lambda m: list(m.get("files") or {})
    recognise: Callable[[dict[str, Any]], bool] | None = None
    overwrite_flag: str | None = "--overwrite"

    def rebuild_command(self, folder: str | os.PathLike) -> str:
        return self.rebuild.format(folder=folder)

    def writer(self, target: str | os.PathLike, *, entries: Iterable[str], overwrite: bool = False,
               flag: str = "--out", input_dirs: Iterable[str | os.PathLike | None] = (),
               input_files: Iterable[str | os.PathLike | None] = ()) -> OutputFolder:
        """The folder writer of this kind (`vsrn_deploy.artifacts.outputs.OutputFolder`): checks, the lock,
        a staging folder, and a commit that replaces only the files its previous manifest lists."""
        return OutputFolder(target, kind=self.name, manifest_name=self.manifest_name, entries=entries,
                            overwrite=overwrite, flag=flag, input_dirs=input_dirs, input_files=input_files,
                            owned_files=self.owned_files, recognise=self.recognise,
                            overwrite_flag=self.overwrite_flag)
