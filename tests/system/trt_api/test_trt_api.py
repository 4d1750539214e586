"""The `trt_api` layer: the package's TensorRT calls against the real 10.13 and 11.4 Python bindings.

What this proves (no GPU, no TensorRT libraries): every TensorRT class, method, property and enum
member the builder and the runner (ours and Polygraphy's) touch exists in the real bindings of the
version whose code path touches it, with arguments that bind to the real pybind11 signatures. What
it cannot prove: that TensorRT builds or runs anything (the C factories are stubs).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import numpy as np
import pytest
from trt_behaviour import derived_trt
from trt_surface import ApiMismatch, installed_versions, load_real, signatures

from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.engine import builder as B

pytestmark = pytest.mark.trt_api
MAJORS = (10, 11)
PACKAGE = Path(B.__file__).resolve().parents[1]


@pytest.fixture(scope="module", params=MAJORS)
def real(request):
    try:
        return load_real(request.param)
    except RuntimeError as exc:  # the set-up step did not run: a broken set-up, not a skip
        pytest.fail(str(exc))


def test_the_set_up_installed_both_versions():
    versions = installed_versions()
    assert sorted(versions) == [10, 11], f"run bash .ci/setup; found {versions}"
    assert load_real(10).__version__.startswith("10.") and load_real(11).__version__.startswith("11.")
    assert load_real(10).IBuilderConfig is not load_real(11).IBuilderConfig  # side by side


def test_every_signature_of_the_real_bindings_parses(real):
    """The fake's checks rest on parsing pybind11 docstrings: all of them must parse."""
    count = 0
    for cname, cls in vars(real).items():
        if not isinstance(cls, type) or hasattr(cls, "__members__"):
            continue
        for mname, member in vars(cls).items():
            if mname.startswith("_") and mname != "__init__":
                continue
            if type(member).__name__ in ("instancemethod", "builtin_function_or_method"):
                assert signatures(member, mname), f"{cname}.{mname}"
                count += 1
    assert count > 400  # 443 in 10.13.3.9


def test_the_routing_rests_on_facts_of_the_real_bindings():
    t10, t11 = load_real(10), load_real(11)
    # 10.x: weak typing with the FP16 flag, per-layer precisions and OBEY_PRECISION_CONSTRAINTS
    assert {"FP16", "OBEY_PRECISION_CONSTRAINTS", "TF32"} <= set(t10.BuilderFlag.__members__)
    assert t10.ILayer.precision.fset is not None and hasattr(t10.ILayer, "set_output_type")
    # 11.x: none of them; every network strongly typed, the flag kept but ignored
    assert not {"FP16", "OBEY_PRECISION_CONSTRAINTS"} & set(t11.BuilderFlag.__members__)
    assert "TF32" in t11.BuilderFlag.__members__
    assert not hasattr(t11.ILayer, "precision") and not hasattr(t11.ILayer, "set_output_type")
    assert "Strongly typed mode is always enabled" in t11.NetworkDefinitionCreationFlag.__doc__


@pytest.mark.parametrize("major", MAJORS)
def test_builder_routes_as_the_real_api_allows(monkeypatch, export_dir_trt, major):
    trt = derived_trt(major)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    graph = "image_encoder.onnx" if major == 10 else "image_encoder.fp16.onnx"
    B.engine_bytes_from_onnx(export_dir_trt / graph, B.BuildSettings(precision="fp16",
                                                                     fp32_islands=("/norm/ReduceSum",)))
    flags = {c.args[0].name for c in trt.calls if c.member == "set_flag"}
    net_flags = [c.args[0] for c in trt.calls if c.member == "create_network"]
    pinned = [c for c in trt.calls if c.cls == "ILayer" and c.member in ("precision", "set_output_type")]
    if major == 10:
        assert flags == {"FP16", "OBEY_PRECISION_CONSTRAINTS"} and net_flags == [0] and pinned
    else:
        assert flags == set() and not pinned
        assert net_flags == [1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)]
    assert trt.violations == []


# --- the checker itself: deliberate mistakes must fail ---------------------------------------------

@pytest.fixture()
def parts():
    def make(major):
        trt = derived_trt(major)
        builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
        return trt, builder, builder.create_builder_config()

    return make


def test_fp16_flag_on_11_fails(parts):
    trt, _, _ = parts(11)
    with pytest.raises(AttributeError, match="FP16"):
        trt.BuilderFlag.FP16  # noqa: B018
    trt10, _, config10 = parts(10)
    config10.set_flag(trt10.BuilderFlag.FP16)  # the same call is right on 10.x
    assert trt10.violations == []


