"""Cross-backend validation: every backend against the eager FP32 model on the same inputs.

For each backend, both encoders run on the same images and captions as the reference (`torch`,
the training model in FP32), and `vsrn_deploy.evaluation.compare` (the comparator export-time validation uses
too) measures, per backend: the abs error of every output (max / mean / p99), the row cosine of
the embeddings (min / mean), top-1 agreement in both directions (raw and near-tie aware), and
R@1/5/10 in both directions (the authors' protocol) with the raw deltas to the reference's and the
points that changed beyond near-ties.

Pass/fail (exit 1 on a miss) is `vsrn_deploy.core.contract.PARITY` of the backend's precision: FP32
backends bound the max abs error (`TRT_FP32_MAX_ABS` for TensorRT FP32 plans, whose kernels sum in
a different order than the CPU); FP16 backends bound the min row cosine, the R@K points changed
beyond near-ties (each direction and K) and the tie-aware top-1 agreement. A near-tie is a fixed
per-precision bound (`near_tie`), never scaled by the backend's own error.
`python -m vsrn_deploy.core.contract` prints the bounds.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vsrn_deploy.backend.base import BACKENDS, OUTPUT_NAMES
from vsrn_deploy.core import backends as _backends
from vsrn_deploy.core.contract import IMAGE, PARITY, PRECISIONS, TEXT, TRT_FP32_MAX_ABS
from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.data import synthetic_inputs
from vsrn_deploy.evaluation import compare
from vsrn_deploy.evaluation.recall import CAPTIONS_PER_IMAGE
from vsrn_deploy.io.inputs import check_finite_features

REFERENCE = _backends.REFERENCE
RECALL_KEYS = compare.RECALL_KEYS

_log = logging.getLogger(__name__)  # progress lines; the command line shows them on stderr


def thresholds() -> dict[str, float | None]:
    """The bounds validate applies (the report's "thresholds"), read from `contract.PARITY`."""
    fp32, fp16, int8 = PARITY["fp32"], PARITY["fp16"], PARITY["int8"]
    return {"fp32_max_abs": fp32.max_abs, "trt_fp32_max_abs": TRT_FP32_MAX_ABS,
            "fp16_min_cosine": fp16.min_cosine, "fp16_recall_delta": fp16.recall_delta,
            "fp16_top1": fp16.top1, "tie_tol_fp32": fp32.near_tie, "tie_tol_fp16": fp16.near_tie,
            "int8_min_cosine": int8.min_cosine, "int8_recall_delta": int8.recall_delta,
            "int8_top1": int8.top1, "tie_tol_int8": int8.near_tie}


@dataclass(frozen=True)
class ValidateConfig:
    """What `run_validation` compares. Either `data` (a precomp folder) or `synthetic` images."""

    checkpoint: str | None = None
    onnx_dir: str = "export"
    engine_dir: str = "engines"
    backends: tuple[str, ...] = _backends.defaults("validate")
    data: str | None = None
    split: str = "test"
    limit: int | None = 1000
    synthetic: int | None = None
    vocab: str | None = None
    batch_size: int = 32
    device: str = "cpu"
    threads: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.backends:
            raise VsrnError(f"--backends is empty: nothing would be checked; name at least one of "
                            f"{', '.join(BACKENDS)}")
        if self.limit is not None and self.limit < 1:
            raise VsrnError(f"--limit must be >= 1 (got {self.limit}); leave it out to use every image")
        if self.threads is not None and self.threads < 1:
            raise VsrnError(f"--threads must be >= 1 (got {self.threads}); leave it out for the default")
        if self.device not in ("cpu", "cuda") and not (self.device.startswith("cuda:")
                                                       and self.device[5:].isdigit()):
            raise VsrnError(f"--device {self.device!r} is not a device vsrn-deploy runs on; use cpu or cuda")
        unknown = [b for b in self.backends if b not in BACKENDS]
        if unknown:
            raise VsrnError(f"unknown backends {unknown}; choose from {', '.join(BACKENDS)}")
        if self.data and self.synthetic:
            raise VsrnError("give --data or --synthetic, not both")
        if self.synthetic is not None and self.synthetic < 10:
            raise VsrnError(f"--synthetic needs at least 10 images for recall@10, got {self.synthetic}")
        if self.batch_size < 1:
            raise VsrnError(f"--batch-size must be >= 1, got {self.batch_size}")


@dataclass
class Inputs:
    """Images and captions to encode: features (N, k, F); captions as id lists, 5 per image."""

    features: np.ndarray
    captions: list[list[int]]
    source: str


# --- inputs ------------------------------------------------------------------------------------

def load_inputs(cfg: ValidateConfig, model_config: Any, vocab: Any) -> Inputs:
    """The images and captions to compare on: a precomp split or synthetic ones
    (`vsrn_deploy.data.synthetic_inputs`; captions of 3..24 tokens, from the vocabulary's words when
    there is one)."""
    if cfg.data:
        from vsrn_deploy.data.precomp import PrecompSplit

        if vocab is None:
            raise VsrnError("--data needs a vocabulary to encode its captions: pass --vocab, or a "
                            "checkpoint or export folder that has one")
        split = PrecompSplit(cfg.data, cfg.split)
        n_img = split.n_images if cfg.limit is None else min(split.n_images, cfg.limit)
        per = split.captions_per_image
        if per != CAPTIONS_PER_IMAGE:
            raise VsrnError(f"validate needs 5 captions per image; {cfg.data} has {per}")
        want = (model_config.num_regions, model_config.img_dim)
        if (split.num_regions, split.feature_dim) != want:
            raise VsrnError(f"--data {cfg.data} has {split.num_regions} x {split.feature_dim} features "
                            f"but the model takes {want[0]} x {want[1]}; pass the data this model was "
                            "trained for, or its checkpoint")
        features = np.asarray(split.features[:n_img], dtype=np.float32)
        check_finite_features(features, f"--data {cfg.data}:{cfg.split}")
        caps = [list(vocab.encode(c)) for c in split.captions[: n_img * per]]
        return Inputs(features, caps, f"{cfg.data}:{cfg.split} ({n_img} images)")
    n = cfg.synthetic or 500
    features = synthetic_inputs.region_features(n, model_config.num_regions, model_config.img_dim, cfg.seed)
    caps = synthetic_inputs.captions(CAPTIONS_PER_IMAGE * n, model_config.vocab_size, min_tokens=3,
                                     max_tokens=24, seed=cfg.seed + 1, vocab=vocab)
    return Inputs(features, caps, f"synthetic ({n} images, seed {cfg.seed})")


def encode_all(runners: dict[str, Any], inputs: Inputs, batch_size: int) -> dict[str, np.ndarray]:
    """Run the image and text runners over all inputs in batches; outputs concatenated by name."""
    outs: dict[str, list[np.ndarray]] = {n: [] for e in ("image", "text") for n in OUTPUT_NAMES[e]}
    for start in range(0, len(inputs.features), batch_size):
        res = runners["image"].infer(synthetic_inputs.image_feed(inputs.features[start:start + batch_size]))
        for name in OUTPUT_NAMES["image"]:
            outs[name].append(res[name])
    for start in range(0, len(inputs.captions), batch_size):
        res = runners["text"].infer(synthetic_inputs.text_feed(inputs.captions[start:start + batch_size]))
        for name in OUTPUT_NAMES["text"]:
            outs[name].append(res[name])
    return {n: np.concatenate(v) for n, v in outs.items()}


# --- metrics -----------------------------------------------------------------------------------

def backend_precision(backend: str, runner: Any) -> str:
    """'fp16', 'int8' or 'fp32': what the backend runs, hence which thresholds apply: the runner's
    own `precision` (a graph's, a plan's), else its torch `dtype`, else the table row's."""
    value = getattr(runner, "precision", None)
    if value in PRECISIONS:
        return str(value)
    dtype = getattr(runner, "dtype", None)
    if dtype is not None:
        return "fp16" if "16" in str(dtype) else "fp32"
    return _backends.get(backend).precision


def compare_backend(backend: str, precision: str, ref: dict[str, np.ndarray], got: dict[str, np.ndarray],
                    ref_recall: dict[str, float]) -> dict[str, Any]:
    """All metrics of one backend against the reference, with pass/fail and the failures listed: the
    verdict is `compare.judge`'s (the export's checks' too) under the backend's bounds at `precision`;
    the row cosine is the embeddings' (image and text), NaN/Inf rows of any output fail."""
    embeddings = (IMAGE.embedding, TEXT.embedding)
    retrieval = compare.compare_retrieval(tuple(ref[n] for n in embeddings),
                                          tuple(got[n] for n in embeddings), precision, ref_recall=ref_recall)
    verdict = compare.judge(precision, ref, got, retrieval=retrieval, cosine_outputs=embeddings,
                            bounds=_backends.get(backend).parity(precision))
    measured = verdict.measured
    outputs = {n: {k: measured["outputs"][n][k] for k in ("max", "mean", "p99")} for n in measured["outputs"]}
    return {
        "precision": precision,
        "max_abs_err": measured["max_abs_err"],
        "mean_abs_err": measured["mean_abs_err"],
        "p99_abs_err": measured["p99_abs_err"],
        "min_cosine": measured["min_cosine"],
        "mean_cosine": measured["mean_cosine"],
        "non_finite_rows": measured["non_finite_rows"],
        "top1_agreement": retrieval["top1_agreement"],
        "top1_agreement_raw": retrieval["top1_agreement_raw"],
        "top1": retrieval["top1"],
        "similarity_max_abs_err": retrieval["similarity_max_abs_err"],
        "tie_tol": retrieval["near_tie"],
        "recall": retrieval["recall"],
        "recall_delta": retrieval["recall_delta"],
        "recall_flips_beyond_ties": retrieval["recall_flips_beyond_ties"],
        "outputs": outputs,
        "failures": verdict.failures,
        "passed": verdict.passed,
    }


# --- the run -----------------------------------------------------------------------------------

def _resolve_checkpoint(cfg: ValidateConfig) -> str:
    if cfg.checkpoint:
        if not Path(cfg.checkpoint).is_file():
            raise VsrnError(f"checkpoint not found: {cfg.checkpoint}")
        return cfg.checkpoint
    from vsrn_deploy.artifacts.export import source_checkpoint

    manifest = Path(cfg.onnx_dir) / "manifest.json"
    if manifest.is_file():
        source = source_checkpoint(cfg.onnx_dir)
        if source and Path(source).is_file():
            return str(source)
        raise VsrnError(f"no --checkpoint given and the one {manifest} names ({source}) is not there; "
                        "pass --checkpoint")
    raise VsrnError(f"no --checkpoint given and no export manifest at {manifest} to find one; "
                    "pass --checkpoint")


def run_validation(cfg: ValidateConfig, *, model: Any = None, vocab: Any = None) -> dict[str, Any]:
    """Encode the same inputs with every backend and compare each with the reference.

    Args:
        cfg: what to compare (see `ValidateConfig`).
        model: a loaded VSRN (skips loading `cfg.checkpoint`).
        vocab: a Vocabulary (default: `cfg.vocab`, else the checkpoint's, else <onnx_dir>/vocab.json).

    Returns:
        The report: {"passed", "reference", "inputs", "thresholds", "reference_recall",
        "backends": {name: {...}}, "versions"}.
    """
    from vsrn_deploy.artifacts.export import check_export_matches_model, verify_export
    from vsrn_deploy.backend.registry import make_runner
    from vsrn_deploy.io.inputs import check_device

    check_device(cfg.device)

    checkpoint = loaded = None
    reference, model_config = REFERENCE, None
    torch_free = model is None and importlib.util.find_spec("torch") is None
    if torch_free:  # the package alone: compare non-torch backends, the first as the reference
        reference, model_config, vocab = _torch_free_reference(cfg, vocab)
        if any(_backends.get(b).runs_export for b in cfg.backends):
            verify_export(cfg.onnx_dir)  # no model to hold it against: its own manifest only
    else:
        from vsrn_deploy.model.checkpoint import load_checkpoint, resolve_vocab

        if model is None:
            checkpoint = _resolve_checkpoint(cfg)
            loaded = load_checkpoint(checkpoint)
            model = loaded.model
        if vocab is None:  # --vocab, else the checkpoint's, else the export's (optional for synthetic inputs)
            vocab, _ = resolve_vocab(loaded, cfg.vocab, export_dir=cfg.onnx_dir,
                                     vocab_size=model.config.vocab_size, required=False)
        if any(_backends.get(b).runs_export for b in cfg.backends):
            # the export is checked against its manifest and the model before any backend uses it
            check_export_matches_model(cfg.onnx_dir, verify_export(cfg.onnx_dir), model.config, checkpoint)
    inputs = load_inputs(cfg, model_config or model.config, vocab)
    _log.info(f"inputs: {inputs.source}")

    common = {"onnx_dir": cfg.onnx_dir, "engine_dir": cfg.engine_dir, "threads": cfg.threads}

    def run(backend: str) -> tuple[dict[str, np.ndarray], str]:
        device = _backends.get(backend).device_for(cfg.device)
        runners = {e: make_runner(backend, e, model=model, device=device, **common)
                   for e in ("image", "text")}
        with runners["image"], runners["text"]:
            outs = encode_all(runners, inputs, cfg.batch_size)
        return outs, backend_precision(backend, runners["image"])

    if torch_free:
        return _compare_all(cfg, run, inputs, checkpoint, reference)
    import torch

    previous_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)  # process-global: set here, restored below
    try:
        return _compare_all(cfg, run, inputs, checkpoint, reference)
    finally:
        torch.set_num_threads(previous_threads)


