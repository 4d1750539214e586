"""`vsrn-deploy build-engine`: user errors exit 2 with one clear line and no traceback."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
from fake_tensorrt import write_manifest
from typer.testing import CliRunner

from vsrn_deploy.cli.app import app


def test_without_tensorrt_exits_2_with_the_install_command(monkeypatch, export_dir):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    write_manifest(export_dir, ["image_encoder.onnx", "text_encoder.onnx"])
    res = CliRunner().invoke(app, ["build-engine", "--fp16", "--onnx-dir", str(export_dir)])
    assert res.exit_code == 2
    assert "pip install 'vsrn-deploy[trt]'" in res.output and "NVIDIA GPU" in res.output
    assert "Traceback" not in res.output


def test_a_wrong_onnx_dir_is_named_before_the_missing_tensorrt(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    res = CliRunner().invoke(app, ["build-engine", "--onnx-dir", str(tmp_path / "nowhere")])
    assert res.exit_code == 2
    assert "manifest.json not found" in res.output and "vsrn-deploy export" in res.output
    assert "TensorRT is not installed" not in res.output and "Traceback" not in res.output


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt is installed here")
def test_console_command_on_a_machine_without_tensorrt(export_dir):
    write_manifest(export_dir, ["image_encoder.onnx", "text_encoder.onnx"])
    res = subprocess.run([sys.executable, "-m", "vsrn_deploy", "build-engine", "--fp16"],
                         cwd=export_dir.parent, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert res.stderr.startswith("error: TensorRT is not installed") and "Traceback" not in res.stderr


def test_bad_profile_exits_2(fake_trt, tmp_path):
    fake_trt(10)
    res = CliRunner().invoke(app, ["build-engine", "--profile", "8,1,32"])
    assert res.exit_code == 2 and "min <= opt <= max" in res.output
    res = CliRunner().invoke(app, ["build-engine", "--opt-level", "9"])
    assert res.exit_code == 2 and "opt-level" in res.output


def test_changed_onnx_exits_2(fake_trt, monkeypatch, export_dir, tmp_path):
    from vsrn_deploy.backend import cuda

    fake_trt(10)
    monkeypatch.setattr(cuda, "gpu_info", lambda index=0: cuda.GpuInfo("NVIDIA Fake", "8.9"))
    write_manifest(export_dir, ["image_encoder.onnx", "text_encoder.onnx"])
    (export_dir / "text_encoder.onnx").write_bytes(b"changed")
    args = ["build-engine", "--onnx-dir", str(export_dir), "--out", str(tmp_path / "e")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and "text_encoder.onnx changed since export" in res.output


def test_profiles_reach_the_builder(fake_trt, monkeypatch, export_dir, tmp_path):
    from vsrn_deploy.backend import cuda

    trt = fake_trt(10)
    monkeypatch.setattr(cuda, "gpu_info", lambda index=0: cuda.GpuInfo("NVIDIA Fake", "8.9"))
    write_manifest(export_dir, ["image_encoder.onnx", "text_encoder.onnx"])
    res = CliRunner().invoke(app, ["build-engine", "--onnx-dir", str(export_dir), "--out",
                                   str(tmp_path / "e"), "--profile", "1,1,1", "--profile", "4,16,64:2,20,40",
                                   "--encoder", "text",
                                   "--skip-precision-check", "--workspace", "256"])
    assert res.exit_code == 0, res.output
    assert [p._state["_shapes"]["token_ids"] for p in trt.made["profiles"]] == [
        ((1, 2), (1, 16), (1, 64)), ((4, 2), (16, 20), (64, 40))]
    assert [c.args for c in trt.calls if c.member == "set_memory_pool_limit"] == [
        (trt.MemoryPoolType.WORKSPACE, 256 << 20)]
    assert (tmp_path / "e" / "text_encoder.fp32.plan").is_file()
    assert not (tmp_path / "e" / "image_encoder.fp32.plan").exists()