def test_a_10x_enum_on_the_11x_api_fails(parts):
    trt11, _, config11 = parts(11)
    with pytest.raises(ApiMismatch, match="set_flag"):
        config11.set_flag(load_real(10).BuilderFlag.TF32)
    assert len(trt11.violations) == 1


def test_a_misspelt_method_or_the_wrong_object_fails(parts):
    trt, builder, config = parts(10)
    with pytest.raises(AttributeError, match="set_flags"):
        config.set_flags(trt.BuilderFlag.FP16)
    with pytest.raises(AttributeError, match="Builder has no attribute 'set_flag'"):
        builder.set_flag(trt.BuilderFlag.FP16)  # right method, wrong object
    assert {"IBuilderConfig.set_flags", "Builder.set_flag"} <= set(trt.missing)


def test_a_wrong_arity_or_keyword_fails(parts):
    trt, builder, config = parts(11)
    with pytest.raises(ApiMismatch, match="matches no signature"):
        config.set_flag()
    with pytest.raises(ApiMismatch):
        config.set_flag(trt.BuilderFlag.TF32, True)
    cache = config.create_timing_cache(b"")
    with pytest.raises(ApiMismatch):
        config.set_timing_cache(cache, ignore=False)  # the keyword is ignore_mismatch
    config.set_timing_cache(cache, ignore_mismatch=False)
    assert len(trt.violations) == 3


def test_a_wrong_enum_type_or_value_type_fails(parts):
    trt, builder, config = parts(10)
    with pytest.raises(ApiMismatch):
        config.set_flag(trt.MemoryPoolType.WORKSPACE)
    with pytest.raises(ApiMismatch):
        config.set_memory_pool_limit(trt.BuilderFlag.FP16, 1 << 20)
    with pytest.raises(ApiMismatch):
        config.builder_optimization_level = "3"
    with pytest.raises(ApiMismatch):
        config.profiling_verbosity = 2  # an int is not a ProfilingVerbosity
    with pytest.raises(AttributeError, match="read-only"):
        trt.OnnxParser(builder.create_network(0), trt.Logger()).num_errors = 0
    with pytest.raises(ApiMismatch):
        builder.build_serialized_network(config, builder.create_network(0))  # swapped arguments
    with pytest.raises(ApiMismatch, match="cannot be constructed"):
        trt.ICudaEngine()  # engines come from Runtime.deserialize_cuda_engine only
    assert len(trt.violations) == 7


def test_buffers_tuples_and_void_pointers_are_checked(parts):
    trt, builder, config = parts(11)
    runtime = trt.Runtime(trt.Logger())
    runtime.deserialize_cuda_engine(b"plan")  # bytes have the buffer protocol
    with pytest.raises(ApiMismatch):
        runtime.deserialize_cuda_engine("plan")  # a str does not
    context = runtime.deserialize_cuda_engine(b"plan").create_execution_context()
    context.set_input_shape("x", (1, 2))
    context.set_input_shape("x", [1, 2])  # overloads for tuple, list and Dims
    with pytest.raises(ApiMismatch):
        context.set_input_shape("x", "12")
    trt.init_libnvinfer_plugins(trt.Logger(), "")
    with pytest.raises(ApiMismatch):
        trt.init_libnvinfer_plugins("logger", "")  # void*: a str is not a bound object
    assert len(trt.violations) == 3


def test_a_swallowed_mistake_is_still_recorded(monkeypatch, export_dir_trt):
    """Route an 11.x build down the 10.x path: TensorRT 11 has no FP16 flag, and the test sees it."""
    trt = derived_trt(11)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(B, "route", lambda _trt: "weak-fp16-flags")
    with pytest.raises(AttributeError, match="FP16"):
        B.engine_bytes_from_onnx(export_dir_trt / "image_encoder.onnx", B.BuildSettings(precision="fp16"))
    assert "BuilderFlag.FP16" not in trt.used()


# --- coverage: every TensorRT name the package uses is checked -----------------------------------

