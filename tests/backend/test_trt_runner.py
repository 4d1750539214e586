"""TensorRT runner: plan lookup and sidecar checks on any machine; real builds where TensorRT runs."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from vsrn_deploy.backend import cuda
from vsrn_deploy.backend.sidecar import SIDECAR_FORMAT
from vsrn_deploy.backend.trt import TrtRunner, plan_path
from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.engine.builder import save_engine


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
    from vsrn_deploy.data.vocab import build_vocab
    from vsrn_deploy.engine.builder import BuildSettings, build_engines
    from vsrn_deploy.engine.profiles import ProfileSpec
    from vsrn_deploy.export import ExportConfig, export_loaded

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


# --- the runner on Polygraphy, against the fake derived from the real bindings ------------------

@pytest.fixture()
def derived_runtime(monkeypatch):
    """Factory: `derived_runtime(major)` installs the derived TensorRT fake and a host-memory stand-in
    for Polygraphy's CUDA wrapper; after the test, no call may have mismatched the real API."""
    from polygraphy.backend.trt import util as pg_trt_util
    from polygraphy.cuda import cuda as pg_cuda
    from trt_behaviour import HostCuda, derived_trt, reset_polygraphy_tensorrt

    made = []

    def install(major: int):
        try:
            trt = derived_trt(major)
        except RuntimeError as exc:  # the set-up step did not run: a broken set-up, not a skip
            pytest.fail(str(exc))
        host = HostCuda()
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        reset_polygraphy_tensorrt()
        monkeypatch.setattr(pg_cuda, "G_CUDA", host)
        monkeypatch.setattr(pg_trt_util, "TRT_LOGGER", None)  # Polygraphy caches a logger per process
        monkeypatch.setattr(cuda, "gpu_info", lambda index=0: cuda.GpuInfo("NVIDIA L4", "8.9"))
        monkeypatch.setattr(cuda, "select_device", lambda index=0: None)
        made.append(trt)
        return trt, host

    yield install
    reset_polygraphy_tensorrt()
    for trt in made:
        assert trt.violations == [], (
            f"calls the real TensorRT {trt.__version__} API rejects: {trt.violations}")


def _fake_plan(tmp_path, trt, encoder, spec):
    from trt_behaviour import plan_bytes

    path = tmp_path / f"{encoder}_encoder.fp16.plan"
    save_engine(plan_bytes(trt.__version__, spec), path, {
        "format_version": SIDECAR_FORMAT, "encoder": encoder, "precision": "fp16",
        "tensorrt_version": trt.__version__, "profiles": [],
        "gpu": {"name": "NVIDIA L4", "compute_capability": "8.9"}})
    return path


@pytest.mark.trt_api
@pytest.mark.parametrize("major", [10, 11])
def test_runner_runs_a_plan_through_polygraphy(derived_runtime, tmp_path, major):
    from trt_behaviour import engine_spec

    trt, host = derived_runtime(major)
    plan = _fake_plan(tmp_path, trt, "image", engine_spec("image", regions=3, feature_dim=8, embed_dim=4))
    feed = {"region_features": np.arange(2 * 3 * 8, dtype=np.float32).reshape(2, 3, 8)}
    with TrtRunner("image", plan) as runner:
        out = runner.infer(feed)
        out_again = runner.infer({"region_features": feed["region_features"][:1] + 1})
    flat = feed["region_features"].reshape(2, -1)
    np.testing.assert_array_equal(out["image_embedding"], flat[:, :4])  # what the fake engine wrote
    np.testing.assert_array_equal(out["region_embeddings"], flat[:, :12].reshape(2, 3, 4))
    np.testing.assert_array_equal(out_again["image_embedding"], flat[:1, :4] + 1)
    assert host.live == {} and host.streams == set()  # Polygraphy freed its buffers and stream
    used = trt.used()
    for name in ("Runtime.deserialize_cuda_engine", "ICudaEngine.create_execution_context",
                 "IExecutionContext.set_input_shape", "IExecutionContext.set_tensor_address",
                 "IExecutionContext.set_output_allocator", "IExecutionContext.execute_async_v3"):
        assert name in used


@pytest.mark.trt_api
@pytest.mark.parametrize("major", [10, 11])
def test_runner_picks_the_profile_that_fits(derived_runtime, tmp_path, major):
    from trt_behaviour import engine_spec

    trt, _ = derived_runtime(major)
    profiles = [{"token_ids": [[1, 2], [2, 8], [4, 16]], "lengths": [[1], [2], [4]]},
                {"token_ids": [[5, 2], [16, 16], [32, 32]], "lengths": [[5], [16], [32]]}]
    plan = _fake_plan(tmp_path, trt, "text", engine_spec("text", embed_dim=2, profiles=profiles))
    ids = np.ones((8, 5), dtype=np.int64)
    with TrtRunner("text", plan) as runner:
        out = runner.infer({"token_ids": ids, "lengths": np.full(8, 5, dtype=np.int64)})
        with pytest.raises(VsrnError, match="outside every optimisation profile"):
            runner.infer({"token_ids": np.ones((64, 5), np.int64), "lengths": np.full(64, 5, np.int64)})
    assert out["text_embedding"].shape == (8, 2) and out["text_embedding"].dtype == np.float32
    profile_calls = [c.args[0] for c in trt.calls if c.member == "set_optimization_profile_async"]
    assert profile_calls == [1]
