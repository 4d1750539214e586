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

import functools
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from vsrn_deploy.config import VSRNConfig
from vsrn_deploy.contract import PARITY, onnx_name
from vsrn_deploy.errors import CheckFailed, VsrnError
from vsrn_deploy.export import emulate, fp16, graph_checks, graphs, int8, trt_lint
from vsrn_deploy.export.deploy import ImageEncoderDeploy, TextEncoderDeploy
from vsrn_deploy.export.manifest import FORMAT_VERSION, MANIFEST_NAME, file_entry, write_manifest
from vsrn_deploy.export.validation import (
    Validator,
    check_io,
    retrieval_metrics,
    synthetic_captions,
    synthetic_region_features,
)

PRECISIONS = ("fp32", "fp16", "int8", "all")
FILES = {
    ("image_encoder", "fp32"): "image_encoder.onnx",
    ("text_encoder", "fp32"): "text_encoder.onnx",
    ("image_encoder", "fp16"): "image_encoder.fp16.onnx",
    ("text_encoder", "fp16"): "text_encoder.fp16.onnx",
    **{(g, "int8"): onnx_name(g, "int8") for g in ("image_encoder", "text_encoder")},
}
_TWO_GB = 2 * 1024**3


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
        fp16_policy_islands / fp16_range_islands: switch the two island rules (tests only).
        calibration_samples: synthetic calibration images when no file is given.
        retrieval_images: images (x5 captions) of the synthetic FP16 retrieval set; None: 500, or 200
            at embed_size > 512 (the eager text reference dominates the export time at full size).
        int8_settings: how the INT8 graphs are made (`vsrn_deploy.export.int8`).
        seed: seed of all synthetic inputs.
        overwrite: replace an existing export folder.
    """

    precision: str = "fp32"
    opset: int = graphs.DEFAULT_OPSET
    vocab: str | None = None
    calibration: str | None = None
    max_batch: int = 32
    max_tokens: int = 32
    fp16_margin: float = fp16.DEFAULT_MARGIN
    fp16_policy_islands: bool = True
    fp16_range_islands: bool = True
    calibration_samples: int = 64
    retrieval_images: int | None = None
    int8_settings: int8.Int8Settings = int8.Int8Settings()
    seed: int = 0
    overwrite: bool = True

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
        if self.max_batch < 1:
            raise VsrnError(f"--max-batch must be >= 1 (got {self.max_batch})")
        if self.max_tokens < 2:
            raise VsrnError(f"max_tokens must be >= 2 (<start> and <end>), got {self.max_tokens}")

    @property
    def fp16(self) -> bool:
        return self.precision in ("fp16", "all")

    @property
    def with_int8(self) -> bool:
        return self.precision in ("int8", "all")


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


def _image_spec(cfg: VSRNConfig) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": "region_features", "dtype": "float", "shape": ["batch", cfg.num_regions, cfg.img_dim]}
        ],
        "outputs": [
            {"name": "image_embedding", "dtype": "float", "shape": ["batch", cfg.embed_size]},
            {
                "name": "region_embeddings",
                "dtype": "float",
                "shape": ["batch", cfg.num_regions, cfg.embed_size],
            },
        ],
        "dynamic_axes": {
            "region_features": {"0": "batch"},
            "image_embedding": {"0": "batch"},
            "region_embeddings": {"0": "batch"},
        },
    }


def _text_spec(cfg: VSRNConfig) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": "token_ids", "dtype": "int64", "shape": ["batch", "tokens"]},
            {"name": "lengths", "dtype": "int64", "shape": ["batch"]},
        ],
        "outputs": [{"name": "text_embedding", "dtype": "float", "shape": ["batch", cfg.embed_size]}],
        "dynamic_axes": {
            "token_ids": {"0": "batch", "1": "tokens"},
            "lengths": {"0": "batch"},
            "text_embedding": {"0": "batch"},
        },
    }


def _versions() -> dict[str, str]:
    import onnxruntime

    from vsrn_deploy import __version__

    return {
        "vsrn_deploy": __version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _session(path_or_model: Path | onnx.ModelProto, threads: int = 2):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    data = str(path_or_model) if isinstance(path_or_model, Path) else path_or_model.SerializeToString()
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def _resolve_vocab(loaded: Any, cfg: ExportConfig, checkpoint: Path) -> Any:
    """The vocabulary to ship: --vocab, else the checkpoint's, else where the authors kept it."""
    from vsrn_deploy.checkpoint import find_authors_vocab
    from vsrn_deploy.vocab import load_vocab

    model_cfg: VSRNConfig = loaded.config
    if cfg.vocab is not None:
        if not Path(cfg.vocab).is_file():
            raise VsrnError(f"--vocab {cfg.vocab}: no such file")
        vocab, source = load_vocab(cfg.vocab), cfg.vocab
    elif loaded.vocab is not None:
        vocab, source = loaded.vocab, loaded.vocab_path or "checkpoint"
    else:
        opt = (loaded.train_state or {}).get("authors_opt") or {}
        found = find_authors_vocab(
            model_cfg.data_name, checkpoint_path=checkpoint, vocab_path=opt.get("vocab_path")
        )
        if found is None:
            raise VsrnError(
                f"{checkpoint} carries no vocabulary and none was found where the authors keep "
                f"it ({opt.get('vocab_path') or 'vocab'}/{model_cfg.data_name}_vocab.pkl); "
                "pass one with --vocab PATH"
            )
        vocab, source = load_vocab(found), str(found)
    if len(vocab) != model_cfg.vocab_size:
        raise VsrnError(
            f"vocabulary {source} has {len(vocab)} words but the model's embedding table has "
            f"{model_cfg.vocab_size} rows: it belongs to another model; pass the right one with --vocab"
        )
    return vocab


