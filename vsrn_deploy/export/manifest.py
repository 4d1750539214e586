"""`manifest.json`: what an export folder holds and how it was checked.

Keys: format_version, config (asdict VSRNConfig), source {path, sha256, kind}, files {name: {sha256,
bytes}}, graphs {image_encoder|text_encoder: {fp32, fp16?, int8?, inputs, outputs, dynamic_axes}},
opset, precision, fp32_islands {graph: [node names]}, fp32_island_reasons, int8 (settings, per-weight
decisions, FP32 nodes and why; `vsrn_deploy.export.int8`), parity, versions, trt_lint, created. The
I/O entries and file names come from `vsrn_deploy.core.contract`. Readers (runners, build-engine,
validate) call `read_manifest` then `verify_files` before trusting a file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vsrn_deploy.core.contract import MANIFEST_NAME
from vsrn_deploy.io.files import atomic_write_json, sha256_file
from vsrn_deploy.io.inputs import EXPORT_FORMAT_VERSION

__all__ = ["MANIFEST_NAME", "FORMAT_VERSION", "file_entry", "read_manifest", "verify_files", "write_manifest"]

# the newest manifest format this version reads and the one it writes: kept with the reader
FORMAT_VERSION = EXPORT_FORMAT_VERSION


def file_entry(path: str | Path) -> dict[str, Any]:
    """{sha256, bytes} of a file."""
    return {"sha256": sha256_file(path), "bytes": Path(path).stat().st_size}


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """Read `<directory>/manifest.json` (`vsrn_deploy.io.inputs.read_export_manifest`).

    Raises:
        VsrnError: missing, unreadable, not a vsrn-deploy manifest, or newer than this version.
    """
    from vsrn_deploy.io.inputs import read_export_manifest

    return read_export_manifest(directory)


def verify_files(directory: str | Path, manifest: dict[str, Any]) -> None:
    """Check every file the manifest lists against its sha256 (`vsrn_deploy.io.inputs.verify_export`).

    Raises:
        VsrnError: naming the first missing or changed file and the command that rebuilds `directory`.
    """
    from vsrn_deploy.io.inputs import verify_listed_files

    verify_listed_files(directory, manifest)


def write_manifest(directory: str | Path, manifest: dict[str, Any]) -> Path:
    """Write `manifest.json` into `directory` atomically."""
    return atomic_write_json(Path(directory) / MANIFEST_NAME, manifest)
