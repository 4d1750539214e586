"""Test helpers: a fake `tensorrt` module that records the builder API calls, for version-routing tests.

It mimics the parts of the TensorRT 10.x / 11.x Python API that vsrn_deploy.engine.builder uses;
version 11 lacks the weak-typing flags (BuilderFlag.FP16, OBEY_PRECISION_CONSTRAINTS) and refuses
per-layer precisions, as the 11.x migration guide lists them removed.
"""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Any

import onnx


class _Enum:
    def __init__(self, **members: Any) -> None:
        self.__dict__.update(members)


class FakeTensor:
    def __init__(self, name: str, shape: tuple[int, ...] = (), dtype: str = "float32") -> None:
        self.name, self.shape, self.dtype = name, shape, dtype


class FakeLayer:
    def __init__(self, trt: FakeTrt, name: str, outputs: list[str]) -> None:
        self._trt, self.name = trt, name
        self._outputs = [FakeTensor(o) for o in outputs]
        self._precision = None
        self.output_types: dict[int, str] = {}

    @property
    def num_outputs(self) -> int:
        return len(self._outputs)

    def get_output(self, j: int) -> FakeTensor:
        return self._outputs[j]

    @property
    def precision(self) -> Any:
        return self._precision

    @precision.setter
    def precision(self, value: Any) -> None:
        if self._trt.major >= 11:
            raise AttributeError("ILayer.precision is not settable on a strongly typed network")
        self._precision = value

    def set_output_type(self, j: int, dtype: Any) -> None:
        if self._trt.major >= 11:
            raise AttributeError("set_output_type is not allowed on a strongly typed network")
        self.output_types[j] = dtype


class FakeNetwork:
    def __init__(self, flags: int) -> None:
        self.flags = flags
        self.inputs: list[FakeTensor] = []
        self.layers: list[FakeLayer] = []

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    def get_input(self, i: int) -> FakeTensor:
        return self.inputs[i]

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def get_layer(self, i: int) -> FakeLayer:
        return self.layers[i]


class FakeParser:
    def __init__(self, trt: FakeTrt, network: FakeNetwork) -> None:
        self._trt, self.network = trt, network
        self.num_errors = 0

    def parse_from_file(self, path: str) -> bool:
        self._trt.calls.append(("parse_from_file", Path(path).name))
        model = onnx.load(path)
        for inp in model.graph.input:
            dims = tuple(d.dim_value if d.HasField("dim_value") else -1
                         for d in inp.type.tensor_type.shape.dim)
            self.network.inputs.append(FakeTensor(inp.name, dims))
        for node in model.graph.node:
            self.network.layers.append(FakeLayer(self._trt, node.name, list(node.output)))
        return True

    def get_error(self, i: int) -> str:
        return ""


class FakeProfile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple] = {}

    def set_shape(self, name: str, lo: Any, opt: Any, hi: Any) -> None:
        self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))


class FakeCache:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def serialize(self) -> bytes:
        return b"cache:" + self.data


class FakeConfig:
    def __init__(self, trt: FakeTrt) -> None:
        self._trt = trt
        self.flags: set[str] = set()
        self.cleared: set[str] = set()
        self.profiles: list[FakeProfile] = []
        self.pool_limits: dict[str, int] = {}
        self.builder_optimization_level = 3
        self.profiling_verbosity = None
        self.cache: FakeCache | None = None

    def set_flag(self, flag: str) -> None:
        self.flags.add(flag)

    def clear_flag(self, flag: str) -> None:
        self.cleared.add(flag)

    def set_memory_pool_limit(self, pool: str, size: int) -> None:
        self.pool_limits[pool] = size

    def add_optimization_profile(self, profile: FakeProfile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def create_timing_cache(self, data: bytes) -> FakeCache:
        return FakeCache(bytes(data))

    def set_timing_cache(self, cache: FakeCache, ignore_mismatch: bool) -> bool:
        self.cache = cache
        return True

    def get_timing_cache(self) -> FakeCache:
        return self.cache


class FakeBuilder:
    def __init__(self, trt: FakeTrt, logger: Any) -> None:
        self._trt = trt

    def create_network(self, flags: int = 0) -> FakeNetwork:
        self._trt.network = FakeNetwork(flags)
        return self._trt.network

    def create_builder_config(self) -> FakeConfig:
        self._trt.config = FakeConfig(self._trt)
        return self._trt.config

    def create_optimization_profile(self) -> FakeProfile:
        return FakeProfile()

    def build_serialized_network(self, network: FakeNetwork, config: FakeConfig) -> bytes | None:
        self._trt.calls.append(("build_serialized_network",))
        return None if self._trt.fail_build else b"PLAN" + self._trt.__version__.encode()


class FakeTrt(types.ModuleType):
    """`FakeTrt("10.13.0")` or `FakeTrt("11.0.0")`; `.network`, `.config`, `.calls` record the build."""

    def __init__(self, version: str) -> None:
        super().__init__("tensorrt")
        self.__version__ = version
        self.major = int(version.split(".")[0])
        self.calls: list[tuple] = []
        self.network: FakeNetwork | None = None
        self.config: FakeConfig | None = None
        self.fail_build = False
        trt = self

        class Logger:
            WARNING, VERBOSE = "WARNING", "VERBOSE"

            def __init__(self, severity: str = "WARNING") -> None:
                self.severity = severity

        self.Logger = Logger
        self.Builder = lambda logger: FakeBuilder(trt, logger)
        self.OnnxParser = lambda network, logger: FakeParser(trt, network)
        self.MemoryPoolType = _Enum(WORKSPACE="WORKSPACE")
        self.ProfilingVerbosity = _Enum(DETAILED="DETAILED", LAYER_NAMES_ONLY="LAYER_NAMES_ONLY")
        flags = {"TF32": "TF32"}
        if self.major < 11:
            flags.update(FP16="FP16", OBEY_PRECISION_CONSTRAINTS="OBEY_PRECISION_CONSTRAINTS")
        self.BuilderFlag = _Enum(**flags)
        self.float32, self.float16 = "float32", "float16"


def write_manifest(folder: Path, files: list[str], islands: dict[str, list[str]] | None = None) -> dict:
    """A manifest in the export's format for graphs already in `folder`."""
    import hashlib

    manifest = {
        "format_version": 1,
        "files": {f: {"sha256": hashlib.sha256((folder / f).read_bytes()).hexdigest(),
                      "bytes": (folder / f).stat().st_size} for f in files},
        "graphs": {g: {"fp32": f"{g}.onnx",
                       **({"fp16": f"{g}.fp16.onnx"} if f"{g}.fp16.onnx" in files else {})}
                   for g in ("image_encoder", "text_encoder")},
        "fp32_islands": islands or {},
        "source": {"path": "ckpt.pth", "sha256": "0" * 64, "kind": "vsrn-deploy"},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def make_graph(inputs: list[tuple[str, int, list]], nodes: list[tuple[str, str, list[str], list[str]]],
           outputs: list[str], tag: str) -> onnx.ModelProto:
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node(op, ins, outs, name=name) for name, op, ins, outs in nodes], f"g_{tag}",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


