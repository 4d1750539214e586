"""The engines folder (`vsrn-deploy build-engine`): TensorRT plans, each with a JSON sidecar.

A serialized TensorRT engine only runs on the TensorRT version and the GPU model it was built for
(TensorRT developer guide, "Engine compatibility"). The sidecar records both, plus what built it
and the plan's sha256, so a stale or changed plan fails with a message saying how to rebuild.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vsrn_deploy.artifacts.base import ABSENT, Manifest, load_manifest
from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.io.files import atomic_write_json

SIDECAR_FORMAT = 1
REQUIRED = ("format_version", "encoder", "precision", "tensorrt_version", "gpu", "profiles", "plan_sha256")
REBUILD = "vsrn-deploy build-engine --onnx-dir {onnx_dir} --out {folder}{fp16}"


@dataclass
class Sidecar(Manifest):
    """`<plan>.json`: the keys `vsrn_deploy.engine.builder` writes (sorted, as written)."""

    format_version: Any = ABSENT
    encoder: Any = ABSENT
    precision: Any = ABSENT
    tensorrt_version: Any = ABSENT
    gpu: Any = ABSENT
    profiles: Any = ABSENT
    plan: Any = ABSENT
    plan_sha256: Any = ABSENT
    onnx_dir: Any = ABSENT
    source_onnx: Any = ABSENT


def sidecar_path(plan_path: str | os.PathLike) -> Path:
    """`engines/image_encoder.fp16.plan` -> `engines/image_encoder.fp16.json`."""
    return Path(plan_path).with_suffix(".json")


def write_sidecar(plan_path: str | os.PathLike, sidecar: dict[str, Any]) -> Path:
    """Write the sidecar of `plan_path` atomically; returns its path."""
    path = sidecar_path(plan_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, sidecar, sort_keys=True)
    return path


def rebuild_hint(plan_path: str | os.PathLike) -> str:
    """The command that rebuilds the plan at `plan_path` on this machine, naming the export folder its
    sidecar records (the folder given to build-engine), else ONNX_DIR."""
    plan_path = Path(plan_path)
    fp16 = " --fp16" if ".fp16." in plan_path.name else ""
    onnx_dir = "ONNX_DIR"
    try:
        recorded = load_manifest(sidecar_path(plan_path), what="a sidecar", fix="").get("onnx_dir")
        onnx_dir = str(recorded) if recorded else onnx_dir
    except VsrnError:
        pass
    return "rebuild it on this machine with: " + REBUILD.format(onnx_dir=onnx_dir, folder=plan_path.parent,
                                                                 fp16=fp16)


def read_sidecar(plan_path: str | os.PathLike) -> dict[str, Any]:
    """Read and sanity-check the sidecar of `plan_path`.

    Raises:
        VsrnError: missing, unreadable or incomplete sidecar (with the rebuild command).
    """
    path = sidecar_path(plan_path)
    if not path.is_file():
        raise VsrnError(f"{plan_path} has no sidecar {path.name}, so its TensorRT version and GPU "
                        f"are unknown; {rebuild_hint(plan_path)}")
    try:
        data = load_manifest(path, what="a vsrn-deploy engine sidecar", fix=rebuild_hint(plan_path))
    except VsrnError as exc:
        if "not readable JSON" in str(exc):
            raise VsrnError(f"{path} is not valid JSON; {rebuild_hint(plan_path)}") from None
        raise
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise VsrnError(f"{path} lacks {missing}; {rebuild_hint(plan_path)}")
    if data["format_version"] != SIDECAR_FORMAT:
        raise VsrnError(f"{path} has sidecar format {data['format_version']}, this vsrn-deploy reads "
                        f"{SIDECAR_FORMAT}; {rebuild_hint(plan_path)}")
    return data
