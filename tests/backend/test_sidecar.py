"""Plan sidecars: written atomically with the plan, refused on TensorRT / GPU / content mismatch."""

from __future__ import annotations

import json

import pytest

from vsrn_deploy.backend.sidecar import SIDECAR_FORMAT, check_sidecar, read_sidecar, sidecar_path
from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.engine.builder import save_engine

GPU = {"name": "NVIDIA L4", "compute_capability": "8.9"}


@pytest.fixture()
def plan(tmp_path):
    path = tmp_path / "engines" / "image_encoder.fp16.plan"
    save_engine(b"plan-bytes", path, {"format_version": SIDECAR_FORMAT, "encoder": "image",
                                      "precision": "fp16", "tensorrt_version": "10.13.0", "gpu": GPU,
                                      "profiles": [{"batch": [1, 32, 128]}]})
    return path


def test_save_engine_writes_plan_and_sidecar_without_temp_files(plan):
    side = read_sidecar(plan)
    assert plan.read_bytes() == b"plan-bytes"
    assert side["plan"] == plan.name and side["plan_bytes"] == len(b"plan-bytes")
    names = sorted(p.name for p in plan.parent.iterdir())
    assert names == ["image_encoder.fp16.json", "image_encoder.fp16.plan"]
    check_sidecar(plan, side, tensorrt_version="10.13.0", gpu=GPU)  # the same machine: accepted


@pytest.mark.parametrize("trt_version,gpu,what", [
    ("10.14.1", GPU, "built with TensorRT 10.13.0, running 10.14.1"),
    ("10.13.0", {"name": "NVIDIA H100", "compute_capability": "9.0"}, "compute capability 8.9"),
    ("10.13.0", {"name": "NVIDIA L40S", "compute_capability": "8.9"}, "built on NVIDIA L4"),
])
def test_mismatch_is_refused_with_the_rebuild_command(plan, trt_version, gpu, what):
    with pytest.raises(VsrnError, match="refusing") as err:
        check_sidecar(plan, read_sidecar(plan), tensorrt_version=trt_version, gpu=gpu)
    assert what in str(err.value)
    assert "vsrn-deploy build-engine" in str(err.value) and "--fp16" in str(err.value)


def test_changed_plan_is_refused(plan):
    plan.write_bytes(b"plan-bytes-truncat")
    with pytest.raises(VsrnError, match="sha256"):
        check_sidecar(plan, read_sidecar(plan), tensorrt_version="10.13.0", gpu=GPU)


def test_missing_or_bad_sidecar(plan):
    side = sidecar_path(plan)
    side.write_text("{")
    with pytest.raises(VsrnError, match="not valid JSON"):
        read_sidecar(plan)
    side.write_text(json.dumps({"format_version": SIDECAR_FORMAT}))
    with pytest.raises(VsrnError, match="lacks"):
        read_sidecar(plan)
    side.unlink()
    with pytest.raises(VsrnError, match="no sidecar"):
        read_sidecar(plan)
