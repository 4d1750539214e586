"""`export_model`: checkpoint -> deploy-form ONNX graphs, checked, with vocab.json and manifest.json.

Steps: load the checkpoint (either kind) and its vocabulary; build the deploy modules and write the
graphs from them; graph hygiene (onnx checker, strict shape inference, no unfolded constants, no
recurrent/BatchNorm nodes in the image graph, GRU linear_before_reset=1) and the TensorRT lint;
optionally the FP16 graphs with FP32 islands chosen from calibration data; validation of every
written file in ONNX Runtime against the eager training model (and, for FP16, the strict FP16
executor); then vocab.json and manifest.json. Everything is written into a temporary folder beside
`out_dir` and renamed into place at the end: a failure leaves nothing new.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import os
import platform
import time
import types
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from vsrn_deploy.artifacts import export as export_artifact
from vsrn_deploy.artifacts.base import file_entry
from vsrn_deploy.artifacts.export import FORMAT_VERSION, ExportManifest, write_manifest
from vsrn_deploy.artifacts.outputs import marker
from vsrn_deploy.backend.base import Runner
from vsrn_deploy.core import backends, contract
from vsrn_deploy.core.contract import MANIFEST_NAME
from vsrn_deploy.core.errors import CheckFailed, VsrnError
from vsrn_deploy.data import synthetic_inputs
from vsrn_deploy.evaluation.recall import CAPTIONS_PER_IMAGE
from vsrn_deploy.export import emulate, fp16, graph_checks, graphs, int8, test_vectors, trt_lint
from vsrn_deploy.export.validation import GRAPH_BATCH, Validator, check_io, graph_runner, reference_runner
from vsrn_deploy.io.inputs import check_finite_features, load_npy, require_file
from vsrn_deploy.model.config import VSRNConfig
from vsrn_deploy.model.deploy import ImageEncoderDeploy, TextEncoderDeploy

PRECISIONS = (*contract.PRECISIONS, "all")  # the contract's precisions, or "all" of them

# the label of the checks that run graphs in ONNX Runtime (their lines and the manifest name it so)
_ORT = backends.runs(backends.Family.ONNXRUNTIME, "fp32")
_TWO_GB = 2 * 1024**3
_log = logging.getLogger(__name__)  # progress lines; the command line shows them on stderr


@dataclass(frozen=True)
class ExportConfig:
    """Options of one export.

    Args:
        precision: "fp32" (FP32 graphs), "fp16", "int8" or "all" (FP32 graphs plus the FP16 and/or
            INT8 ones; the FP32 graphs are always written, the others are made from them).
        opset: ai.onnx opset (13..24).
        vocab: vocabulary file (authors' .pkl or vocab.json); None: the checkpoint's own or the
            authors' usual place.
        calibration: .npy of region features (N, k, F) for the FP16 range check; None: synthetic.
        max_batch: the largest batch validated (and claimed in the manifest).
        max_tokens: the longest caption validated.
        fp16_margin: FP32 island when |x| >= 65504 / margin.
        calibration_samples: synthetic calibration images when no file is given.
        retrieval_images: images (x5 captions) of the synthetic FP16 retrieval set; None: 500, or 200
            at embed_size > 512 (the eager text reference dominates the export time at full size).
        int8_settings: how the INT8 graphs are made (`vsrn_deploy.export.int8`).
        seed: seed of all synthetic inputs.
        overwrite: write into a folder vsrn-deploy did not write (only the export's own files are
            replaced); an earlier export is rewritten without it.
        polygraphy_lint: also run `polygraphy check lint` on the written graphs (when polygraphy is
            installed; recorded as not run otherwise); `vsrn-deploy export` turns it on.
    """

    precision: str = "fp32"
    opset: int = graphs.DEFAULT_OPSET
    vocab: str | None = None
    calibration: str | None = None
    max_batch: int = 32
    max_tokens: int = 32
    fp16_margin: float = fp16.DEFAULT_MARGIN
    calibration_samples: int = 64
    retrieval_images: int | None = None
    int8_settings: int8.Int8Settings = int8.Int8Settings()
    seed: int = 0
    overwrite: bool = False
    polygraphy_lint: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise VsrnError(f"--precision must be one of {', '.join(PRECISIONS)} (got {self.precision!r})")
        top = min(graphs.MAX_OPSET, onnx.defs.onnx_opset_version())
        if not graphs.MIN_OPSET <= self.opset <= top:
            raise VsrnError(
                f"--opset must be in {graphs.MIN_OPSET}..{top}"
                f" (TensorRT {trt_lint.TRT_VERSION} parses up to {trt_lint.OPSET_RANGE[1]}); "
                f"got {self.opset}"
            )
        if not 1 <= self.max_batch <= contract.MAX_EXPORT_BATCH:
            raise VsrnError(f"--max-batch must be between 1 and {contract.MAX_EXPORT_BATCH} (got "
                            f"{self.max_batch}): the export runs a batch of that size through every graph "
                            "to check it (engines and "
                            "servers set their own batch limits: build-engine --max-batch, triton-repo)")
        if self.max_tokens < 2:
            raise VsrnError(f"max_tokens must be >= 2 (<start> and <end>), got {self.max_tokens}")

    @property
    def fp16(self) -> bool:
        return self.precision in ("fp16", "all")

    @property
    def with_int8(self) -> bool:
        return self.precision in ("int8", "all")

    @property
    def precisions(self) -> tuple[str, ...]:
        """The graph precisions this export writes (FP32 always)."""
        return ("fp32",) + (("fp16",) if self.fp16 else ()) + (("int8",) if self.with_int8 else ())


@dataclass
class ExportResult:
    """What `export_model` wrote and measured."""

    out_dir: Path
    files: dict[str, dict[str, Any]]
    manifest: dict[str, Any]
    parity: dict[str, Any]
    islands: dict[str, dict[str, str]]
    check_lines: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _versions() -> dict[str, str]:
    import onnxruntime

    from vsrn_deploy.core.version import __version__

    return {
        "vsrn_deploy": __version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _load_calibration(path: str, cfg: VSRNConfig, limit: int = 256) -> np.ndarray:
    arr = load_npy(path, "--calibration")
    want = (cfg.num_regions, cfg.img_dim)
    if arr.ndim != 3 or tuple(arr.shape[1:]) != want or arr.shape[0] < 1:
        raise VsrnError(
            f"--calibration {path} has shape {arr.shape}; expected (N, {want[0]}, {want[1]}) "
            "region features like the precomp *_ims.npy"
        )
    if not np.issubdtype(arr.dtype, np.floating):
        raise VsrnError(f"--calibration {path} has dtype {arr.dtype}; expected float region features")
    check_finite_features(arr, f"--calibration {path}")
    return np.ascontiguousarray(arr[:limit], dtype=np.float32)


@dataclass
class _Calibration:
    """What the FP16 ranges and the INT8 search calibrate on, made once per export."""

    images: np.ndarray  # (N <= 256, k, F) float32: --calibration's first images, or synthetic ones
    source: str  # how the manifest describes them
    text: dict[str, np.ndarray]  # a text feed of 64 synthetic captions

    @classmethod
    def make(cls, cfg: ExportConfig, mcfg: VSRNConfig, loaded: np.ndarray | None) -> _Calibration:
        if cfg.calibration:
            images = loaded if loaded is not None else _load_calibration(cfg.calibration, mcfg)
            source = cfg.calibration
        else:
            images = synthetic_inputs.region_features(cfg.calibration_samples, mcfg.num_regions, mcfg.img_dim,
                                                      seed=cfg.seed + 1000)
            source = f"synthetic ({cfg.calibration_samples} images, seed {cfg.seed + 1000})"
        text = synthetic_inputs.text_feed(synthetic_inputs.captions(
            64, mcfg.vocab_size, max_tokens=cfg.max_tokens, seed=cfg.seed + 2000))
        return cls(images, source, text)


# the provenance metadata_props of the export in progress (`export_loaded` sets it): every graph file
# the export writes carries them, so the sha256 the manifest records is that of the stamped file
_PROVENANCE: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("provenance",
                                                                                   default=None)


def _write_model(model: onnx.ModelProto, path: Path) -> None:
    props = _PROVENANCE.get()
    if props is not None:
        export_artifact.stamp_graph(model, props)
    if model.ByteSize() >= _TWO_GB:
        raise VsrnError(
            f"{path.name} would be {model.ByteSize() / 1e9:.2f} GB, over protobuf's 2 GB limit for "
            "one self-contained file; this model is larger than any VSRN"
        )
    onnx.save_model(model, str(path))


def _entries(cfg: ExportConfig, with_vocab: bool) -> list[str]:
    """The files an export with `cfg` writes (the manifest aside)."""
    names = [contract.onnx_name(spec.graph, p) for p in cfg.precisions for spec in contract.ENCODERS.values()]
    names += [test_vectors.FOLDER, export_artifact.MODEL_CARD]
    return [*names, contract.VOCAB_NAME] if with_vocab else names


def export_loaded(
    model: torch.nn.Module,
    vocab: Any,
    out_dir: str | os.PathLike[str],
    cfg: ExportConfig,
    *,
    source: dict[str, Any] | None = None,
    calibration: np.ndarray | None = None,
) -> ExportResult:
    """Export an in-memory VSRN (see `export_model`, which loads a checkpoint and calls this).

    Args:
        model: the eval-mode VSRN (its `img_enc` and `txt_enc` are the eager reference).
        vocab: a `vsrn_deploy.data.vocab.Vocabulary` (written as vocab.json), or None to skip.
        out_dir: the export folder.
        cfg: export options.
        source: {path, sha256, kind} of the checkpoint, for the manifest.
    Returns:
        The ExportResult.
    Raises:
        VsrnError: bad input. CheckFailed: a graph check or parity check missed.
    """
    say = _log.info
    t_start = time.perf_counter()
    mcfg: VSRNConfig = model.config
    out_dir = Path(out_dir)
    if cfg.calibration and calibration is None:  # refuse bad calibration data before anything is built
        calibration = _load_calibration(cfg.calibration, mcfg)
    entries = _entries(cfg, vocab is not None)
    inputs = [(source or {}).get("path"), cfg.vocab, cfg.calibration]
    model = model.float().eval()
    img_enc, txt_enc = model.img_enc, model.txt_enc

    token = _PROVENANCE.set(export_artifact.provenance((source or {}).get("sha256")))
    try:
        with export_artifact.KIND.writer(out_dir, entries=entries, overwrite=cfg.overwrite,
                                         input_files=inputs) as folder:
            result = _export_into(folder.staging, img_enc, txt_enc, vocab, mcfg, cfg, source, say,
                                  _Calibration.make(cfg, mcfg, calibration))
            folder.commit([*result.files, MANIFEST_NAME])
    finally:
        _PROVENANCE.reset(token)
    result.out_dir = out_dir
    result.seconds = time.perf_counter() - t_start
    say(f"exported to {out_dir} in {result.seconds:.1f} s")
    return result


@dataclass
class _Probe:
    """The synthetic inputs every graph is checked on: one image and one text feed per batch size."""

    batches: list[int]
    image: dict[int, dict[str, np.ndarray]]
    text: dict[int, dict[str, np.ndarray]]

    @classmethod
    def make(cls, mcfg: VSRNConfig, cfg: ExportConfig) -> _Probe:
        batches = sorted({1, 3, 5, cfg.max_batch})
        image = {b: synthetic_inputs.image_feed(synthetic_inputs.region_features(
            b, mcfg.num_regions, mcfg.img_dim, seed=cfg.seed + b)) for b in batches}
        text = {b: synthetic_inputs.text_feed(synthetic_inputs.captions(
            b, mcfg.vocab_size, max_tokens=cfg.max_tokens, seed=cfg.seed + b)) for b in batches}
        return cls(batches, image, text)

    def feeds(self, encoder: str) -> dict[int, dict[str, np.ndarray]]:
        """{batch size: feed} of `encoder` ("image" or "text")."""
        return self.image if encoder == contract.IMAGE.key else self.text


def _build_graphs(img_enc, txt_enc, cfg: ExportConfig,
                  say: Callable[[str], None]) -> dict[str, onnx.ModelProto]:
    """Stage 1: the deploy-form FP32 graphs, checked for hygiene and TensorRT compatibility."""
    t0 = time.perf_counter()
    with torch.no_grad():
        img_deploy = ImageEncoderDeploy.from_encoder(img_enc)
        txt_deploy = TextEncoderDeploy.from_encoder(txt_enc)
        models = {
            contract.IMAGE.graph: graphs.build_image_graph(img_deploy, cfg.opset),
            contract.TEXT.graph: graphs.build_text_graph(txt_deploy, cfg.opset),
        }
    say(f"built deploy-form graphs in {time.perf_counter() - t0:.1f} s")
    _check_graphs(models, "fp32")
    say("graph checks and TensorRT lint passed (fp32)")
    return models


def _check_graphs(models: dict[str, onnx.ModelProto], precision: str) -> None:
    suffix = "" if precision == "fp32" else f" ({precision})"
    for name, m in models.items():
        forbidden = graph_checks.FORBIDDEN_IMAGE_OPS if name == contract.IMAGE.graph else frozenset()
        graph_checks.assert_clean(m, f"{name}{suffix}", forbidden=forbidden)
        trt_lint.assert_trt_compatible(m, f"{name}{suffix}")


def _check_fp32(tmp: Path, models: dict[str, onnx.ModelProto], eager: dict[str, Runner], probe: _Probe,
                val: Validator, mcfg: VSRNConfig) -> dict[str, Path]:
    """Stage 2: write the FP32 graphs and check the written files against the eager model."""
    written = {}
    for spec in contract.ENCODERS.values():
        path = tmp / contract.onnx_name(spec.graph, "fp32")
        _write_model(models[spec.graph], path)
        written[spec.graph] = path
        with graph_runner(spec.key, path) as graph:
            io = spec.io_spec(mcfg)
            val.problems += check_io(graph.session, io["inputs"], io["outputs"], path.name)
            for b, feed in probe.feeds(spec.key).items():
                val.check(path.name, _ORT, b, eager[spec.key].infer_batched(feed), graph.infer(feed), "fp32")
    return written


def _calibrate_fp16(tmp: Path, models: dict[str, onnx.ModelProto], calib: _Calibration, cfg: ExportConfig,
                    say: Callable[[str], None]) -> tuple[dict[str, Path], dict[str, dict[str, str]], str]:
    """Stage 3: FP16 graphs with FP32 islands chosen from calibration ranges, checked and written.

    Returns:
        ({graph: written path}, {graph: {island node: reason}}, the calibration's description).
    """
    t1 = time.perf_counter()
    calib_source = calib.source
    feeds = {
        contract.IMAGE.graph: [synthetic_inputs.image_feed(calib.images[i : i + 16])
                               for i in range(0, len(calib.images), 16)],
        contract.TEXT.graph: [calib.text],
    }
    written, islands = {}, {}
    for name, m in models.items():
        chosen = fp16.choose_islands(m, fp16.record_ranges(m, feeds[name]), margin=cfg.fp16_margin)
        islands[name] = chosen
        m16 = fp16.convert_to_fp16(m, chosen)
        _check_graphs({name: m16}, "fp16")
        written[name] = tmp / contract.onnx_name(name, "fp16")
        _write_model(m16, written[name])
        n_range = sum(1 for r in chosen.values() if r.startswith("range"))
        say(f"{name}: {len(chosen)} FP32 island nodes ({n_range} from the range check) of "
            f"{len(m.graph.node)}")
    say(f"FP16 graphs written in {time.perf_counter() - t1:.1f} s (calibration: {calib_source})")
    return written, islands, calib_source


def _retrieval_set(eager: dict[str, Runner], mcfg: VSRNConfig, cfg: ExportConfig) -> tuple[dict, dict, tuple]:
    """The synthetic retrieval set (N images, 5 captions each) and its eager embeddings."""
    n = cfg.retrieval_images or (500 if mcfg.embed_size <= 512 else 200)
    images = synthetic_inputs.image_feed(
        synthetic_inputs.region_features(n, mcfg.num_regions, mcfg.img_dim, seed=cfg.seed + 3000))
    texts = synthetic_inputs.text_feed(synthetic_inputs.captions(
        CAPTIONS_PER_IMAGE * n, mcfg.vocab_size, max_tokens=cfg.max_tokens, seed=cfg.seed + 3001))
    ref = (eager["image"].infer_batched(images)[contract.IMAGE.embedding],
           eager["text"].infer_batched(texts)[contract.TEXT.embedding])
    return images, texts, ref


def _check_fp16(written: dict[str, Path], eager: dict[str, Runner], probe: _Probe, val: Validator,
                retrieval_set: Callable[[], tuple[dict, dict, tuple]]) -> dict[str, Any]:
    """Stage 3 (checks): the FP16 files in ONNX Runtime and the strict FP16 executor, per batch and
    on a synthetic retrieval set (N images, 5 captions each). Returns the retrieval summary."""
    strict = {}
    for spec in contract.ENCODERS.values():
        strict[spec.key] = emulate.StrictFp16Runner(spec.key, onnx.load(str(written[spec.graph])))
        strict[spec.key].batch = GRAPH_BATCH[spec.key]
    runtimes: dict[str, dict[str, Runner]] = {
        _ORT: {spec.key: graph_runner(spec.key, written[spec.graph]) for spec in contract.ENCODERS.values()},
        "strict-fp16": strict,
    }
    with contextlib.ExitStack() as stack:
        for runners in runtimes.values():
            for runner in runners.values():
                stack.enter_context(runner)
        for b in probe.batches:
            for runtime, runners in runtimes.items():
                for spec in contract.ENCODERS.values():
                    feed = probe.feeds(spec.key)[b]
                    val.check(written[spec.graph].name, runtime, b, eager[spec.key].infer_batched(feed),
                              runners[spec.key].infer(feed), "fp16")
        images, texts, ref = retrieval_set()
        n = len(ref[0])
        retrieval: dict[str, Any] = {"images": n, "captions": CAPTIONS_PER_IMAGE * n}
        for runtime, runners in runtimes.items():
            got = (runners["image"].infer_batched(images)[contract.IMAGE.embedding],
                   runners["text"].infer_batched(texts)[contract.TEXT.embedding])
            retrieval[runtime] = val.check_retrieval(runtime, ref, got, "fp16")
    return retrieval


def _write_manifest(tmp: Path, models: dict[str, onnx.ModelProto], written: dict[tuple[str, str], Path],
                    vocab: Any, val: Validator, probe: _Probe, retrieval: dict[str, Any] | None,
                    islands: dict[str, dict[str, str]], calib_source: str | None, mcfg: VSRNConfig,
                    cfg: ExportConfig, source: dict[str, Any] | None,
                    int8_entry: dict[str, Any] | None = None) -> ExportResult:
    """Stage 4: vocab.json and manifest.json (file hashes, I/O, islands, parity, versions)."""
    files: dict[str, dict[str, Any]] = {}
    for (_name, _prec), path in sorted(written.items()):
        files[path.name] = file_entry(path)
    if vocab is not None:
        vocab.save_json(tmp / contract.VOCAB_NAME)
        files[contract.VOCAB_NAME] = file_entry(tmp / contract.VOCAB_NAME)
    files.update(test_vectors.write_test_vectors(tmp, vocab, mcfg, seed=cfg.seed))
    graph_entries = {}
    for spec in contract.ENCODERS.values():
        entry: dict[str, Any] = {p: written[(spec.graph, p)].name for p in contract.PRECISIONS
                                 if (spec.graph, p) in written}
        entry.update(spec.io_spec(mcfg))
        entry["nodes"] = len(models[spec.graph].graph.node)
        graph_entries[spec.graph] = entry
    fp32_bounds, fp16_bounds = contract.PARITY["fp32"], contract.PARITY["fp16"]
    parity = {
        "bounds": {
            "fp32_max_abs_err": fp32_bounds.max_abs,
            "fp16_min_cosine": fp16_bounds.min_cosine,
            "recall_points": fp16_bounds.recall_delta,
            "top1_agreement": fp16_bounds.top1,
            "fp16_near_tie": fp16_bounds.near_tie,
            "int8": asdict(contract.PARITY["int8"]),
        },
        "batches": probe.batches,
        "max_tokens": cfg.max_tokens,
        "passed": True,
        "results": val.summary(),
        "retrieval": retrieval,
        "inputs": "synthetic sparse non-negative region features; captions of mixed lengths (2.."
        f"{cfg.max_tokens} tokens) in shuffled order",
    }
    manifest = ExportManifest(
        format_version=FORMAT_VERSION,
        written_by=marker("export"),
        config=asdict(mcfg),
        source=source or {},
        files=files,
        graphs=graph_entries,
        opset=cfg.opset,
        precision=cfg.precision,
        max_batch=cfg.max_batch,
        fp32_islands={name: list(chosen) for name, chosen in islands.items()},
        fp32_island_reasons=islands,
        fp16_policy={
            "margin": cfg.fp16_margin,
            "threshold": fp16.FP16_MAX / cfg.fp16_margin,
            "calibration": calib_source,
            "note": "FP16 weights and compute, float32 inputs/outputs; the text GRU node is an "
            "FP32 island; ONNX Runtime's CPU provider runs FP16 MatMul/Add/... by casting to FP32, so "
            "FP16 parity is also checked with the strict FP16 executor (strict-fp16)",
        }
        if cfg.fp16
        else None,
        int8=int8_entry,
        parity=parity,
        text_gru="ONNX GRU node, linear_before_reset=1, sequence_lens=lengths (dynamic tokens)",
        trt_lint={"tensorrt": trt_lint.TRT_VERSION, "source": trt_lint.TRT_DOC, "passed": True},
        versions=_versions(),
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    ).to_dict()
    card = tmp / export_artifact.MODEL_CARD  # what the graphs are, for a reader of the folder
    card.write_text(export_artifact.render_model_card(manifest), encoding="utf-8")
    files[export_artifact.MODEL_CARD] = file_entry(card)
    write_manifest(tmp, manifest)
    return ExportResult(out_dir=tmp, files=files, manifest=manifest, parity=parity, islands=islands,
                        check_lines=[line.format() for line in val.lines])


def _export_into(
    tmp: Path,
    img_enc,
    txt_enc,
    vocab,
    mcfg: VSRNConfig,
    cfg: ExportConfig,
    source: dict[str, Any] | None,
    say: Callable[[str], None],
    calib: _Calibration,
) -> ExportResult:
    """The export's stages, in order, into the staging folder `tmp`: build the graphs; write and
    check the FP32 ones; calibrate, write and check the FP16 ones; write vocab.json and the manifest."""
    models = _build_graphs(img_enc, txt_enc, cfg, say)
    # the eager reference: the training model's encoders as `torch` runners, loaded once
    encoders = types.SimpleNamespace(img_enc=img_enc, txt_enc=txt_enc)
    eager = {key: reference_runner(key, encoders) for key in contract.ENCODERS}
    probe, val = _Probe.make(mcfg, cfg), Validator(log=say)
    islands: dict[str, dict[str, str]] = {}
    calib_source = retrieval = int8_made = None
    with eager["image"], eager["text"]:
        written32 = _check_fp32(tmp, models, eager, probe, val, mcfg)
        written = {(name, "fp32"): path for name, path in written32.items()}
        retrieval_set = functools.cache(lambda: _retrieval_set(eager, mcfg, cfg))
        if cfg.fp16:
            written16, islands, calib_source = _calibrate_fp16(tmp, models, calib, cfg, say)
            written.update({(name, "fp16"): path for name, path in written16.items()})
            retrieval = _check_fp16(written16, eager, probe, val, retrieval_set)
        if cfg.with_int8:
            int8_made = int8.export_int8(
                models, tmp, settings=cfg.int8_settings, validator=val, write=_write_model, say=say,
                image_calibration=calib.images[:64], text_calibration=calib.text,
                inputs=int8.CheckInputs(probe.batches, probe.image, probe.text, eager, retrieval_set),
            )
            int8_made["manifest"]["calibration"] = calib.source  # what the INT8 search calibrated on
            written.update({(name, "int8"): path for name, path in int8_made["paths"].items()})
            retrieval = {**(retrieval or {}), **int8_made["retrieval"]}
    if not val.passed:
        raise CheckFailed("export validation failed (nothing was written):\n  " + "\n  ".join(val.failures()))
    say("validation passed")
    result = _write_manifest(tmp, models, written, vocab, val, probe, retrieval, islands, calib_source, mcfg,
                             cfg, source, int8_made["manifest"] if int8_made else None)
    if cfg.polygraphy_lint:  # optional stage 5: polygraphy check lint, recorded in the manifest
        from vsrn_deploy.export import polygraphy_lint

        graph_files = sorted(p.name for p in written.values())
        result.manifest["polygraphy_lint"] = polygraphy_lint.check_export(tmp, graph_files, say)
        write_manifest(tmp, result.manifest)
    return result


def export_model(
    checkpoint: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] = "export",
    cfg: ExportConfig | None = None,
) -> ExportResult:
    """Export a checkpoint's encoders to checked ONNX graphs.

    Args:
        checkpoint: a vsrn-deploy checkpoint or one of the authors' `model_best.pth.tar` files.
        out_dir: the export folder (image_encoder.onnx, text_encoder.onnx, vocab.json, manifest.json,
            and the .fp16.onnx graphs for precision fp16/all).
        cfg: export options (defaults: ExportConfig()).
    Returns:
        The ExportResult.
    Raises:
        VsrnError: missing/hostile/unrelated checkpoint, vocabulary mismatch, bad options (exit 2).
        CheckFailed: a graph or parity check missed (exit 1); nothing is written then.
    """
    from vsrn_deploy.model.checkpoint import load_checkpoint, resolve_vocab

    cfg = cfg or ExportConfig()
    path = require_file(checkpoint, "checkpoint")
    if cfg.calibration:
        require_file(cfg.calibration, "--calibration")
        if not (cfg.fp16 or cfg.with_int8):
            raise VsrnError("--calibration calibrates the FP16 islands and the INT8 search; add --precision "
                            "fp16, int8 or all, or drop --calibration")
    if cfg.vocab:
        require_file(cfg.vocab, "--vocab")
    # the output is checked before the checkpoint is read: a bad --out costs nothing
    export_artifact.KIND.writer(out_dir, entries=_entries(cfg, True), overwrite=cfg.overwrite,
                                input_files=[path, cfg.vocab, cfg.calibration])
    say = _log.info
    t0 = time.perf_counter()
    loaded = load_checkpoint(path, map_location="cpu")
    vocab, _ = resolve_vocab(loaded, cfg.vocab)
    # bad calibration data is refused before the first progress line (and read only here)
    calibration = _load_calibration(cfg.calibration, loaded.config) if cfg.calibration else None
    say(
        f"loaded {loaded.kind} checkpoint {path} ({loaded.config.variant} variant, "
        f"D={loaded.config.embed_size}) "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    source = {"path": str(path), "sha256": loaded.sha256, "kind": loaded.kind}
    return export_loaded(loaded.model, vocab, out_dir, cfg, source=source, calibration=calibration)
