"""Building TensorRT plans from the exported ONNX graphs (thin, after Polygraphy's loaders).

`engine_bytes_from_onnx(onnx_path, settings) -> bytes` parses and builds one plan;
`save_engine(data, path, sidecar)` writes it and its JSON sidecar atomically;
`build_engines(onnx_dir, out_dir, settings)` does both encoders of an export, checking the
manifest's sha256s first and the built engine's precision after.

Two TensorRT generations take different paths to FP16 (the version is detected at run time):
- TensorRT 10.x: a weakly typed network from the FP32 graph, `BuilderFlag.FP16`, and the export's
  FP32 islands pinned with `ILayer.precision` / `ILayer.set_output_type` plus
  `BuilderFlag.OBEY_PRECISION_CONSTRAINTS` (TensorRT 10.x Python API, "IBuilderConfig" and "ILayer"
  pages, docs.nvidia.com/deeplearning/tensorrt/10.x/_static/python-api/infer/Core/BuilderConfig.html,
  .../infer/Graph/Layers.html).
- TensorRT 11.x: those flags and per-layer precisions are gone and every network is strongly
  typed ("Migrating from TensorRT 10.x to 11.x", .../tensorrt/11.0.0/api/migration/
  tensorrt-10x-to-11x-python-api.html, "Removed Python APIs"): the precision comes from the graph,
  so the FP16 ONNX graph (FP16 compute, FP32 islands and I/O written in) is built as it is.
Nothing here imports tensorrt or torch at module level.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vsrn_deploy.backend.sidecar import SIDECAR_FORMAT, write_sidecar
from vsrn_deploy.core import contract
from vsrn_deploy.core.errors import CheckFailed, VsrnError
from vsrn_deploy.engine.profiles import ProfileSpec, input_shapes
from vsrn_deploy.io.files import atomic_write_bytes, sha256_bytes, sha256_file

PRECISIONS = contract.PLAN_PRECISIONS  # what plans are built in: the contract says
# the builder's optimisation levels (TensorRT's range; its default is 3)
OPT_LEVELS = (0, 5)
# the largest workspace cap, in MiB (1 TiB: more than any GPU holds; TensorRT takes bytes in a size_t)
MAX_WORKSPACE_MIB = 2**20

_log = logging.getLogger(__name__)  # progress lines; the command line shows them on stderr


@dataclass(frozen=True)
class BuildSettings:
    """What `engine_bytes_from_onnx` builds.

    Attributes:
        precision: "fp16" or "fp32".
        profiles: one or more optimisation profiles.
        workspace_mib: cap on the builder's workspace memory pool (None: TensorRT's default, the
            whole device).
        opt_level: builder optimisation level 0-5 (None: TensorRT's default, 3).
        timing_cache: a timing cache file to load (when present) and save after the build.
        fp32_islands: ONNX node names to keep in FP32 (TensorRT 10 FP16 builds only).
        verify_precision: inspect the built engine and fail when it does not run `precision`.
        verbose: TensorRT's VERBOSE log instead of WARNING.
    """

    precision: str = "fp16"
    profiles: tuple[ProfileSpec, ...] = (ProfileSpec(),)
    workspace_mib: int | None = None
    opt_level: int | None = None
    timing_cache: str | None = None
    fp32_islands: tuple[str, ...] = ()
    verify_precision: bool = True
    verbose: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise VsrnError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not self.profiles:
            raise VsrnError("at least one optimisation profile is needed")
        if self.workspace_mib is not None and not 1 <= self.workspace_mib <= MAX_WORKSPACE_MIB:
            raise VsrnError(f"--workspace must lie in 1..{MAX_WORKSPACE_MIB} MiB, got {self.workspace_mib}")
        if self.opt_level is not None and not OPT_LEVELS[0] <= self.opt_level <= OPT_LEVELS[1]:
            raise VsrnError(f"--opt-level must lie in {OPT_LEVELS[0]}..{OPT_LEVELS[1]}, got {self.opt_level}")

    def to_dict(self) -> dict[str, Any]:
        return {"precision": self.precision, "profiles": [p.to_dict() for p in self.profiles],
                "workspace_mib": self.workspace_mib, "opt_level": self.opt_level,
                "timing_cache": self.timing_cache, "fp32_islands": list(self.fp32_islands),
                "verify_precision": self.verify_precision}


def trt_major(trt: Any) -> int:
    """The major version of an imported tensorrt module ('10.13.0.35' -> 10)."""
    try:
        return int(str(trt.__version__).split(".")[0])
    except (AttributeError, ValueError):
        version = getattr(trt, "__version__", None)
        raise VsrnError(f"cannot read the TensorRT version from {version!r}") from None


def route(trt: Any) -> str:
    """'weak-fp16-flags' (TensorRT 10) or 'strongly-typed' (TensorRT 11+)."""
    major = trt_major(trt)
    if major < 10:
        raise VsrnError(f"TensorRT {trt.__version__} is too old; vsrn-deploy needs TensorRT 10 or newer: "
                        "pip install 'vsrn-deploy[trt]'")
    return "strongly-typed" if major >= 11 else "weak-fp16-flags"


def _parse(trt: Any, network: Any, logger: Any, onnx_path: Path) -> None:
    parser = trt.OnnxParser(network, logger)
    # parse_from_file resolves external weight files next to the graph (same in 10.x and 11.x).
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise VsrnError(f"TensorRT's ONNX parser rejected {onnx_path}: " + " | ".join(errors[:5]))


def _network_inputs(network: Any) -> dict[str, tuple[int, ...]]:
    return {network.get_input(i).name: tuple(network.get_input(i).shape) for i in range(network.num_inputs)}


def _profile_shapes(inputs: dict[str, tuple[int, ...]], spec: ProfileSpec) -> dict[str, tuple]:
    """Per-input (min, opt, max) shapes of `spec` for the parsed network's inputs.

    The encoder is the one whose contract inputs the network has; its fixed axes (k, F) are read
    from the network.
    """
    for key, enc in contract.ENCODERS.items():
        if set(enc.input_names) <= set(inputs):
            fixed: dict[str, int] = {}
            for tensor in enc.inputs:
                shape = inputs[tensor.name]
                if len(shape) != tensor.rank:
                    raise VsrnError(f"{tensor.name} must be [{', '.join(tensor.axes)}], got {shape}")
                for axis, dim in zip(tensor.axes, shape, strict=True):
                    if axis not in tensor.dynamic_axes().values():
                        if dim < 1:
                            raise VsrnError(f"{tensor.name} must be [{', '.join(tensor.axes)}] with "
                                            f"{axis} fixed at export, got {shape}")
                        fixed[axis] = int(dim)
            return input_shapes(key, spec, num_regions=fixed.get("num_regions", 0),
                                feature_dim=fixed.get("img_dim", 0))
    names = "; ".join(f"{e.graph}: {', '.join(e.input_names)}" for e in contract.ENCODERS.values())
    raise VsrnError(f"the graph's inputs {sorted(inputs)} are none of the encoders' ({names})")


def pin_fp32_islands(trt: Any, network: Any, islands: tuple[str, ...], onnx_path: Path | None = None) -> int:
    """TensorRT 10 only: keep the layers of the named ONNX nodes in FP32; returns how many were pinned.

    The ONNX parser names each layer after its node (multi-layer nodes get suffixes) and names
    tensors after the node's outputs, so a layer is pinned when its name starts with an island's
    name or one of its outputs is an island node's output.
    ILayer.precision / set_output_type: TensorRT 10.x Python API "ILayer" page
    (docs.nvidia.com/deeplearning/tensorrt/10.x/_static/python-api/infer/Graph/LayerBase.html);
    both are removed in 11.x, where the FP16 graph carries its own FP32 casts.
    """
    if not islands:
        return 0
    wanted = set(islands)
    outputs: set[str] = set()
    if onnx_path is not None:
        try:
            import onnx

            model = onnx.load(str(onnx_path), load_external_data=False)
            outputs = {o for n in model.graph.node if n.name in wanted for o in n.output}
        except Exception:  # the names-only match below still applies
            outputs = set()
    pinned = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        outs = [layer.get_output(j) for j in range(layer.num_outputs)]
        by_name = any(layer.name == w or layer.name.startswith(w + "_") or layer.name.startswith(w + " ")
                      for w in wanted)
        if not by_name and not any(o is not None and o.name in outputs for o in outs):
            continue
        layer.precision = trt.float32
        for j, out in enumerate(outs):
            if out is not None and out.dtype in (trt.float32, trt.float16):
                layer.set_output_type(j, trt.float32)
        pinned += 1
    return pinned


def engine_bytes_from_onnx(onnx_path: str | os.PathLike, settings: BuildSettings) -> bytes:
    """Parse an ONNX graph and build a serialized TensorRT engine.

    Args:
        onnx_path: the graph. For FP16 on TensorRT 11 pass the FP16 graph (strongly typed: what
            the graph says is what runs); on TensorRT 10 the FP32 graph (FP16 via the builder flag).
        settings: precision, profiles, memory, optimisation level, timing cache, FP32 islands.

    Returns:
        The plan's bytes (`save_engine` writes them).

    Raises:
        VsrnError: tensorrt missing, too old, parse or build failure, bad profiles.
    """
    from vsrn_deploy.backend.trt import import_tensorrt

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise VsrnError(f"ONNX graph not found: {onnx_path}")
    trt = import_tensorrt()
    path = route(trt)
    logger = trt.Logger(trt.Logger.VERBOSE if settings.verbose else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # Both generations take creation flags as a bit mask. 10.x: 0 = weakly typed (so the FP16
    # builder flag applies). 11.x: every network is strongly typed; the STRONGLY_TYPED bit is
    # "retained for API compatibility but is ignored" (11.4 bindings, NetworkDefinitionCreationFlag
    # docstring) and is passed anyway, so the intent is explicit.
    flags = 0 if path == "weak-fp16-flags" else 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    config = builder.create_builder_config()
    t0 = time.perf_counter()
    _parse(trt, network, logger, onnx_path)
    _log.info(f"parsed {onnx_path.name} ({network.num_layers} layers) in {time.perf_counter() - t0:.1f}s")

    if settings.workspace_mib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_mib << 20)
    if settings.opt_level is not None:
        config.builder_optimization_level = settings.opt_level
    # DETAILED keeps each layer's formats/precisions in the plan for the engine inspector.
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED

    if path == "weak-fp16-flags":
        if settings.precision == "fp16":
            # TensorRT 10.x "IBuilderConfig" page: BuilderFlag.FP16 (removed in 11.x).
            config.set_flag(trt.BuilderFlag.FP16)
            pinned = pin_fp32_islands(trt, network, settings.fp32_islands, onnx_path)
            if settings.fp32_islands:
                # TensorRT 10.x "BuilderFlag" page: OBEY_PRECISION_CONSTRAINTS makes the pinned
                # precisions binding (removed in 11.x, where strong typing always obeys).
                config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
                _log.info(f"pinned {pinned} layers of {len(settings.fp32_islands)} FP32 island nodes")
    else:
        _log.info("TensorRT >= 11: strongly typed network, precisions as written in the graph")
    if settings.precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        # FP32 means FP32: TF32 (on by default) rounds matmul inputs to 10 mantissa bits.
        config.clear_flag(trt.BuilderFlag.TF32)

    inputs = _network_inputs(network)
    for spec in settings.profiles:
        profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in _profile_shapes(inputs, spec).items():
            profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(profile)

    cache_path = Path(settings.timing_cache) if settings.timing_cache else None
    cache_bytes = cache_path.read_bytes() if cache_path is not None and cache_path.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)
    if cache_bytes:
        _log.info(f"loaded timing cache {cache_path} ({len(cache_bytes)} bytes)")

    t0 = time.perf_counter()
    _log.info(f"building {settings.precision} engine from {onnx_path.name} "
        f"({len(settings.profiles)} profile(s)); this takes a while")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise VsrnError(f"TensorRT failed to build an engine from {onnx_path}; rerun with --verbose "
                        "to see TensorRT's log")
    _log.info(f"built in {time.perf_counter() - t0:.1f}s")
    if cache_path is not None:
        atomic_write_bytes(cache_path, bytes(config.get_timing_cache().serialize()))
        _log.info(f"saved timing cache {cache_path}")
    return bytes(serialized)


# --- checking what the engine runs --------------------------------------------------------------

_FP16_MARK = re.compile(r"half|fp16|float16|f16", re.IGNORECASE)
_FP32_MARK = re.compile(r"\bfloat\b|fp32|float32", re.IGNORECASE)


def layer_precision_summary(info: dict[str, Any]) -> dict[str, Any]:
    """Count layers by precision in the engine inspector's JSON (`get_engine_information(JSON)`).

    A layer counts as FP16 when any of its tensors' "Format/Datatype" (or, for fused Myelin
    layers whose I/O stays FP32, any other field such as its tactic) names half precision; as
    FP32 when its tensors say Float/FP32 and nothing says half. Works for TensorRT 10 ("Bindings")
    and 11 ("I/O Tensors") JSON alike, as both keep "Layers".
    """
    layers = info.get("Layers", [])
    counts = {"fp16": 0, "fp32": 0, "other": 0}
    for layer in layers:
        if not isinstance(layer, dict):  # LAYER_NAMES_ONLY verbosity: names only, no precision
            counts["other"] += 1
            continue
        text = json.dumps({k: v for k, v in layer.items() if k != "Name"})
        if _FP16_MARK.search(text):
            counts["fp16"] += 1
        elif _FP32_MARK.search(text):
            counts["fp32"] += 1
        else:
            counts["other"] += 1
    return {"layers": len(layers), "fp16_layers": counts["fp16"], "fp32_layers": counts["fp32"],
            "other_layers": counts["other"]}


def check_precision(summary: dict[str, Any], precision: str, what: str) -> None:
    """Fail when the inspected engine does not run `precision`.

    Raises:
        CheckFailed: an "fp16" engine with no FP16 layer (TensorRT fell back to FP32 silently,
            e.g. no fast FP16 on this GPU or the flag never reached the builder), or an "fp32"
            engine with FP16 layers.
    """
    if precision == "fp16" and summary["fp16_layers"] == 0:
        raise CheckFailed(f"{what}: asked for FP16 but the engine inspector shows no FP16 layer "
                          f"({summary}); TensorRT built FP32. Check the GPU's FP16 support and the "
                          "FP16 graph; --skip-precision-check builds it anyway")
    if precision == "fp32" and summary["fp16_layers"] > 0:
        raise CheckFailed(f"{what}: asked for FP32 but {summary['fp16_layers']} layers run FP16 ({summary})")


def inspect_engine(engine_bytes: bytes, settings: BuildSettings, inputs: dict[str, tuple] | None = None
                   ) -> dict[str, Any]:
    """The engine inspector's JSON for a plan, with input shapes set to profile 0's opt shapes.

    Formats of dynamic-shape layers are only known once an execution context has every input
    shape ("N/A due to dynamic shapes" otherwise), hence the context (TensorRT 10.x/11.x Python API
    "EngineInspector" page: `execution_context`, `get_engine_information`).
    """
    from vsrn_deploy.backend.trt import import_tensorrt

    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    engine = trt.Runtime(logger).deserialize_cuda_engine(engine_bytes)
    if engine is None:
        raise VsrnError("TensorRT could not deserialise the engine it just built")
    context = engine.create_execution_context()
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    for name in names:
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            _, opt, _ = engine.get_tensor_profile_shape(name, 0)
            context.set_input_shape(name, tuple(opt))
    inspector = engine.create_engine_inspector()
    inspector.execution_context = context
    return json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))


def save_engine(data: bytes, path: str | os.PathLike, sidecar: dict[str, Any]) -> Path:
    """Write a plan and its sidecar (with the plan's sha256 added), each atomically.

    The sidecar goes last, so a plan without a matching sidecar (an interrupted save) is refused
    at load time instead of trusted.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)
    write_sidecar(path, {**sidecar, "plan": path.name, "plan_sha256": sha256_bytes(data),
                         "plan_bytes": len(data)})
    return path


