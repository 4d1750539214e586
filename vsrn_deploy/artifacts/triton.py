"""The Triton model repository (`vsrn-deploy triton-repo --out REPO`): vsrn_repo.json marks it.

vsrn_repo.json keys: format_version, written_by, backend, precision, max_batch_size, export {dir,
manifest_sha256}, models {model: {source, sha256}}, tokenizer {max_tokens, pad_to_multiple},
tensorrt_version, created, files {relative path: {sha256, bytes}} (every file the repository
holds; repositories written before it lists nothing, and the files of their model folders that this
run writes are taken as the tool's, no others).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vsrn_deploy.artifacts.base import ABSENT, Kind, Manifest

MARKER_NAME = "vsrn_repo.json"
REPO_KIND = "triton repository"
FORMAT_VERSION = 1
TOKENIZER = "tokenizer"
CAPTION_ENCODER = "caption_encoder"


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
