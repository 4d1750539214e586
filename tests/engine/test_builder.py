"""Engine builder: TensorRT 10 vs 11 routing (on the fake derived from the real bindings), precision
inspection, error order."""

from __future__ import annotations

import json
import sys
import types

import pytest
from fake_tensorrt import write_manifest

from vsrn_deploy.core.errors import CheckFailed, VsrnError
from vsrn_deploy.engine import builder as B
from vsrn_deploy.engine.profiles import ProfileSpec


def _flags(trt, method="set_flag"):
    return {c.args[0].name for c in trt.calls if c.cls == "IBuilderConfig" and c.member == method}


def _network_flags(trt):
    return [c.args[0] if c.args else c.kwargs.get("flags", 0)
            for c in trt.calls if c.member == "create_network"]


def test_trt10_fp16_sets_the_flag_and_pins_islands(fake_trt, export_dir, tmp_path):
    trt = fake_trt(10)
    cache = tmp_path / "timing.cache"
    settings = B.BuildSettings(precision="fp16", fp32_islands=("/norm/ReduceSum",), workspace_mib=512,
                               opt_level=4, timing_cache=str(cache))
    data = B.engine_bytes_from_onnx(export_dir / "image_encoder.onnx", settings)
    assert data == b"PLAN" + trt.__version__.encode()
    assert _network_flags(trt) == [0]  # weakly typed, so the FP16 flag applies
    assert _flags(trt) == {"FP16", "OBEY_PRECISION_CONSTRAINTS"}
    layers = {layer.name: layer for layer in trt.made["networks"][-1]._state["_layers"]}
    assert layers["/norm/ReduceSum"]._state["precision"] == trt.float32
    assert "precision" not in layers["/fc/MatMul"]._state
    typed = [(c.args[0], c.args[1]) for c in trt.calls if c.member == "set_output_type"]
    assert typed == [(0, trt.float32)]  # one output of the one pinned layer
    cfg = trt.made["configs"][-1]
    pools = [c.args for c in trt.calls if c.member == "set_memory_pool_limit"]
    assert pools == [(trt.MemoryPoolType.WORKSPACE, 512 << 20)]
    assert cfg._state["builder_optimization_level"] == 4
    assert cfg._state["profiling_verbosity"] == trt.ProfilingVerbosity.DETAILED
    assert trt.made["profiles"][0]._state["_shapes"] == {
        "region_features": ((1, 6, 24), (32, 6, 24), (128, 6, 24))}
    assert cache.read_bytes() == b"cache:"  # saved after the build


def test_trt10_pins_layers_by_output_tensor_name(fake_trt, export_dir):
    trt = fake_trt(10)
    net = trt.Builder(trt.Logger(trt.Logger.WARNING)).create_network(0)
    trt.OnnxParser(net, trt.Logger()).parse_from_file(str(export_dir / "text_encoder.onnx"))
    layers = net._state["_layers"]
    for i, layer in enumerate(layers):  # the parser may name layers unlike their nodes; outputs keep names
        layer._state["name"] = f"(Unnamed Layer* {i})"
    assert B.pin_fp32_islands(trt, net, ("/norm/Div",), export_dir / "text_encoder.onnx") == 1
    assert [layer._state.get("precision") for layer in layers] == [None, trt.float32]


def test_trt11_builds_strongly_typed_without_precision_flags(fake_trt, export_dir):
    trt = fake_trt(11)
    settings = B.BuildSettings(precision="fp16", fp32_islands=("/norm/ReduceSum",))
    data = B.engine_bytes_from_onnx(export_dir / "image_encoder.fp16.onnx", settings)
    assert data == b"PLAN" + trt.__version__.encode()
    assert _flags(trt) == set()  # 11.x's BuilderFlag has no FP16 / OBEY_PRECISION_CONSTRAINTS
    assert _network_flags(trt) == [1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)]
    assert not any(c.cls == "ILayer" and c.kind == "set" for c in trt.calls)
    assert not any(c.member == "set_output_type" for c in trt.calls)
    parsed = [c.args[0] for c in trt.calls if c.member == "parse_from_file"]
    assert parsed[0].endswith("image_encoder.fp16.onnx")


def test_fp32_build_clears_tf32(fake_trt, export_dir):
    for major in (10, 11):
        trt = fake_trt(major)
        B.engine_bytes_from_onnx(export_dir / "image_encoder.onnx", B.BuildSettings(precision="fp32"))
        assert _flags(trt) == set() and _flags(trt, "clear_flag") == {"TF32"}


def test_text_profiles_cover_batch_and_tokens(fake_trt, export_dir):
    trt = fake_trt(10)
    profiles = (ProfileSpec((1, 1, 1), (2, 8, 16)), ProfileSpec((8, 64, 256), (2, 16, 32)))
    B.engine_bytes_from_onnx(export_dir / "text_encoder.onnx",
                             B.BuildSettings(precision="fp32", profiles=profiles))
    shapes = [p._state["_shapes"] for p in trt.made["profiles"]]
    assert shapes[0] == {"token_ids": ((1, 2), (1, 8), (1, 16)), "lengths": ((1,), (1,), (1,))}
    assert shapes[1]["token_ids"] == ((8, 2), (64, 16), (256, 32))
    assert [c.args[0] for c in trt.calls if c.member == "add_optimization_profile"] == trt.made["profiles"]