def _torch_free_reference(cfg: ValidateConfig, vocab: Any) -> tuple[str, Any, Any]:
    """Without torch: the first listed backend (an FP32 one) is the reference, the export's manifest
    gives the model sizes and the vocabulary is --vocab or the export's; a torch backend or a
    checkpoint is refused with the install hint. Returns (reference, sizes, vocab)."""
    import types

    from vsrn_deploy.artifacts.export import read_export_manifest
    from vsrn_deploy.core.errors import torch_missing
    from vsrn_deploy.data.vocab import load_vocab

    wanted = ([b for b in cfg.backends if not _backends.get(b).torch_free]
              or (["--checkpoint"] if cfg.checkpoint else []))
    if wanted:
        raise torch_missing(f"validate with {', '.join(wanted)} (or compare non-torch backends only, the "
                            "first as the reference: --backends ort,ort-fp16)")
    if _backends.get(cfg.backends[0]).precision != PRECISIONS[0]:
        raise VsrnError("without torch the first backend is the reference: list an FP32 one first, "
                        f"e.g. --backends ort,{cfg.backends[0]}")
    config = read_export_manifest(cfg.onnx_dir).get("config") or {}
    try:
        sizes = {key: int(config[key]) for key in ("num_regions", "img_dim", "vocab_size")}
    except (KeyError, TypeError, ValueError):
        raise VsrnError(f"{cfg.onnx_dir}/manifest.json lacks the model config; re-run the export") from None
    if vocab is None:
        path = Path(cfg.vocab) if cfg.vocab else Path(cfg.onnx_dir) / "vocab.json"
        if cfg.vocab and not path.is_file():
            raise VsrnError(f"vocabulary not found: {path}")
        vocab = load_vocab(path) if path.is_file() else None
    return cfg.backends[0], types.SimpleNamespace(**sizes), vocab


