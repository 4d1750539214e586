"""What a command may write, and where: checks on every output path, ownership, and the folder commit.

The rule: a command never deletes or replaces anything it did not write itself.

- Every output folder vsrn-deploy writes carries an ownership marker: the key ``written_by`` =
  ``{"tool": "vsrn-deploy", "kind": KIND}`` in its manifest (``manifest.json`` of an export,
  ``vsrn_repo.json`` of a Triton repository; an index's ``index.json`` is recognised by its
  ``format``). A folder with that marker may be rewritten without ``--overwrite``; only the FILES its
  previous manifest listed (and the new ones) are touched, never a sub-folder as a whole.
- Anything else in the way (a non-empty folder without the marker, a same-named file the tool did not
  write) needs ``--overwrite``; even then only the files the tool writes are replaced, never the
  rest of the folder (user files inside the tool's sub-folders included).
- Outputs that overlap inputs (the output folder is an input folder or holds one; an input file
  would be replaced) are refused.
- Path problems (unwritable or missing parent, a file where a folder is wanted and the reverse,
  names over 255 bytes, ``.``) are found before anything is computed or created, each as one
  `VsrnError` that names the fix.

`OutputFolder` is the one place that writes a folder: it checks, takes a lock beside the target (a
second command writing the same folder is refused, never interleaved), gives a staging folder to
build in (umask permissions), and commits file by file with rollback. Each kind of folder is
declared beside this module in `vsrn_deploy.artifacts` (its manifest, the files it owns), which
builds its writer here.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from vsrn_deploy.core.contract import TRAINED_NAMES
from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.io.files import staging_folder

MARKER_KEY = "written_by"
TOOL = "vsrn-deploy"
NAME_MAX = 255


def marker(kind: str) -> dict[str, str]:
    """The ownership marker stored under ``written_by`` in a manifest of `kind`."""
    return {"tool": TOOL, "kind": kind}


def _abs(path: str | os.PathLike) -> Path:
    # abspath (not resolve): keeps symlinked folders as given, turns "." and "x/.." into names
    return Path(os.path.abspath(os.fspath(path)))


MAX_MANIFEST_BYTES = 64 * 1024 * 1024  # a manifest larger than this is not one of ours


def parse_manifest(path: Path) -> Any:
    """The parsed JSON of the manifest file `path`: the one place a manifest's bytes are parsed.

    Raises:
        OSError, UnicodeDecodeError, ValueError, RecursionError: unreadable, too large, not JSON.
    """
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise ValueError(f"{path} is over {MAX_MANIFEST_BYTES} bytes")
    return json.loads(path.read_bytes().decode("utf-8"))


def read_owned_manifest(folder: str | os.PathLike, manifest_name: str, kind: str,
                        recognise: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any] | None:
    """The manifest of `folder` when it carries vsrn-deploy's marker of `kind` (or `recognise` says it
    is one of that kind's, for manifests without a marker), else None."""
    path = Path(folder) / manifest_name
    try:
        if not path.is_file():
            return None
        data = parse_manifest(path)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    if isinstance(data, dict) and (data.get(MARKER_KEY) == marker(kind)
                                   or (recognise is not None and recognise(data))):
        return data
    return None


def _probe_writable(folder: Path, flag: str, given: str | os.PathLike) -> None:
    """Create and remove a temporary file in `folder`: the only test that sees read-only mounts,
    immutable folders and permissions alike (root passes `os.access` where a write still fails)."""
    try:
        fd, name = tempfile.mkstemp(prefix=".vsrn-probe-", dir=folder)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise VsrnError(f"{flag} {given}: cannot write into {folder} ({reason}); choose a folder you "
                        "can write to") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)


def _nearest_existing(path: Path) -> Path:
    probe = path
    while not probe.exists() and not probe.is_symlink():
        if probe.parent == probe:
            break
        probe = probe.parent
    return probe


