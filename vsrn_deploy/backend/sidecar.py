"""The JSON sidecar written beside each TensorRT plan, and the check made before loading one.

A serialized TensorRT engine only runs on the TensorRT version and the GPU model it was built for
(TensorRT developer guide, "Engine compatibility"). The sidecar records both, plus what built it,
so a stale plan fails with a message saying how to rebuild instead of an opaque deserialisation
error. No torch, no tensorrt at module level.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.io.files import atomic_write_json, sha256_file

SIDECAR_FORMAT = 1
_REQUIRED = ("format_version", "encoder", "precision", "tensorrt_version", "gpu", "profiles",
             "plan_sha256")


def sidecar_path(plan_path: str | os.PathLike) -> Path:
    """`engines/image_encoder.fp16.plan` -> `engines/image_encoder.fp16.json`."""
    return Path(plan_path).with_suffix(".json")


def write_sidecar(plan_path: str | os.PathLike, sidecar: dict[str, Any]) -> Path:
    """Write the sidecar of `plan_path` atomically; returns its path."""
    path = sidecar_path(plan_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, sidecar, sort_keys=True)
    return path


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
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise VsrnError(f"{path} is not valid JSON ({exc}); {rebuild_hint(plan_path)}") from None
    if not isinstance(data, dict):
        raise VsrnError(f"{path} is not a vsrn-deploy engine sidecar; {rebuild_hint(plan_path)}")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise VsrnError(f"{path} lacks {missing}; {rebuild_hint(plan_path)}")
    if data["format_version"] != SIDECAR_FORMAT:
        raise VsrnError(f"{path} has sidecar format {data['format_version']}, this vsrn-deploy reads "
                        f"{SIDECAR_FORMAT}; {rebuild_hint(plan_path)}")
    return data


def rebuild_hint(plan_path: str | os.PathLike) -> str:
    """The command that rebuilds the plan at `plan_path` on this machine, naming the export folder its
    sidecar records (the folder given to build-engine), else ONNX_DIR."""
    plan_path = Path(plan_path)
    fp16 = " --fp16" if ".fp16." in plan_path.name else ""
    onnx_dir = "ONNX_DIR"
    try:
        recorded = json.loads(sidecar_path(plan_path).read_text(encoding="utf-8")).get("onnx_dir")
        onnx_dir = str(recorded) if recorded else onnx_dir
    except (OSError, ValueError, AttributeError, RecursionError):
        pass
    return (f"rebuild it on this machine with: vsrn-deploy build-engine --onnx-dir {onnx_dir} "
            f"--out {plan_path.parent}{fp16}")


def check_sidecar(plan_path: str | os.PathLike, sidecar: dict[str, Any], *, tensorrt_version: str,
                  gpu: dict[str, Any], check_hash: bool = True) -> None:
    """Refuse a plan built for another TensorRT version or GPU, or changed since it was built.

    Args:
        plan_path: the .plan file.
        sidecar: its sidecar (`read_sidecar`).
        tensorrt_version: `tensorrt.__version__` of the running process.
        gpu: {"name", "compute_capability"} of the GPU it will run on.
        check_hash: also compare the plan's sha256 with the sidecar's.

    Raises:
        VsrnError: naming what differs and how to rebuild.
    """
    problems = []
    if str(sidecar["tensorrt_version"]) != str(tensorrt_version):
        problems.append(f"built with TensorRT {sidecar['tensorrt_version']}, running {tensorrt_version}")
    built = sidecar.get("gpu") or {}
    if str(built.get("compute_capability")) != str(gpu.get("compute_capability")):
        problems.append(f"built for compute capability {built.get('compute_capability')} "
                        f"({built.get('name')}), this GPU is {gpu.get('compute_capability')} "
                        f"({gpu.get('name')})")
    elif str(built.get("name")) != str(gpu.get("name")):
        problems.append(f"built on {built.get('name')}, this GPU is {gpu.get('name')} "
                        "(tactics are tuned per GPU model)")
    if check_hash and not problems:
        actual = sha256_file(plan_path)
        if actual != sidecar["plan_sha256"]:
            problems.append(f"the plan's sha256 {actual[:12]}... differs from the sidecar's "
                            f"{str(sidecar['plan_sha256'])[:12]}... (changed or truncated)")
    if problems:
        raise VsrnError(f"refusing {plan_path}: " + "; ".join(problems) + f"; {rebuild_hint(plan_path)}")