def test_timing_cache_is_loaded_when_present(fake_trt, export_dir, tmp_path):
    trt = fake_trt(11)
    cache = tmp_path / "t.cache"
    cache.write_bytes(b"old")
    B.engine_bytes_from_onnx(export_dir / "image_encoder.onnx",
                             B.BuildSettings(precision="fp32", timing_cache=str(cache)))
    assert trt.made["configs"][-1]._state["_cache"]._state["_data"] == b"old"
    assert cache.read_bytes() == b"cache:old"


def test_old_tensorrt_and_failed_build_are_clear_errors(fake_trt, monkeypatch, export_dir):
    old = types.ModuleType("tensorrt")
    old.__version__ = "8.6.1"  # no 8.x bindings here; the version check comes before any call
    monkeypatch.setitem(sys.modules, "tensorrt", old)
    with pytest.raises(VsrnError, match="TensorRT 10 or newer"):
        B.engine_bytes_from_onnx(export_dir / "image_encoder.onnx", B.BuildSettings())
    trt = fake_trt(10)
    trt.fail_build = True
    with pytest.raises(VsrnError, match="--verbose"):
        B.engine_bytes_from_onnx(export_dir / "image_encoder.onnx", B.BuildSettings())


def test_settings_validation():
    with pytest.raises(VsrnError, match="opt-level"):
        B.BuildSettings(opt_level=7)
    with pytest.raises(VsrnError, match="workspace"):
        B.BuildSettings(workspace_mib=0)
    with pytest.raises(VsrnError, match="precision"):
        B.BuildSettings(precision="int8")


# --- inspection -------------------------------------------------------------------------------

TRT10_JSON = {"Layers": [
    {"Name": "gemm", "LayerType": "CaskGemm", "Inputs": [{"Format/Datatype": "Row major linear FP16 format"}],
     "Outputs": [{"Format/Datatype": "Row major linear FP16 format"}]},
    {"Name": "norm", "LayerType": "Reduce", "Inputs": [{"Format/Datatype": "Row major linear FP32 format"}],
     "Outputs": [{"Format/Datatype": "Float"}]},
], "Bindings": ["region_features", "image_embedding"]}
TRT11_FP32_JSON = {"Layers": [
    {"Name": "gemm_half_named", "LayerType": "CaskGemm", "Inputs": [{"Format/Datatype": "Float"}],
     "Outputs": [{"Format/Datatype": "Float"}]}],
    "I/O Tensors": [{"Name": "region_features", "DataType": "Float"}]}


def test_precision_summary_reads_both_json_generations():
    s10 = B.layer_precision_summary(TRT10_JSON)
    assert (s10["fp16_layers"], s10["fp32_layers"], s10["layers"]) == (1, 1, 2)
    s11 = B.layer_precision_summary(TRT11_FP32_JSON)
    assert (s11["fp16_layers"], s11["fp32_layers"]) == (0, 1)  # a name mentioning "half" is ignored
    names_only = B.layer_precision_summary({"Layers": ["a", "b"]})
    assert names_only["other_layers"] == 2


def test_check_precision_catches_silent_fp32_and_stray_fp16():
    B.check_precision(B.layer_precision_summary(TRT10_JSON), "fp16", "image_encoder")
    with pytest.raises(CheckFailed, match="no FP16 layer"):
        B.check_precision(B.layer_precision_summary(TRT11_FP32_JSON), "fp16", "image_encoder")
    with pytest.raises(CheckFailed, match="run FP16"):
        B.check_precision(B.layer_precision_summary(TRT10_JSON), "fp32", "image_encoder")


# --- build_engines: order of checks and the files it writes -------------------------------------

def _gpu(monkeypatch):
    from vsrn_deploy.backend import cuda

    monkeypatch.setattr(cuda, "gpu_info", lambda index=0: cuda.GpuInfo("NVIDIA Fake", "8.9"))