def check_out_path(path: str | os.PathLike, *, want: str, flag: str = "--out") -> Path:
    """Check an output path before anything is created; returns it absolute.

    Args:
        path: the path the user gave.
        want: "folder" or "file".
        flag: the option's name, for the message.
    Raises:
        VsrnError: a file where a folder is wanted (or the reverse), a name over 255 bytes, a parent
            that is a file, or a location that cannot be written.
    """
    given = path
    path = _abs(path)
    for part in path.parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise VsrnError(f"{flag} {given}: the name {part[:40]}... is {len(os.fsencode(part))} bytes; "
                            f"file systems allow {NAME_MAX}; choose a shorter name")
    if want == "folder" and path.exists() and not path.is_dir():
        raise VsrnError(f"{flag} {given} is a file, not a folder; give a folder name (it is created)")
    if want == "file" and path.is_dir():
        raise VsrnError(f"{flag} {given} is a folder; give a file name, e.g. {Path(given) / 'report.json'}")
    anchor = _nearest_existing(path.parent)
    if not anchor.is_dir():
        raise VsrnError(f"{flag} {given}: {anchor} is a file, so nothing can be created under it; "
                        "choose another path")
    _probe_writable(anchor, flag, given)
    if path.is_dir():
        _probe_writable(path, flag, given)
    return path


def _is_within(inner: Path, outer: Path) -> bool:
    try:
        inner.relative_to(outer)
    except ValueError:
        return False
    return True


def refuse_overlap(out: str | os.PathLike, *, input_dirs: Iterable[str | os.PathLike | None] = (),
                   input_files: Iterable[str | os.PathLike | None] = (),
                   entries: Iterable[str] = (), flag: str = "--out",
                   shown: str | os.PathLike | None = None) -> None:
    """Refuse an output that would replace or hold an input.

    Args:
        out: the output folder (or file when `entries` is empty and it is a file output).
        input_dirs: input folders: refused when `out` is one of them or a folder above one.
        input_files: input files: refused when `out` is one, or one would be replaced (it is, or
            lies in, one of the `entries` of `out`).
        entries: the names the command writes inside `out`.
    """
    out_r = Path(os.path.realpath(out))
    shown = out if shown is None else shown
    for d in input_dirs:
        if d is None:
            continue
        d_r = Path(os.path.realpath(d))
        if _is_within(d_r, out_r):
            what = "is" if d_r == out_r else "holds"
            raise VsrnError(f"{flag} {shown} {what} the input folder {d}; writing there would replace what "
                            "this command reads; choose another " + flag)
    names = list(entries)
    for f in input_files:
        if f is None:
            continue
        f_r = Path(os.path.realpath(f))
        if f_r == out_r or any(_is_within(f_r, out_r / name) for name in names):
            raise VsrnError(f"{flag} {shown} would replace the input {f}; choose another {flag} or move the "
                            "input first")


@contextlib.contextmanager
def output_lock(target: Path, flag: str = "--out") -> Iterator[None]:
    """Exclusive lock for writing `target`: a hidden lock file beside it, removed afterwards.

    A second writer of the same target is refused at once (exit 2), so two commands never interleave
    their files. The inode check after locking closes the race with a holder that is removing the
    file as it finishes.
    """
    digest = hashlib.sha256(os.fsencode(target)).hexdigest()[:12]
    lock = target.parent / f".{target.name[:40]}.{digest}.vsrn-lock"
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise VsrnError(f"{flag} {target}: cannot create a lock file in {target.parent} "
                            f"({exc.strerror}); choose a folder you can write to") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise VsrnError(f"{flag} {target} is being written by another vsrn-deploy command right now; "
                                "wait for it to finish or choose another " + flag) from None
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the previous holder removed the file between our open and flock: retry
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)