def _compare_all(cfg: ValidateConfig, run: Callable[[str], tuple[dict[str, np.ndarray], str]],
                 inputs: Inputs, checkpoint: str | None, reference: str) -> dict[str, Any]:
    ref, _ = run(reference)
    ref_recall = compare.recall(ref[IMAGE.embedding], ref[TEXT.embedding])
    _log.info(f"{reference}: rsum {ref_recall['rsum']:.1f}")
    results: dict[str, Any] = {}
    for backend in dict.fromkeys(cfg.backends):
        if backend == reference:
            results[backend] = compare_backend(backend, "fp32", ref, ref, ref_recall)
            continue
        got, precision = run(backend)
        results[backend] = compare_backend(backend, precision, ref, got, ref_recall)
        r = results[backend]
        _log.info(f"{backend}: max abs {r['max_abs_err']:.3g}, min cos {r['min_cosine']:.6f}, "
            f"{'pass' if r['passed'] else 'FAIL: ' + '; '.join(r['failures'])}")
    return {
        "passed": all(r["passed"] for r in results.values()),
        "reference": reference,
        "checkpoint": checkpoint,
        "inputs": {"source": inputs.source, "images": int(len(inputs.features)),
                   "captions": len(inputs.captions)},
        "thresholds": thresholds(),
        "reference_recall": ref_recall,
        "backends": results,
        "versions": _versions(),
    }


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "machine": platform.machine()}
    for pkg in ("numpy", *(f.value for f in _backends.Family)):  # the backends' runtimes
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            continue
    return out


