"""`manifest.json`: what an export folder holds and how it was checked.

Keys: format_version, config (asdict VSRNConfig), source {path, sha256, kind}, files {name: {sha256,
bytes}}, graphs {image_encoder|text_encoder: {fp32, fp16?, int8?, inputs, outputs, dynamic_axes}},
opset, precision, fp32_islands {graph: [node names]}, fp32_island_reasons, int8 (settings, per-weight
decisions, FP32 nodes and why; `vsrn_deploy.export.int8`), parity, versions, trt_lint, created. The
I/O entries and file names come from `vsrn_deploy.contract`. Readers (runners, build-engine,
validate) call `read_manifest` then `verify_files` before trusting a file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vsrn_deploy.contract import MANIFEST_NAME
from vsrn_deploy.errors import VsrnError
from vsrn_deploy.io.files import atomic_write_json, sha256_file

__all__ = ["MANIFEST_NAME", "FORMAT_VERSION", "file_entry", "read_manifest", "verify_files", "write_manifest"]

FORMAT_VERSION = 1


def file_entry(path: str | Path) -> dict[str, Any]:
    """{sha256, bytes} of a file."""
    return {"sha256": sha256_file(path), "bytes": Path(path).stat().st_size}


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """Read `<directory>/manifest.json`.

    Raises:
        VsrnError: missing, unreadable or not a vsrn-deploy manifest.
    """
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        raise VsrnError(
            f"{path} not found: is {directory} an export folder? Run `vsrn-deploy export CKPT "
            f"--out {directory}` first"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VsrnError(f"{path} is not valid JSON ({exc}); re-run the export") from None
    if not isinstance(manifest, dict) or "files" not in manifest or "graphs" not in manifest:
        raise VsrnError(f"{path} is not a vsrn-deploy export manifest; re-run the export")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise VsrnError(
            f"{path} has format_version {manifest.get('format_version')}, newer than this "
            f"vsrn-deploy understands ({FORMAT_VERSION}); upgrade vsrn-deploy"
        )
    return manifest


def verify_files(directory: str | Path, manifest: dict[str, Any]) -> None:
    """Check every file the manifest lists against its sha256.

    Raises:
        VsrnError: naming the first missing or changed file.
    """
    for name, entry in manifest["files"].items():
        path = Path(directory) / name
        if not path.is_file():
            raise VsrnError(f"{path} is missing (listed in {MANIFEST_NAME}); re-run the export")
        if sha256_file(path) != entry["sha256"]:
            raise VsrnError(
                f"{path} changed since export (sha256 differs from {MANIFEST_NAME}); re-run the export"
            )


def write_manifest(directory: str | Path, manifest: dict[str, Any]) -> Path:
    """Write `manifest.json` into `directory` atomically."""
    return atomic_write_json(Path(directory) / MANIFEST_NAME, manifest)