class OutputFolder:
    """A folder a command writes: checked, locked, staged, then committed file by file.

    Usage::

        with OutputFolder(out, kind="export", manifest_name="manifest.json", entries=names,
                          overwrite=overwrite, input_files=[checkpoint]) as folder:
            ... write every entry into folder.staging ...
            folder.commit(names_written)

    On entering, before anything is created: the path checks (`check_out_path`), the overlap check,
    and the ownership decision. An existing folder is written into, never replaced: the commit moves
    each staged FILE to its place, replacing only files the folder's previous marked manifest lists
    (`owned_files`; any same-named file with ``overwrite``). Sub-folders are never replaced or
    removed whole, so anything else a user keeps there (files, folders, symlinks, at any depth) stays.

    Args:
        owned_files: the relative paths an earlier manifest of this kind says the tool wrote
            (default: the keys of its "files"); a folder among them (older manifests) owns the files
            this run writes under it, and nothing is ever removed from it.
        recognise: a manifest without the ownership marker that is still one of this kind's (older
            versions), e.g. the index's {"format": "vsrn-deploy-index"}.
        overwrite_flag: the command's option that lets it replace what is in the way, named in the
            refusals (None: the command has none, e.g. index).
    """

    def __init__(self, target: str | os.PathLike, *, kind: str, manifest_name: str,
                 entries: Iterable[str], overwrite: bool = False, flag: str = "--out",
                 input_dirs: Iterable[str | os.PathLike | None] = (),
                 input_files: Iterable[str | os.PathLike | None] = (),
                 owned_files: Callable[[dict[str, Any]], Iterable[str]] | None = None,
                 recognise: Callable[[dict[str, Any]], bool] | None = None,
                 shared: bool = False, overwrite_flag: str | None = "--overwrite") -> None:
        self.given = target
        self.kind, self.manifest_name, self.flag = kind, manifest_name, flag
        self.entries = _top_level([*entries, manifest_name])
        self.overwrite = overwrite
        # how the command spells "replace what is in the way" (None: it has no such option)
        self._overwrite_flag = overwrite_flag
        self._or_overwrite = f" or pass {overwrite_flag} to replace it" if overwrite_flag else ""
        # shared: a folder that may hold other things (encode's --out); only name clashes matter, and
        # entries of an earlier run that this one does not write stay
        self.shared = shared
        self.target = check_out_path(target, want="folder", flag=flag)
        refuse_overlap(self.target, input_dirs=input_dirs, input_files=input_files, entries=self.entries,
                       flag=flag, shown=target)
        self._owned_files = owned_files or (lambda manifest: list(manifest.get("files") or {}))
        self._recognise = recognise
        self.old_owned: set[str] = set()  # relative paths (files, or whole folders of older manifests)
        self.old_manifest: dict[str, Any] | None = None
        self._inspect()
        self._stack = contextlib.ExitStack()
        self.staging: Path | None = None

    def _inspect(self) -> None:
        target = self.target
        self.old_owned, self.old_manifest = set(), None
        if not target.exists():
            return
        self.old_manifest = read_owned_manifest(target, self.manifest_name, self.kind, self._recognise)
        if self.old_manifest is not None:
            try:
                listed = [_rel(p) for p in self._owned_files(self.old_manifest)]
            except (AttributeError, TypeError):
                listed = []
            self.old_owned = {p for p in listed if p and _safe_rel(p)} | {self.manifest_name}
        present = {p.name for p in target.iterdir()}
        if self.old_manifest is None and present and not self.overwrite and not self.shared:
            raise VsrnError(
                f"{self.flag} {self.given} is a non-empty folder and not a vsrn-deploy {self.kind} (no "
                f"{self.manifest_name} with its marker); choose another {self.flag}"
                + (f", or pass {self._overwrite_flag} to write the {self.kind} into it (only its own files "
                   "are replaced)" if self._overwrite_flag else ""))
        owned_top = set(_top_level(self.old_owned))
        foreign = sorted(n for n in self.entries if n in present and n not in owned_top)
        if foreign and (self.old_manifest is not None or self.shared) and not self.overwrite:
            raise VsrnError(f"{self.flag} {self.given} holds {', '.join(foreign)}, which the earlier "
                            f"{self.kind} did not write; move it away{self._or_overwrite}")

    def _owned(self, rel: str) -> bool:
        parts = rel.split("/")
        return any("/".join(parts[:i]) in self.old_owned for i in range(1, len(parts) + 1))

    def __enter__(self) -> OutputFolder:
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self._stack.enter_context(output_lock(self.target, self.flag))
            # re-inspect under the lock: another command may have finished writing meanwhile
            self._inspect()
            self.staging = self._stack.enter_context(staging_folder(self.target))
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.close()

    def _staged(self, names: list[str]) -> tuple[list[str], list[str]]:
        """(files, folders) staged under the top-level `names`, relative, in walk order."""
        assert self.staging is not None
        files: list[str] = []
        folders: list[str] = []
        for name in names:
            path = self.staging / name
            if path.is_dir() and not path.is_symlink():
                folders.append(name)
                for root, dirs, walked in os.walk(path):
                    dirs.sort()
                    base = Path(root).relative_to(self.staging).as_posix()
                    folders.extend(f"{base}/{d}" for d in dirs if not (Path(root) / d).is_symlink())
                    files.extend(f"{base}/{f}" for f in sorted(walked))
                    files.extend(f"{base}/{d}" for d in dirs if (Path(root) / d).is_symlink())
            elif path.exists() or path.is_symlink():
                files.append(name)
        return files, folders

    def _in_the_way(self, rel: str, *, folder: bool) -> Path | None:
        """The first thing at or above `target/rel` that is not what the commit needs there (a file or
        symlink where a folder goes, a folder where a file goes), or None."""
        parts = rel.split("/")
        for i in range(1, len(parts) + (1 if folder else 0)):
            probe = self.target.joinpath(*parts[:i])
            if probe.is_symlink() or (probe.exists() and not probe.is_dir()):
                return probe
        last = self.target.joinpath(*parts)
        if not folder and last.is_dir() and not last.is_symlink():
            return last
        return None

    def commit(self, written: Iterable[str] | None = None) -> Path:
        """Move the staged files into the target, file by file; the manifest goes last.

        Files the previous marked manifest listed but this run did not write are removed (they were
        vsrn-deploy's); folders are created as needed and never removed or replaced; everything
        else in the target stays. A failure puts every replaced file back.
        """
        assert self.staging is not None, "commit() inside the with block"
        names = [n for n in _top_level(written or self.entries) if n != self.manifest_name]
        names.append(self.manifest_name)
        target = self.target
        if not target.exists():
            try:
                os.rename(self.staging, target)
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    raise VsrnError(f"{self.flag} {self.given} appeared while this command ran (another "
                                    "command wrote it); nothing was changed; run again") from None
                raise
            return target
        files, folders = self._staged(names)
        files = [f for f in files if f != self.manifest_name] + [self.manifest_name]
        # every decision before the first change: a refusal leaves the target as it was
        for rel in [*folders, *files]:
            is_folder = rel in folders
            blocker = self._in_the_way(rel, folder=is_folder)
            if blocker is None:
                continue
            if blocker.is_dir() and not blocker.is_symlink():
                raise VsrnError(f"{self.flag} {self.given}: {blocker} is a folder where the {self.kind} "
                                "writes a file; move it away and run again")
            blocker_rel = blocker.relative_to(target).as_posix()
            if not self.overwrite and not (blocker_rel == rel and self._owned(rel)):
                raise VsrnError(f"{self.flag} {self.given}: {blocker} is in the way of the {self.kind}'s "
                                f"{rel} and the earlier {self.kind} did not write it; move it away"
                                f"{self._or_overwrite}")
        for rel in files:
            dst = target / rel
            if (dst.exists() or dst.is_symlink()) and not self._owned(rel) and not self.overwrite:
                raise VsrnError(f"{self.flag} {self.given} holds {rel}, which the earlier {self.kind} did "
                                f"not write; move it away{self._or_overwrite}")
        new = set(files)
        stale = [] if self.shared else sorted(
            p for p in self.old_owned - new
            if self._in_the_way(p, folder=False) is None  # never through a symlink, never a folder
            and ((target / p).is_symlink() or (target / p).is_file()))
        aside = Path(tempfile.mkdtemp(prefix=f".{target.name[:40]}.", suffix=".old", dir=target.parent))
        undo: list[tuple[str, Path, Path | None]] = []  # ("moved", original, kept) / ("made", path, None)
        try:
            for count, rel in enumerate(stale):
                keep = aside / str(count)
                os.replace(target / rel, keep)
                undo.append(("moved", target / rel, keep))
            for rel in folders:
                dst = target / rel
                if dst.is_symlink() or (dst.exists() and not dst.is_dir()):
                    keep = aside / f"b{len(undo)}"
                    os.replace(dst, keep)
                    undo.append(("moved", dst, keep))
                if not dst.is_dir():
                    dst.mkdir()
                    undo.append(("made", dst, None))
            for rel in files:
                dst = target / rel
                if dst.exists() or dst.is_symlink():
                    keep = aside / f"f{len(undo)}"
                    os.replace(dst, keep)
                    undo.append(("moved", dst, keep))
                os.replace(self.staging / rel, dst)
                undo.append(("placed", dst, None))
        except BaseException:
            for what, path, keep in reversed(undo):
                with contextlib.suppress(OSError):
                    if what == "placed":
                        path.unlink()
                    elif what == "made":
                        path.rmdir()
                    elif keep is not None:
                        os.replace(keep, path)
            shutil.rmtree(aside, ignore_errors=True)
            raise
        shutil.rmtree(aside, ignore_errors=True)
        for rel in stale:  # a folder left empty by removing the tool's own files goes too
            parent = (target / rel).parent
            while parent != target and parent.relative_to(target).as_posix() not in folders:
                try:
                    parent.rmdir()
                except OSError:
                    break
                parent = parent.parent
        return target