def _tensorrt_names_in_package(real_modules) -> set[str]:
    """Attribute names in the modules that use tensorrt which name a member of a real TensorRT class
    or module (a superset of what the package really calls on TensorRT objects)."""
    members: set[str] = set()
    for real in real_modules:
        for value in vars(real).values():
            if isinstance(value, type):
                members.update(n for n in dir(value) if not n.startswith("_"))
        members.update(n for n in vars(real) if not n.startswith("_"))
    names = set()
    for path in (PACKAGE / "engine" / "builder.py", PACKAGE / "backend" / "trt.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in members:
                names.add(node.attr)
    return names


# Attribute names in builder.py / trt.py that also name TensorRT members but are used on other
# objects (numpy arrays, paths, dicts, our own classes); each was checked by reading the code.
NOT_TENSORRT = {"name", "shape", "dtype", "items", "get", "copy", "is_file", "read_bytes", "append",
                "encoder", "precision", "plan", "values", "to_dict", "split", "engine", "stream",
                "synchronize", "is_active", "activate", "deactivate", "infer", "free", "buffers",
                "profiles", "tokens", "timing_cache", "max_tokens", "verify_precision", "verbose",
                "fp32_islands", "opt_level", "workspace_mib", "output_allocator", "set_profile", "node",
                "axes"}
# Reached through classes the fake hands out as the real ones (Logger constructs without TensorRT's
# libraries), so pybind11 itself checks those calls; asserted to exist in both versions below.
ON_REAL_CLASSES = {"WARNING", "VERBOSE"}


def test_every_tensorrt_name_the_package_uses_is_exercised_against_both_versions(
        monkeypatch, export_dir_trt, tmp_path):
    from polygraphy.backend.trt import util as pg_trt_util
    from polygraphy.cuda import cuda as pg_cuda
    from trt_behaviour import HostCuda, engine_spec, plan_bytes, reset_polygraphy_tensorrt

    from vsrn_deploy.backend import cuda
    from vsrn_deploy.backend.trt import TrtRunner
    from vsrn_deploy.engine.builder import save_engine

    monkeypatch.setattr(cuda, "gpu_info", lambda index=0: cuda.GpuInfo("NVIDIA L4", "8.9"))
    monkeypatch.setattr(cuda, "select_device", lambda index=0: None)
    used: set[str] = set()
    for major in MAJORS:
        trt = derived_trt(major)
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        monkeypatch.setattr(pg_cuda, "G_CUDA", HostCuda())
        monkeypatch.setattr(pg_trt_util, "TRT_LOGGER", None)
        reset_polygraphy_tensorrt()
        fp16 = "image_encoder.onnx" if major == 10 else "image_encoder.fp16.onnx"
        cache = tmp_path / f"cache{major}"
        for settings, graph in ((B.BuildSettings(precision="fp16", fp32_islands=("/norm/ReduceSum",),
                                                 workspace_mib=64, opt_level=2,
                                                 timing_cache=str(cache)), fp16),
                                (B.BuildSettings(precision="fp32", verbose=True), "text_encoder.onnx")):
            data = B.engine_bytes_from_onnx(export_dir_trt / graph, settings)
            B.inspect_engine(data, settings)
        trt.fail_parse = True
        with pytest.raises(VsrnError, match="ONNX parser rejected"):
            B.engine_bytes_from_onnx(export_dir_trt / fp16, B.BuildSettings())
        plan = tmp_path / f"image_encoder.{major}.fp16.plan"
        save_engine(plan_bytes(trt.__version__, engine_spec("image", regions=6, feature_dim=24)), plan, {
            "format_version": 1, "encoder": "image", "precision": "fp16", "tensorrt_version": trt.__version__,
            "profiles": [], "gpu": {"name": "NVIDIA L4", "compute_capability": "8.9"}})
        with TrtRunner("image", plan) as runner:
            runner.infer({"region_features": np.zeros((2, 6, 24), np.float32)})
        reset_polygraphy_tensorrt()
        assert trt.violations == [], trt.violations
        # every argument the package's calls pass was type-checked (no annotation left unchecked)
        assert trt.unchecked == set(), trt.unchecked
        used |= {n.split(".")[-1] for n in trt.used()}
        used |= set(trt.module_attrs)
    names = _tensorrt_names_in_package([load_real(m) for m in MAJORS])
    for real in (load_real(m) for m in MAJORS):
        assert all(hasattr(real.Logger, n) for n in ON_REAL_CLASSES)
    unexercised = names - used - NOT_TENSORRT - ON_REAL_CLASSES
    assert not unexercised, f"TensorRT names in the package that no trt_api check exercised: {unexercised}"
    assert {"set_flag", "create_network", "execute_async_v3", "deserialize_cuda_engine"} <= used
