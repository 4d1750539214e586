"""TensorRT runner: plan lookup and sidecar checks on any machine; real builds where TensorRT runs."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from vsrn_deploy.backend import cuda
from vsrn_deploy.backend.sidecar import SIDECAR_FORMAT
from vsrn_deploy.backend.trt import TrtRunner, plan_path
from vsrn_deploy.engine.builder import save_engine
from vsrn_deploy.errors import VsrnError


def _plan(tmp_path, precision="fp16", version="10.13.0"):
    path = tmp_path / f"image_encoder.{precision}.plan"
    save_engine(b"x", path, {"format_version": SIDECAR_FORMAT, "encoder": "image", "precision": precision,
                             "tensorrt_version": version, "profiles": [],
                             "gpu": {"name": "NVIDIA L4", "compute_capability": "8.9"}})
    return path


def test_plan_path_prefers_fp16(tmp_path):
    _plan(tmp_path, "fp32")
    assert plan_path(tmp_path, "image").name == "image_encoder.fp32.plan"
    _plan(tmp_path, "fp16")
    assert plan_path(tmp_path, "image").name == "image_encoder.fp16.plan"
    assert plan_path(tmp_path, "image", "fp32").name == "image_encoder.fp32.plan"
    with pytest.raises(VsrnError, match="build-engine"):
        plan_path(tmp_path, "text")


def test_runner_refuses_a_plan_from_another_tensorrt(tmp_path, monkeypatch):
    fake = types.ModuleType("tensorrt")
    fake.__version__ = "10.14.1"
    fake.Runtime = lambda logger: pytest.fail("must not deserialise a mismatched plan")
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(cuda, "gpu_info", lambda index=0: cuda.GpuInfo("NVIDIA L4", "8.9"))
    with pytest.raises(VsrnError, match="10.13.0, running 10.14.1.*build-engine"):
        TrtRunner("image", _plan(tmp_path)).activate()


def test_runner_refuses_the_wrong_encoder(tmp_path):
    with pytest.raises(VsrnError, match="holds the image encoder"):
        TrtRunner("text", _plan(tmp_path)).activate()


def test_runner_without_tensorrt_names_the_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(VsrnError, match=r"vsrn-deploy\[trt\]"):
        TrtRunner("image", _plan(tmp_path)).activate()


def _tensorrt_or_skip():
    try:
        import tensorrt  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"tensorrt cannot import here ({exc}); runs on a GPU machine with TensorRT")
    try:
        cuda.gpu_info()
    except VsrnError as exc:
        pytest.skip(f"no usable GPU: {exc}")


@pytest.mark.trt
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_real_build_and_run_matches_ort(tiny_model, tmp_path, image_feed, text_feed, precision):
    _tensorrt_or_skip()
    from vsrn_deploy.backend.registry import make_runner
    from vsrn_deploy.engine.builder import BuildSettings, build_engines
    from vsrn_deploy.engine.profiles import ProfileSpec
    from vsrn_deploy.export import ExportConfig, export_loaded
    from vsrn_deploy.vocab import build_vocab

    vocab = build_vocab([f"w{i}" for i in range(tiny_model.config.vocab_size - 4)], threshold=1)
    export = tmp_path / "export"
    export_loaded(tiny_model, vocab, export, ExportConfig(precision="all", max_batch=4))
    settings = BuildSettings(precision=precision, profiles=(ProfileSpec((1, 4, 8), (2, 12, 32)),))
    build_engines(export, tmp_path / "engines", settings)
    for encoder, feed in (("image", image_feed), ("text", text_feed)):
        with make_runner("ort", encoder, onnx_dir=export) as ref, \
                make_runner("trt", encoder, engine_dir=tmp_path / "engines", device="cuda",
                            dtype=precision) as trt:
            a, b = ref.infer(feed), trt.infer(feed)
        for name in a:
            tol = 1e-4 if precision == "fp32" else 2e-2
            np.testing.assert_allclose(b[name], a[name], atol=tol, rtol=0)