def _rel(name: Any) -> str:
    return str(name).replace(os.sep, "/").strip("/")


def _safe_rel(rel: str) -> bool:
    """A manifest's path that stays inside the folder (no absolute path, no `..`)."""
    parts = rel.split("/")
    return not os.path.isabs(rel) and all(p not in ("", ".", "..") for p in parts)


def _top_level(names: Iterable[Any]) -> list[str]:
    """Entries as the folder holds them: `test_vectors/index.txt` is the entry `test_vectors` (a
    folder the tool writes whole), in first-seen order without repeats."""
    return list(dict.fromkeys(str(n).replace(os.sep, "/").split("/")[0] for n in names))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


# --- run folders (train) ---------------------------------------------------------------------

def check_run_folder(out: str | os.PathLike, *, resume: bool, overwrite: bool, flag: str = "--out") -> Path:
    """A run folder holding a trained model needs ``--resume`` or ``--overwrite`` (a model is work).

    Returns the absolute folder. Raises VsrnError before anything is created.
    """
    path = check_out_path(out, want="folder", flag=flag)
    if resume and overwrite:
        raise VsrnError("give --resume or --overwrite, not both")
    trained = [n for n in TRAINED_NAMES if (path / n).exists()]
    if trained and not resume and not overwrite:
        raise VsrnError(f"{flag} {out} already holds a trained model ({', '.join(trained)}); continue "
                        f"it with --resume {out}, write the new run elsewhere, or pass --overwrite to "
                        "replace it")
    return path


