"""What the derived TensorRT fake does when called (trt_surface.DerivedTrt supplies what exists).

`derived_trt(major)` returns a `DerivedTrt` over the real bindings of that major version with the
behaviour the builder and runner tests need: the ONNX parser fills the network from the graph's
inputs and nodes, the builder returns a plan whose bytes name the version, timing caches round-trip,
and a deserialised engine has the I/O tensors its plan declares and, on `execute_async_v3`, fills
its outputs through the output allocator TensorRT calls (Polygraphy's), copying each output from
its first input so tests can see values travel.

Hooks only give return values and state; names, arities and types are checked by DerivedTrt
against the real classes, so a hook cannot make a missing method exist.
"""

from __future__ import annotations

import ctypes
import json
import sys
import types
from typing import Any

import numpy as np
import onnx
from trt_surface import DerivedTrt, load_real

ONNX_DTYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16",
               onnx.TensorProto.INT64: "int64", onnx.TensorProto.INT32: "int32"}


def derived_trt(major: int, version: str | None = None) -> DerivedTrt:
    """A `tensorrt` stand-in over the real bindings of `major`, with builder and runtime behaviour."""
    api = DerivedTrt(load_real(major), version)
    api.made: dict[str, Any] = {"networks": [], "configs": [], "profiles": []}
    api.fail_build = False
    api.fail_parse = False
    real = api._real

    def dtype(name: str) -> Any:
        return getattr(real, name)

    # --- builder ---------------------------------------------------------------------------------
    def create_network(builder: Any, flags: int = 0) -> Any:
        net = api.new("INetworkDefinition")
        net._state["_inputs"], net._state["_layers"], net._state["_flags"] = [], [], flags
        api.made["networks"].append(net)
        return net

    def create_config(builder: Any) -> Any:
        cfg = api.new("IBuilderConfig")
        api.made["configs"].append(cfg)
        return cfg

    def create_profile(builder: Any) -> Any:
        prof = api.new("IOptimizationProfile")
        prof._state["_shapes"] = {}
        api.made["profiles"].append(prof)
        return prof

    def set_shape(profile: Any, name: str, lo: Any, opt: Any, hi: Any) -> None:
        profile._state["_shapes"][name] = (tuple(lo), tuple(opt), tuple(hi))

    def build(builder: Any, network: Any, config: Any) -> Any:
        if api.fail_build:
            return None
        return api.new("IHostMemory", payload=b"PLAN" + api.__version__.encode())

    api.on("Builder", "create_network", create_network)
    api.on("Builder", "create_builder_config", create_config)
    api.on("Builder", "create_optimization_profile", create_profile)
    api.on("Builder", "build_serialized_network", build)
    api.on("IOptimizationProfile", "set_shape", set_shape)
    api.on("IBuilderConfig", "add_optimization_profile",
           lambda cfg, prof: len([c for c in api.calls if c.member == "add_optimization_profile"]) - 1)
    api.on("IBuilderConfig", "create_timing_cache",
           lambda cfg, data: api.new("ITimingCache", _data=bytes(data)))

    def set_cache(cfg: Any, cache: Any, ignore_mismatch: bool) -> bool:
        cfg._state["_cache"] = cache
        return True

    api.on("IBuilderConfig", "set_timing_cache", set_cache)
    api.on("IBuilderConfig", "get_timing_cache", lambda cfg: cfg._state.get("_cache"))
    api.on("ITimingCache", "serialize",
           lambda cache: api.new("IHostMemory", payload=b"cache:" + cache._state["_data"]))

    # --- parser and network ------------------------------------------------------------------------
    def parser_init(parser: Any, network: Any, logger: Any) -> None:
        parser._state["_network"] = network

    def parse_from_file(parser: Any, path: str) -> bool:
        if api.fail_parse:
            parser._state["num_errors"] = 1
            return False
        net = parser._state["_network"]
        model = onnx.load(path, load_external_data=False)
        for inp in model.graph.input:
            dims = tuple(d.dim_value if d.HasField("dim_value") else -1
                         for d in inp.type.tensor_type.shape.dim)
            net._state["_inputs"].append(api.new("ITensor", name=inp.name, shape=real.Dims(dims),
                                                 dtype=dtype(ONNX_DTYPES[inp.type.tensor_type.elem_type])))
        for node in model.graph.node:
            outs = [api.new("ITensor", name=o, dtype=dtype("float32")) for o in node.output]
            net._state["_layers"].append(api.new("ILayer", name=node.name, _outputs=outs,
                                                 num_outputs=len(outs)))
        return True

    api.on("OnnxParser", "__init__", parser_init)
    api.on("OnnxParser", "parse_from_file", parse_from_file)
    api.on("OnnxParser", "get_error", lambda parser, i: api.new("ParserError"))
    api.on("INetworkDefinition", "num_inputs", lambda net: len(net._state["_inputs"]))
    api.on("INetworkDefinition", "get_input", lambda net, i: net._state["_inputs"][i])
    api.on("INetworkDefinition", "num_layers", lambda net: len(net._state["_layers"]))
    api.on("INetworkDefinition", "get_layer", lambda net, i: net._state["_layers"][i])
    api.on("ILayer", "get_output", lambda layer, j: layer._state["_outputs"][j])

    # --- runtime: an engine whose I/O comes from the plan's bytes -----------------------------------
    def deserialize(runtime: Any, data: Any) -> Any:
        spec = json.loads(bytes(data).split(b"\n", 1)[1]) if bytes(data).startswith(b"PLAN") and \
            b"\n" in bytes(data) else engine_spec()
        return api.new("ICudaEngine", _spec=spec, num_io_tensors=len(spec["tensors"]),
                       num_optimization_profiles=len(spec.get("profiles", [None])))

    def tensor(engine: Any, name: str) -> dict:
        return next(t for t in engine._state["_spec"]["tensors"] if t["name"] == name)

    api.on("Runtime", "deserialize_cuda_engine", deserialize)
    api.on("ICudaEngine", "get_tensor_name", lambda e, i: e._state["_spec"]["tensors"][i]["name"])
    api.on("ICudaEngine", "get_tensor_mode", lambda e, n: getattr(
        real.TensorIOMode, "INPUT" if tensor(e, n)["input"] else "OUTPUT"))
    api.on("ICudaEngine", "get_tensor_dtype", lambda e, n: dtype(tensor(e, n)["dtype"]))
    api.on("ICudaEngine", "get_tensor_shape", lambda e, n: real.Dims(tensor(e, n)["shape"]))
    api.on("ICudaEngine", "get_tensor_format", lambda e, n, *p: real.TensorFormat.LINEAR)
    api.on("ICudaEngine", "is_shape_inference_io", lambda e, n: False)
    api.on("ICudaEngine", "get_tensor_profile_shape", lambda e, n, p: [
        real.Dims(s) for s in e._state["_spec"].get("profiles", [{}])[p].get(n, [tensor(e, n)["shape"]] * 3)])

    def create_context(engine: Any, *args: Any) -> Any:
        return api.new("IExecutionContext", engine=engine, _shapes={}, _addresses={}, _allocators={})

    api.on("ICudaEngine", "create_execution_context", create_context)
    api.on("ICudaEngine", "create_engine_inspector", lambda e: api.new("EngineInspector"))
    api.on("EngineInspector", "get_engine_information",
           lambda insp, fmt: json.dumps({"Layers": [{"Name": "l0",
                                                     "Outputs": [{"Format/Datatype": "Half"}]}]}))

    def set_input_shape(ctx: Any, name: str, shape: Any) -> bool:
        ctx._state["_shapes"][name] = tuple(shape)
        return True

    def get_tensor_shape(ctx: Any, name: str) -> Any:
        engine = ctx._state["engine"]
        t = tensor(engine, name)
        if name in ctx._state["_shapes"]:
            return real.Dims(ctx._state["_shapes"][name])
        if t["input"]:
            return real.Dims(t["shape"])
        first = next(x["name"] for x in engine._state["_spec"]["tensors"] if x["input"])
        batch = ctx._state["_shapes"].get(first, (-1,))[0]
        return real.Dims((batch, *t["shape"][1:]))

    def set_address(ctx: Any, name: str, ptr: int) -> bool:
        ctx._state["_addresses"][name] = int(ptr)
        return True

    def set_allocator(ctx: Any, name: str, allocator: Any) -> bool:
        ctx._state["_allocators"][name] = allocator
        return True

    def execute(ctx: Any, stream: int) -> bool:
        """Outputs = the first input's leading values, cast; written where the allocator says."""
        engine = ctx._state["engine"]
        tensors = engine._state["_spec"]["tensors"]
        first = next(t for t in tensors if t["input"])
        in_shape = ctx._state["_shapes"][first["name"]]
        in_dtype = np.dtype(first["dtype"])
        count = int(np.prod(in_shape))
        source = np.frombuffer((ctypes.c_char * (count * in_dtype.itemsize)).from_address(
            ctx._state["_addresses"][first["name"]]), dtype=in_dtype).reshape(in_shape)
        ctx._state["_ran"] = ctx._state.get("_ran", 0) + 1
        for t in tensors:
            if t["input"]:
                continue
            shape = tuple(get_tensor_shape(ctx, t["name"]))
            rows = source.reshape(shape[0], -1).astype(t["dtype"])
            values = np.stack([np.resize(row, int(np.prod(shape[1:]))) for row in rows]).reshape(shape)
            allocator = ctx._state["_allocators"].get(t["name"])
            if allocator is not None:
                ptr = allocator.reallocate_output_async(t["name"], 0, values.nbytes, 256, stream)
                allocator.notify_shape(t["name"], real.Dims(shape))
            else:
                ptr = ctx._state["_addresses"][t["name"]]
            ctypes.memmove(ptr, values.ctypes.data, values.nbytes)
        return True

    api.on("IExecutionContext", "set_input_shape", set_input_shape)
    api.on("IExecutionContext", "get_tensor_shape", get_tensor_shape)
    api.on("IExecutionContext", "set_tensor_address", set_address)
    api.on("IExecutionContext", "get_tensor_address", lambda ctx, n: ctx._state["_addresses"].get(n, 0))
    api.on("IExecutionContext", "set_output_allocator", set_allocator)
    api.on("IExecutionContext", "execute_async_v3", execute)
    return api


