"""The Triton model repository (`vsrn-deploy triton-repo --out REPO`): vsrn_repo.json marks it.

vsrn_repo.json keys: format_version, written_by, backend, precision, max_batch_size, export {dir,
manifest_sha256}, models {model: {source, sha256}}, tokenizer {max_tokens, pad_to_multiple},
tensorrt_version, created, files {relative path: {sha256, bytes}} (every file the repository
holds; repositories written before it lists nothing, and the files of their model folders that this
run writes are taken as the tool's, no others).

`verify_repository` is the reader's check (`vsrn-deploy serve` runs it before it starts a server):
each listed file's size and sha256.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from vsrn_deploy.artifacts.base import ABSENT, Kind, Manifest, check_sizes, verify_files
from vsrn_deploy.artifacts.outputs import parse_manifest
from vsrn_deploy.core.contract import CAPTION_ENCODER, TOKENIZER
from vsrn_deploy.core.errors import VsrnError

MARKER_NAME = "vsrn_repo.json"
REPO_KIND = "triton repository"
FORMAT_VERSION = 1


def owned_files(marker_data: dict[str, Any]) -> list[str]:
    """What an earlier repository's marker says this command wrote: its "files", or (older markers)
    its model folders as whole entries, whose files only this run's same-named ones replace."""
    files = marker_data.get("files")
    if isinstance(files, dict) and files:
        return list(files)
    ensemble = [TOKENIZER, CAPTION_ENCODER] if "tokenizer" in marker_data else []
    return [*(marker_data.get("models") or {}), *ensemble, "README.md"]


KIND = Kind(REPO_KIND, MARKER_NAME, "vsrn-deploy triton-repo --onnx-dir EXPORT --out {folder}",
            owned_files=owned_files)


@dataclass
class RepoMarker(Manifest):
    """vsrn_repo.json, one field per key (see the module docstring)."""

    format_version: Any = ABSENT
    written_by: Any = ABSENT
    backend: Any = ABSENT
    precision: Any = ABSENT
    max_batch_size: Any = ABSENT
    export: Any = ABSENT
    models: Any = ABSENT
    tokenizer: Any = ABSENT
    tensorrt_version: Any = ABSENT
    created: Any = ABSENT
    files: Any = ABSENT


def verify_repository(repo: str | os.PathLike) -> dict[str, Any] | None:
    """Check a repository `triton-repo` wrote before it is served: every file vsrn_repo.json lists
    ("files") has its recorded size and sha256. Returns the marker, or None for a folder without
    vsrn_repo.json (a repository written by hand for Triton: served as it is, unchecked).

    Why this is affordable at every start: the files are hashed once, before the server opens them
    (Triton reads every graph whole anyway, and loading takes seconds); sha256 of a 200 MB file,
    about a paper-size repository's graphs, took 0.14-0.22 s here (2 shared cores, warm page cache:
    `sha256_file` over 200 MB of random bytes, three runs).

    Raises:
        VsrnError: an unreadable vsrn_repo.json, a listed path outside the repository, or a listed
            file missing or changed (size or sha256), naming the file and the command that rewrites
            the repository.
    """
    folder = Path(repo)
    path = folder / MARKER_NAME
    if not path.exists() and not path.is_symlink():
        return None
    try:
        data = parse_manifest(path)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise VsrnError(f"{path} is unreadable ({type(exc).__name__}); write the repository again: "
                        f"{KIND.rebuild_command(folder)}") from None
    if not isinstance(data, dict):
        raise VsrnError(f"{path} is not a repository marker (not a JSON object); write the repository "
                        f"again: {KIND.rebuild_command(folder)}")
    export = data.get("export") if isinstance(data.get("export"), dict) else {}
    rebuild = KIND.rebuild_command(folder)
    if isinstance(export.get("dir"), str) and export["dir"]:
        rebuild = rebuild.replace("EXPORT", export["dir"], 1)
    fix = (f"write the repository again: {rebuild} (or, to serve it with your own edits, remove "
           f"{MARKER_NAME}: a repository without it is served as it is, unchecked)")
    files = data.get("files")
    if files is None:
        return data  # written before vsrn_repo.json listed its files: nothing recorded to check
    if not isinstance(files, dict):
        raise VsrnError(f"{path} lists its files in an unknown form; {fix}")
    for name in files:
        rel = PurePosixPath(str(name))
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise VsrnError(f"{path} lists {name!r}, a path outside the repository; {fix}")
    check_sizes(folder, files, manifest_name=MARKER_NAME, fix=fix, since="triton-repo wrote it")
    verify_files(folder, files, manifest_name=MARKER_NAME, since="triton-repo wrote it", fix=fix)
    return data
