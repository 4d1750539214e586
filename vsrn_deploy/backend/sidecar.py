"""The JSON sidecar written beside each TensorRT plan, and the check made before loading one.

A serialized TensorRT engine only runs on the TensorRT version and the GPU model it was built for
(TensorRT developer guide, "Engine compatibility"). The sidecar records both, plus what built it,
so a stale plan fails with a message saying how to rebuild instead of an opaque deserialisation
error. The sidecar itself (its keys, reading, writing, the rebuild command) is declared in
`vsrn_deploy.artifacts.engines`; this module holds the check against the running TensorRT and GPU.
No torch, no tensorrt at module level.
"""

from __future__ import annotations

import os
from typing import Any

from vsrn_deploy.artifacts.engines import (
    SIDECAR_FORMAT,
    read_sidecar,
    rebuild_hint,
    sidecar_path,
    write_sidecar,
)
from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.io.files import sha256_file

__all__ = ["SIDECAR_FORMAT", "check_sidecar", "read_sidecar", "rebuild_hint", "sidecar_path", "write_sidecar"]


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