def test_a_missing_or_changed_export_is_named_before_a_missing_tensorrt(monkeypatch, export_dir, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import raises ImportError
    with pytest.raises(VsrnError, match="manifest.json not found") as missing:
        B.build_engines(tmp_path / "nowhere", tmp_path / "engines", B.BuildSettings())
    assert "TensorRT" not in str(missing.value)
    write_manifest(export_dir, ["image_encoder.onnx", "text_encoder.onnx"])
    (export_dir / "text_encoder.onnx").write_bytes(b"changed")
    with pytest.raises(VsrnError, match="text_encoder.onnx changed since export"):
        B.build_engines(export_dir, tmp_path / "engines", B.BuildSettings())
    write_manifest(export_dir, ["image_encoder.onnx", "text_encoder.onnx"])  # a sound export: now TensorRT
    with pytest.raises(VsrnError, match=r"pip install 'vsrn-deploy\[trt\]'.*NVIDIA GPU"):
        B.build_engines(export_dir, tmp_path / "engines", B.BuildSettings())


def test_without_a_gpu_it_says_so(fake_trt, monkeypatch, export_dir, tmp_path):
    fake_trt(10)
    write_manifest(export_dir, ["image_encoder.onnx", "text_encoder.onnx"])
    from vsrn_deploy.backend import cuda

    monkeypatch.setattr(cuda, "gpu_info", lambda index=0: (_ for _ in ()).throw(
        VsrnError("no NVIDIA GPU is visible")))
    with pytest.raises(VsrnError, match="no NVIDIA GPU"):
        B.build_engines(export_dir, tmp_path / "engines", B.BuildSettings())


def test_missing_manifest_and_changed_graph(fake_trt, monkeypatch, export_dir, tmp_path):
    fake_trt(10)
    _gpu(monkeypatch)
    with pytest.raises(VsrnError, match="manifest.json not found"):
        B.build_engines(export_dir, tmp_path / "engines", B.BuildSettings())
    write_manifest(export_dir, ["image_encoder.onnx", "text_encoder.onnx"])
    with open(export_dir / "image_encoder.onnx", "ab") as f:
        f.write(b"tampered")
    with pytest.raises(VsrnError, match="image_encoder.onnx changed since export"):
        B.build_engines(export_dir, tmp_path / "engines", B.BuildSettings())
    assert not (tmp_path / "engines").exists()


@pytest.mark.parametrize("major,source", [(10, "image_encoder.onnx"), (11, "image_encoder.fp16.onnx")])
def test_build_engines_writes_plans_and_sidecars(fake_trt, monkeypatch, export_dir, tmp_path, major, source):
    trt = fake_trt(major)
    version = trt.__version__
    _gpu(monkeypatch)
    files = ["image_encoder.onnx", "text_encoder.onnx", "image_encoder.fp16.onnx", "text_encoder.fp16.onnx"]
    write_manifest(export_dir, files, islands={"image_encoder": ["/norm/ReduceSum"]})
    results = B.build_engines(export_dir, tmp_path / "engines", B.BuildSettings(precision="fp16"))
    assert [r.encoder for r in results] == ["image", "text"]
    plan = tmp_path / "engines" / "image_encoder.fp16.plan"
    side = json.loads(plan.with_suffix(".json").read_text())
    assert plan.read_bytes() == f"PLAN{version}".encode()
    assert side["tensorrt_version"] == version
    assert side["gpu"] == {"name": "NVIDIA Fake", "compute_capability": "8.9", "index": 0}
    assert side["source_onnx"]["file"] == source
    assert side["precision"] == "fp16" and side["precision_check"]["fp16_layers"] == 1
    assert side["builder"]["fp32_islands"] == ["/norm/ReduceSum"]
    assert side["build_path"] == ("strongly-typed" if version.startswith("11") else "weak-fp16-flags")
    parsed = [c.args[0].rsplit("/", 1)[-1] for c in trt.calls if c.member == "parse_from_file"]
    assert parsed[0] == source
    assert "EngineInspector.get_engine_information" in trt.used()  # the inspection ran, on the fake


def test_trt11_fp16_needs_the_fp16_graph(fake_trt, monkeypatch, export_dir, tmp_path):
    fake_trt(11)
    _gpu(monkeypatch)
    write_manifest(export_dir, ["image_encoder.onnx", "text_encoder.onnx"])
    with pytest.raises(VsrnError, match="--precision all"):
        B.build_engines(export_dir, tmp_path / "engines", B.BuildSettings(precision="fp16"))


def test_silent_fp32_engine_fails_the_build(fake_trt, monkeypatch, export_dir, tmp_path):
    fake_trt(10)
    _gpu(monkeypatch)
    monkeypatch.setattr(B, "inspect_engine", lambda data, settings: TRT11_FP32_JSON)
    write_manifest(export_dir, ["image_encoder.onnx", "text_encoder.onnx"])
    with pytest.raises(CheckFailed):
        B.build_engines(export_dir, tmp_path / "engines", B.BuildSettings(precision="fp16"))
    assert not (tmp_path / "engines" / "image_encoder.fp16.plan").exists()


@pytest.mark.parametrize(("change", "says"), [
    ({"workspace_mib": B.MAX_WORKSPACE_MIB + 1}, "--workspace must lie in"),
    ({"workspace_mib": 0}, "--workspace must lie in"),
    ({"opt_level": B.OPT_LEVELS[1] + 1}, "--opt-level must lie in"),
])
def test_settings_beyond_their_bounds_are_refused(change, says):
    """A workspace the size_t of TensorRT cannot hold fails here, not inside the builder."""
    with pytest.raises(VsrnError, match=says):
        B.BuildSettings(precision="fp32", **change)
    top = B.MAX_WORKSPACE_MIB
    assert B.BuildSettings(precision="fp32", workspace_mib=top).workspace_mib == top