@dataclass
class BuildResult:
    """One built engine."""

    encoder: str
    plan: Path
    precision: str
    seconds: float
    sidecar: dict[str, Any] = field(default_factory=dict)


def build_engines(onnx_dir: str | os.PathLike, out_dir: str | os.PathLike, settings: BuildSettings, *,
                  encoders: tuple[str, ...] = ("image", "text")) -> list[BuildResult]:
    """Build one plan per encoder from an export folder: `out_dir/<encoder>_encoder.<precision>.plan`.

    Checks, in this order (so each failure names the first thing to fix): the manifest present and
    every file's sha256 as recorded (a wrong --onnx-dir is named before anything about TensorRT),
    then tensorrt importable, then a GPU visible.

    Args:
        onnx_dir: the export folder (manifest.json, the graphs).
        out_dir: where the plans and sidecars go.
        settings: see `BuildSettings`; `fp32_islands` is filled from the manifest per graph.
        encoders: which encoders to build.

    Returns:
        One `BuildResult` per encoder.

    Raises:
        VsrnError: manifest or graph missing/changed, tensorrt or GPU missing, build failure.
        CheckFailed: the engine does not run the requested precision.
    """
    from vsrn_deploy.artifacts.export import rebuild_hint, verify_export
    from vsrn_deploy.artifacts.outputs import check_out_path
    from vsrn_deploy.backend.cuda import gpu_info
    from vsrn_deploy.backend.trt import import_tensorrt

    onnx_dir, out_dir = Path(onnx_dir), Path(out_dir)
    # the export (every file against its sha256) and the output path are checked before TensorRT is
    # looked for: a missing or changed export is the first thing a user must fix
    manifest = verify_export(onnx_dir)
    check_out_path(out_dir, want="folder")
    trt = import_tensorrt()
    path_kind = route(trt)
    gpu = gpu_info()
    _log.info(f"TensorRT {trt.__version__} ({path_kind}) on {gpu.name} "
        f"(compute capability {gpu.compute_capability})")
    results = []
    for encoder in encoders:
        graph = contract.ENCODERS[encoder].graph
        entry = manifest.get("graphs", {}).get(graph, {})
        if settings.precision == "fp16" and path_kind == "strongly-typed":
            if not entry.get("fp16"):
                raise VsrnError(f"TensorRT {trt.__version__} builds FP16 only from the FP16 graph, and "
                                f"{onnx_dir} has none for {graph}; re-export with: "
                                f"{rebuild_hint(onnx_dir, manifest)} --precision all")
            source = onnx_dir / entry["fp16"]
        else:
            source = onnx_dir / (entry.get("fp32") or contract.onnx_name(graph))
        islands = tuple((manifest.get("fp32_islands") or {}).get(graph, ()))
        enc_settings = dataclasses.replace(settings, fp32_islands=islands)
        t0 = time.perf_counter()
        data = engine_bytes_from_onnx(source, enc_settings)
        seconds = time.perf_counter() - t0
        summary = None
        if settings.verify_precision:
            summary = layer_precision_summary(inspect_engine(data, enc_settings))
            _log.info(f"{graph}: inspector sees {summary['fp16_layers']} FP16 / "
                      f"{summary['fp32_layers']} FP32 of {summary['layers']} layers")
            check_precision(summary, settings.precision, graph)
        sidecar = {
            "format_version": SIDECAR_FORMAT,
            "encoder": encoder,
            "precision": settings.precision,
            "tensorrt_version": str(trt.__version__),
            "build_path": path_kind,
            "gpu": gpu.to_dict(),
            "profiles": [p.to_dict() for p in enc_settings.profiles],
            "source_onnx": {"file": source.name, "sha256": sha256_file(source)},
            "onnx_dir": str(onnx_dir),
            "manifest_source": manifest.get("source", {}),
            "builder": enc_settings.to_dict(),
            "precision_check": summary,
            "build_seconds": round(seconds, 3),
            "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        plan = save_engine(data, out_dir / contract.plan_name(graph, settings.precision), sidecar)
        _log.info(f"wrote {plan} ({len(data) / 2**20:.1f} MiB) in {seconds:.1f}s")
        results.append(BuildResult(encoder, plan, settings.precision, seconds, sidecar))
    return results