def format_report(report: dict[str, Any]) -> str:
    """A fixed-width table: one row per backend."""
    head = (f"{'backend':14s} {'prec':5s} {'max_abs':>9s} {'p99_abs':>9s} {'min_cos':>9s} {'top1':>7s} "
            f"{'dR@1 i2t':>9s} {'dR@1 t2i':>9s} {'rsum':>7s}  result")
    lines = [f"inputs: {report['inputs']['source']}; reference {report['reference']} "
             f"(rsum {report['reference_recall']['rsum']:.2f})", head, "-" * len(head)]
    for name, r in report["backends"].items():
        lines.append(
            f"{name:14s} {r['precision']:5s} {r['max_abs_err']:9.2e} {r['p99_abs_err']:9.2e} "
            f"{r['min_cosine']:9.6f} {100 * r['top1_agreement']:6.2f}% {r['recall_delta']['i2t_r1']:+9.2f} "
            f"{r['recall_delta']['t2i_r1']:+9.2f} {r['recall']['rsum']:7.2f}  "
            f"{'pass' if r['passed'] else 'FAIL: ' + '; '.join(r['failures'])}")
    lines.append("PASSED" if report["passed"] else "FAILED")
    return "\n".join(lines)


def write_report(report: dict[str, Any], path: str | os.PathLike) -> None:
    """Write the JSON report atomically."""
    from vsrn_deploy.io.files import atomic_write_json

    atomic_write_json(path, report)