def engine_spec(encoder: str = "image", *, regions: int = 3, feature_dim: int = 8, embed_dim: int = 4,
                profiles: list[dict] | None = None) -> dict:
    """The I/O of a fake plan: the contract's names, with the given sizes."""
    if encoder == "image":
        tensors = [{"name": "region_features", "input": True, "dtype": "float32",
                    "shape": [-1, regions, feature_dim]},
                   {"name": "image_embedding", "input": False, "dtype": "float32", "shape": [-1, embed_dim]},
                   {"name": "region_embeddings", "input": False, "dtype": "float32",
                    "shape": [-1, regions, embed_dim]}]
        profiles = profiles or [{"region_features": [[1, regions, feature_dim], [4, regions, feature_dim],
                                                     [8, regions, feature_dim]]}]
    else:
        tensors = [{"name": "token_ids", "input": True, "dtype": "int64", "shape": [-1, -1]},
                   {"name": "lengths", "input": True, "dtype": "int64", "shape": [-1]},
                   {"name": "text_embedding", "input": False, "dtype": "float32", "shape": [-1, embed_dim]}]
        profiles = profiles or [{"token_ids": [[1, 2], [4, 16], [8, 32]], "lengths": [[1], [4], [8]]}]
    return {"tensors": tensors, "profiles": profiles}