def _load_calibration(path: str, cfg: VSRNConfig, limit: int = 256) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise VsrnError(f"--calibration {path}: no such file")
    try:
        arr = np.load(p, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise VsrnError(f"--calibration {path} is not a readable .npy array ({exc})") from None
    want = (cfg.num_regions, cfg.img_dim)
    if arr.ndim != 3 or tuple(arr.shape[1:]) != want or arr.shape[0] < 1:
        raise VsrnError(
            f"--calibration {path} has shape {arr.shape}; expected (N, {want[0]}, {want[1]}) "
            "region features like the precomp *_ims.npy"
        )
    if not np.issubdtype(arr.dtype, np.floating):
        raise VsrnError(f"--calibration {path} has dtype {arr.dtype}; expected float region features")
    return np.ascontiguousarray(arr[:limit], dtype=np.float32)


def _write_model(model: onnx.ModelProto, path: Path) -> None:
    if model.ByteSize() >= _TWO_GB:
        raise VsrnError(
            f"{path.name} would be {model.ByteSize() / 1e9:.2f} GB, over protobuf's 2 GB limit for "
            "one self-contained file; this model is larger than any VSRN"
        )
    onnx.save_model(model, str(path))


def export_loaded(
    model: torch.nn.Module,
    vocab: Any,
    out_dir: str | os.PathLike[str],
    cfg: ExportConfig,
    *,
    source: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export an in-memory VSRN (see `export_model`, which loads a checkpoint and calls this).

    Args:
        model: the eval-mode VSRN (its `img_enc` and `txt_enc` are the eager reference).
        vocab: a `vsrn_deploy.vocab.Vocabulary` (written as vocab.json), or None to skip.
        out_dir: the export folder.
        cfg: export options.
        source: {path, sha256, kind} of the checkpoint, for the manifest.
        progress: called with one line per step.
    Returns:
        The ExportResult.
    Raises:
        VsrnError: bad input. CheckFailed: a graph check or parity check missed.
    """
    say = progress or (lambda _msg: None)
    t_start = time.perf_counter()
    mcfg: VSRNConfig = model.config
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise VsrnError(f"--out {out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not (out_dir / MANIFEST_NAME).is_file():
            raise VsrnError(
                f"--out {out_dir} is a non-empty folder that is not a vsrn-deploy export; "
                "choose another folder"
            )
        if not cfg.overwrite:
            raise VsrnError(f"--out {out_dir} already holds an export")
    model = model.float().eval()
    img_enc, txt_enc = model.img_enc, model.txt_enc

    parent = out_dir.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=parent))
    try:
        result = _export_into(tmp, model, img_enc, txt_enc, vocab, mcfg, cfg, source, say)
        # swap into place: the old export (if any) leaves only after the new one is complete
        old = None
        if out_dir.exists():
            old = parent / f".{out_dir.name}.old-{os.getpid()}"
            os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    result.out_dir = out_dir
    result.seconds = time.perf_counter() - t_start
    say(f"exported to {out_dir} in {result.seconds:.1f} s")
    return result


def _export_into(
    tmp: Path,
    model,
    img_enc,
    txt_enc,
    vocab,
    mcfg: VSRNConfig,
    cfg: ExportConfig,
    source: dict[str, Any] | None,
    say: Callable[[str], None],
) -> ExportResult:
    t0 = time.perf_counter()
    with torch.no_grad():
        img_deploy = ImageEncoderDeploy.from_encoder(img_enc)
        txt_deploy = TextEncoderDeploy.from_encoder(txt_enc)
    fp32_models = {
        "image_encoder": graphs.build_image_graph(img_deploy, cfg.opset),
        "text_encoder": graphs.build_text_graph(txt_deploy, cfg.opset),
    }
    say(f"built deploy-form graphs in {time.perf_counter() - t0:.1f} s")
    forbidden = {"image_encoder": graph_checks.FORBIDDEN_IMAGE_OPS, "text_encoder": frozenset()}
    for name, m in fp32_models.items():
        graph_checks.assert_clean(m, name, forbidden=forbidden[name])
        trt_lint.assert_trt_compatible(m, name)
    say("graph checks and TensorRT lint passed (fp32)")

    written: dict[tuple[str, str], Path] = {}
    for name, m in fp32_models.items():
        path = tmp / FILES[(name, "fp32")]
        _write_model(m, path)
        written[(name, "fp32")] = path

    # the eager reference runs in chunks: row results do not depend on the batch, and large
    # batches of small recurrent ops are many times slower on a shared CPU
    def eager_image(x: np.ndarray, chunk: int = 64) -> dict[str, np.ndarray]:
        embs, regions = [], []
        with torch.no_grad():
            for i in range(0, len(x), chunk):
                emb, reg = img_enc(torch.from_numpy(x[i : i + chunk]))
                embs.append(emb.numpy())
                regions.append(reg.numpy())
        return {"image_embedding": np.concatenate(embs), "region_embeddings": np.concatenate(regions)}

    def eager_text(ids: np.ndarray, lengths: np.ndarray, chunk: int = 256) -> dict[str, np.ndarray]:
        out = []
        with torch.no_grad():
            for i in range(0, len(ids), chunk):
                out.append(
                    txt_enc(torch.from_numpy(ids[i : i + chunk]), torch.from_numpy(lengths[i : i + chunk]))
                )
        return {"text_embedding": torch.cat(out).numpy()}

    batches = sorted({1, 3, 5, cfg.max_batch})
    k, fdim = mcfg.num_regions, mcfg.img_dim
    val = Validator(log=say)
    specs = {"image_encoder": _image_spec(mcfg), "text_encoder": _text_spec(mcfg)}
    feats = {b: synthetic_region_features(b, k, fdim, seed=cfg.seed + b) for b in batches}
    caps = {b: synthetic_captions(b, mcfg.vocab_size, cfg.max_tokens, seed=cfg.seed + b) for b in batches}
    refs_img = {b: eager_image(feats[b]) for b in batches}
    refs_txt = {b: eager_text(*caps[b]) for b in batches}

    # FP32 parity, from the written files
    sessions = {}
    for name in fp32_models:
        path = written[(name, "fp32")]
        sess = _session(path)
        sessions[(name, "fp32")] = sess
        val.problems += check_io(sess, specs[name]["inputs"], specs[name]["outputs"], path.name)
    for b in batches:
        out = sessions[("image_encoder", "fp32")].run(None, {"region_features": feats[b]})
        val.compare_fp32(
            "image_encoder.onnx",
            "ort",
            b,
            refs_img[b],
            dict(zip(("image_embedding", "region_embeddings"), out, strict=True)),
        )
        ids, lengths = caps[b]
        out = sessions[("text_encoder", "fp32")].run(None, {"token_ids": ids, "lengths": lengths})
        val.compare_fp32("text_encoder.onnx", "ort", b, refs_txt[b], {"text_embedding": out[0]})

    @functools.cache
    def retrieval_set():  # synthetic retrieval set: N images, 5 captions each, with eager metrics
        n = cfg.retrieval_images or (500 if mcfg.embed_size <= 512 else 200)
        r_feats = synthetic_region_features(n, k, fdim, seed=cfg.seed + 3000)
        r_ids, r_lens = synthetic_captions(5 * n, mcfg.vocab_size, cfg.max_tokens, seed=cfg.seed + 3001)
        ref = retrieval_metrics(
            eager_image(r_feats)["image_embedding"], eager_text(r_ids, r_lens)["text_embedding"]
        )
        return r_feats, (r_ids, r_lens), ref

    islands: dict[str, dict[str, str]] = {}
    if cfg.fp16:
        t1 = time.perf_counter()
        if cfg.calibration:
            calib = _load_calibration(cfg.calibration, mcfg)
            calib_source = cfg.calibration
        else:
            calib = synthetic_region_features(cfg.calibration_samples, k, fdim, seed=cfg.seed + 1000)
            calib_source = f"synthetic ({cfg.calibration_samples} images, seed {cfg.seed + 1000})"
        img_feeds = [{"region_features": calib[i : i + 16]} for i in range(0, len(calib), 16)]
        cids, clens = synthetic_captions(64, mcfg.vocab_size, cfg.max_tokens, seed=cfg.seed + 2000)
        txt_feeds = [{"token_ids": cids, "lengths": clens}]
        for name, feeds in (("image_encoder", img_feeds), ("text_encoder", txt_feeds)):
            ranges = fp16.record_ranges(fp32_models[name], feeds)
            chosen = fp16.choose_islands(
                fp32_models[name],
                ranges,
                margin=cfg.fp16_margin,
                use_policy=cfg.fp16_policy_islands,
                use_ranges=cfg.fp16_range_islands,
            )
            islands[name] = chosen
            m16 = fp16.convert_to_fp16(fp32_models[name], chosen)
            graph_checks.assert_clean(m16, f"{name} (fp16)", forbidden=forbidden[name])
            trt_lint.assert_trt_compatible(m16, f"{name} (fp16)")
            path = tmp / FILES[(name, "fp16")]
            _write_model(m16, path)
            written[(name, "fp16")] = path
            sessions[(name, "fp16")] = _session(path)
            n_range = sum(1 for r in chosen.values() if r.startswith("range"))
            say(
                f"{name}: {len(chosen)} FP32 island nodes ({n_range} from the range check) of "
                f"{len(fp32_models[name].graph.node)}"
            )
        say(f"FP16 graphs written in {time.perf_counter() - t1:.1f} s (calibration: {calib_source})")
        m16s = {name: onnx.load(str(written[(name, "fp16")])) for name in fp32_models}
        for b in batches:
            for runtime in ("ort", "strict-fp16"):
                if runtime == "ort":
                    out = sessions[("image_encoder", "fp16")].run(None, {"region_features": feats[b]})
                    got = dict(zip(("image_embedding", "region_embeddings"), out, strict=True))
                    ids, lengths = caps[b]
                    got_t = {
                        "text_embedding": sessions[("text_encoder", "fp16")].run(
                            None, {"token_ids": ids, "lengths": lengths}
                        )[0]
                    }
                else:
                    got = emulate.run_strict(m16s["image_encoder"], {"region_features": feats[b]})
                    got_t = emulate.run_strict(
                        m16s["text_encoder"], {"token_ids": caps[b][0], "lengths": caps[b][1]}
                    )
                val.compare_fp16("image_encoder.fp16.onnx", runtime, b, refs_img[b], got)
                val.compare_fp16("text_encoder.fp16.onnx", runtime, b, refs_txt[b], got_t)
        r_feats, (r_ids, r_lens), ref = retrieval_set()
        n = len(r_feats)
        img16 = np.concatenate(
            [
                sessions[("image_encoder", "fp16")].run(None, {"region_features": r_feats[i : i + 32]})[0]
                for i in range(0, n, 32)
            ]
        )
        txt16 = sessions[("text_encoder", "fp16")].run(None, {"token_ids": r_ids, "lengths": r_lens})[0]
        retrieval = {
            "images": n,
            "captions": 5 * n,
            "ort": val.compare_retrieval("ort", ref, retrieval_metrics(img16, txt16)),
        }
        img16s = np.concatenate(
            [
                emulate.run_strict(m16s["image_encoder"], {"region_features": r_feats[i : i + 32]})[
                    "image_embedding"
                ]
                for i in range(0, n, 32)
            ]
        )
        txt16s = emulate.run_strict(m16s["text_encoder"], {"token_ids": r_ids, "lengths": r_lens})[
            "text_embedding"
        ]
        retrieval["strict-fp16"] = val.compare_retrieval(
            "strict-fp16", ref, retrieval_metrics(img16s, txt16s)
        )
    else:
        retrieval = None
    int8_made = None
    if cfg.with_int8:
        calib8 = (_load_calibration(cfg.calibration, mcfg, limit=64) if cfg.calibration else
                  synthetic_region_features(cfg.calibration_samples, k, fdim, seed=cfg.seed + 1000))
        int8_made = int8.export_int8(
            fp32_models, tmp, settings=cfg.int8_settings, validator=val, write=_write_model, say=say,
            image_calibration=calib8,
            text_calibration=synthetic_captions(64, mcfg.vocab_size, cfg.max_tokens, seed=cfg.seed + 2000),
            inputs=int8.CheckInputs(feats, caps, refs_img, refs_txt, retrieval_set),
        )
        written.update({(name, "int8"): path for name, path in int8_made["paths"].items()})
        retrieval = {**(retrieval or {}), **int8_made["retrieval"]}

    if not val.passed:
        raise CheckFailed("export validation failed (nothing was written):\n  " + "\n  ".join(val.failures()))
    say("validation passed")

    files: dict[str, dict[str, Any]] = {}
    for (_name, _prec), path in sorted(written.items()):
        files[path.name] = file_entry(path)
    if vocab is not None:
        vocab.save_json(tmp / "vocab.json")
        files["vocab.json"] = file_entry(tmp / "vocab.json")
    graph_entries = {}
    for name in fp32_models:
        entry: dict[str, Any] = {"fp32": FILES[(name, "fp32")]}
        if cfg.fp16:
            entry["fp16"] = FILES[(name, "fp16")]
        if cfg.with_int8:
            entry["int8"] = FILES[(name, "int8")]
        entry.update(specs[name])
        entry["nodes"] = len(fp32_models[name].graph.node)
        graph_entries[name] = entry
    parity = {
        "bounds": {
            "fp32_max_abs_err": 1e-5,
            "fp16_min_cosine": 0.9995,
            "recall_points": 0.2,
            "top1_agreement": 0.99,
            "int8": asdict(PARITY["int8"]),
        },
        "batches": batches,
        "max_tokens": cfg.max_tokens,
        "passed": True,
        "results": val.summary(),
        "retrieval": retrieval,
        "inputs": "synthetic sparse non-negative region features; captions of mixed lengths (2.."
        f"{cfg.max_tokens} tokens) in shuffled order",
    }
    manifest = {
        "format_version": FORMAT_VERSION,
        "config": asdict(mcfg),
        "source": source or {},
        "files": files,
        "graphs": graph_entries,
        "opset": cfg.opset,
        "precision": cfg.precision,
        "max_batch": cfg.max_batch,
        "fp32_islands": {name: list(chosen) for name, chosen in islands.items()},
        "fp32_island_reasons": islands,
        "fp16_policy": {
            "margin": cfg.fp16_margin,
            "threshold": fp16.FP16_MAX / cfg.fp16_margin,
            "calibration": calib_source if cfg.fp16 else None,
            "note": "FP16 weights and compute, float32 inputs/outputs; the text GRU node is an "
            "FP32 island; ONNX Runtime's CPU provider runs FP16 MatMul/Add/... by casting to FP32, so "
            "FP16 parity is also checked with the strict FP16 executor (strict-fp16)",
        }
        if cfg.fp16
        else None,
        "int8": int8_made["manifest"] if int8_made else None,
        "parity": parity,
        "text_max_tokens": None,
        "text_gru": "ONNX GRU node, linear_before_reset=1, sequence_lens=lengths (dynamic tokens)",
        "trt_lint": {"tensorrt": trt_lint.TRT_VERSION, "source": trt_lint.TRT_DOC, "passed": True},
        "versions": _versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_manifest(tmp, manifest)
    return ExportResult(
        out_dir=tmp,
        files=files,
        manifest=manifest,
        parity=parity,
        islands=islands,
        check_lines=[line.format() for line in val.lines],
    )


def export_model(
    checkpoint: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] = "export",
    cfg: ExportConfig | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export a checkpoint's encoders to checked ONNX graphs.

    Args:
        checkpoint: a vsrn-deploy checkpoint or one of the authors' `model_best.pth.tar` files.
        out_dir: the export folder (image_encoder.onnx, text_encoder.onnx, vocab.json, manifest.json,
            and the .fp16.onnx graphs for precision fp16/all).
        cfg: export options (defaults: ExportConfig()).
        progress: called with one line per step.
    Returns:
        The ExportResult.
    Raises:
        VsrnError: missing/hostile/unrelated checkpoint, vocabulary mismatch, bad options (exit 2).
        CheckFailed: a graph or parity check missed (exit 1); nothing is written then.
    """
    from vsrn_deploy.checkpoint import load_checkpoint

    cfg = cfg or ExportConfig()
    path = Path(checkpoint)
    if not path.is_file():
        raise VsrnError(f"checkpoint {path} not found")
    say = progress or (lambda _msg: None)
    t0 = time.perf_counter()
    loaded = load_checkpoint(path, map_location="cpu")
    vocab = _resolve_vocab(loaded, cfg, path)
    say(
        f"loaded {loaded.kind} checkpoint {path} ({loaded.config.variant} variant, "
        f"D={loaded.config.embed_size}) "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    source = {"path": str(path), "sha256": loaded.sha256, "kind": loaded.kind}
    return export_loaded(loaded.model, vocab, out_dir, cfg, source=source, progress=progress)
