"""`manifest.json` of an export: declared in `vsrn_deploy.artifacts.export` (keys, the dataclass,
reading, verifying); these names stay for the exporter and the tests that import them from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vsrn_deploy.artifacts.base import file_entry
from vsrn_deploy.artifacts.export import (
    FORMAT_VERSION,
    ExportManifest,
    read_export_manifest,
    verify_listed_files,
)
from vsrn_deploy.core.contract import MANIFEST_NAME
from vsrn_deploy.io.files import atomic_write_json, sha256_file

__all__ = ["MANIFEST_NAME", "FORMAT_VERSION", "ExportManifest", "file_entry", "read_manifest", "sha256_file",
           "verify_files", "write_manifest"]


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """`vsrn_deploy.artifacts.export.read_export_manifest`."""
    return read_export_manifest(directory)


def verify_files(directory: str | Path, manifest: dict[str, Any]) -> None:
    """Every file the manifest lists has its sha256 (`vsrn_deploy.artifacts.export.verify_listed_files`)."""
    verify_listed_files(directory, manifest)


def write_manifest(directory: str | Path, manifest: dict[str, Any]) -> Path:
    """Write `manifest.json` into `directory` atomically (through `ExportManifest`: the declared keys)."""
    return atomic_write_json(Path(directory) / MANIFEST_NAME, ExportManifest.from_dict(manifest).to_dict())