def plan_bytes(version: str, spec: dict) -> bytes:
    """Bytes of a fake plan that `deserialize_cuda_engine` above turns into an engine with `spec`."""
    return b"PLAN" + version.encode() + b"\n" + json.dumps(spec).encode()


def reset_polygraphy_tensorrt() -> None:
    """Forget the `tensorrt` module Polygraphy's lazy imports have bound (they import once per
    process; tests switch between the 10.x and 11.x fakes)."""
    for module in list(sys.modules.values()):
        if not getattr(module, "__name__", "").startswith("polygraphy"):
            continue
        for value in list(vars(module).values()):
            if type(value).__name__ == "LazyModule":
                bound = value.__dict__.get("module")
                if isinstance(bound, types.ModuleType) and bound.__name__ == "tensorrt":
                    object.__setattr__(value, "module", None)


class HostCuda:
    """Stands in for Polygraphy's CUDA runtime wrapper (`polygraphy.cuda.wrapper()`) on a machine
    without a GPU: "device" memory is host memory, copies are memmove, streams are counters.
    Records what was allocated and freed, so tests can see nothing leaks."""

    def __init__(self) -> None:
        self.live: dict[int, ctypes.Array] = {}
        self.streams: set[int] = set()
        self._next_stream = 1

    def create_stream(self) -> int:
        handle, self._next_stream = self._next_stream, self._next_stream + 1
        self.streams.add(handle)
        return handle

    def stream_synchronize(self, ptr: int) -> None:
        assert ptr in self.streams, f"sync of unknown stream {ptr}"

    def destroy_stream(self, ptr: int) -> None:
        self.streams.remove(ptr)

    def malloc(self, nbytes: int) -> int:
        buf = (ctypes.c_char * max(int(nbytes), 1))()
        ptr = ctypes.addressof(buf)
        self.live[ptr] = buf
        return ptr

    def free(self, ptr: int) -> None:
        if ptr:
            self.live.pop(int(ptr))

    def memcpy(self, dst: int, src: int, nbytes: int, kind: Any, stream_ptr: int | None = None) -> None:
        ctypes.memmove(int(dst), int(src), int(nbytes))