@contextlib.contextmanager
def run_folder_guard(out: str | os.PathLike, owned: Iterable[str], *, overwrite: bool = False,
                     keep: Iterable[str] = TRAINED_NAMES) -> Iterator[None]:
    """Leave nothing behind when a run fails before it saved a model.

    Before the block: with `overwrite`, the run files (`owned`) already there are moved aside (put
    back if the new run fails before it saves a model, deleted once it has). After a failure with
    none of `keep` written by this run: every file this run created is removed, and the folder too
    when this run created it and it is empty again. A failure after a model was saved keeps the run
    folder as it is, so ``--resume`` can continue it (Ctrl-C included).
    """
    path = _abs(out)
    created = not path.exists()
    made = _missing_chain(path)
    before = {p.name: p.stat().st_mtime_ns for p in path.iterdir()} if not created else {}
    aside: Path | None = None
    owned = list(owned)
    if overwrite and not created:
        present = [n for n in owned if (path / n).exists()]
        if present:
            aside = Path(tempfile.mkdtemp(prefix=f".{path.name[:40]}.", suffix=".old", dir=path.parent))
            for name in present:
                os.replace(path / name, aside / name)
                before.pop(name, None)
    try:
        yield
    except BaseException:
        saved = any((path / n).exists() and n not in before for n in keep)
        if not saved:
            if path.is_dir():
                for p in path.iterdir():
                    if p.name not in before and (p.name in owned or p.name.startswith(".")):
                        with contextlib.suppress(OSError):
                            _remove(p)
            if aside is not None:
                for p in aside.iterdir():
                    with contextlib.suppress(OSError):
                        os.replace(p, path / p.name)
            if created:
                for folder in made:  # the run folder and the parents this run created, when empty
                    with contextlib.suppress(OSError):
                        folder.rmdir()
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def _missing_chain(path: Path) -> list[Path]:
    """`path` and its ancestors that do not exist yet, deepest first."""
    made: list[Path] = []
    probe = path
    while not probe.exists() and probe.parent != probe:
        made.append(probe)
        probe = probe.parent
    return made


@contextlib.contextmanager
def new_folder_guard(path: str | os.PathLike) -> Iterator[Path]:
    """Create `path` (and missing parents) for the block; on failure remove every folder this
    created that is still empty. Nothing the block did not create is touched."""
    path = _abs(path)
    made = _missing_chain(path)
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    except BaseException:
        for folder in made:  # deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
