"""Cross-backend validation: every backend against the eager FP32 model on the same inputs.

For each backend, both encoders run on the same images and captions as the reference (`torch`,
the training model in FP32), and the report holds, per backend:
- abs error of every output (max / mean / p99) and the row cosine of the embeddings (min / mean);
- top-1 agreement: how often the backend's best match (image->caption and caption->image) is the
  reference's, counting a pick whose reference score is within `tie_tol` of the reference's best
  as agreeing; `tie_tol` is twice the backend's largest similarity error, capped at 1e-3 (FP16)
  or 1e-6 (FP32): swapping candidates closer than the measured noise is not a ranking change.
  The raw rate is reported too;
- R@1/5/10 in both directions (the authors' protocol, `vsrn_deploy.evaluation`), the raw deltas
  to the reference's in points, and the points that changed beyond such near-ties (queries whose
  hit at K flipped although the reference's ground truth is not within `tie_tol` of the cut-off).

Thresholds (issue 4's, exit 1 on a miss): FP32 backends: max abs error <= 1e-5 (1e-4 for TensorRT
FP32 plans, whose kernels sum in a different order than the CPU); FP16 backends: min row cosine
>= 0.9995, R@1/5/10 changed by at most 0.2 points beyond near-ties (each direction and K), top-1
agreement >= 99% in both directions. INT8 backends (`ort-int8`): the contract's `PARITY["int8"]`
bounds, checked the same way as FP16's.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vsrn_deploy.backend.base import BACKENDS, OUTPUT_NAMES
from vsrn_deploy.contract import PARITY
from vsrn_deploy.errors import VsrnError

REFERENCE = "torch"
RECALL_KEYS = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10")
CAPTIONS_PER_IMAGE = 5

Log = Callable[[str], None]


@dataclass(frozen=True)
class Thresholds:
    """Pass/fail bounds; FP32 bounds apply to FP32 backends, FP16 / INT8 bounds to FP16 / INT8 ones."""

    fp32_max_abs: float = 1e-5
    trt_fp32_max_abs: float = 1e-4
    fp16_min_cosine: float = 0.9995
    fp16_recall_delta: float = 0.2  # points (R@K is in percent)
    fp16_top1: float = 0.99
    tie_tol_fp32: float = 1e-6  # caps of the near-tie tolerance (see the module docstring)
    tie_tol_fp16: float = 1e-3
    int8_min_cosine: float = PARITY["int8"].min_cosine
    int8_recall_delta: float = PARITY["int8"].recall_delta
    int8_top1: float = PARITY["int8"].top1
    tie_tol_int8: float = PARITY["int8"].near_tie


@dataclass(frozen=True)
class ValidateConfig:
    """What `run_validation` compares. Either `data` (a precomp folder) or `synthetic` images."""

    checkpoint: str | None = None
    onnx_dir: str = "export"
    engine_dir: str = "engines"
    backends: tuple[str, ...] = ("torch", "ort", "ort-fp16")
    data: str | None = None
    split: str = "test"
    limit: int | None = 1000
    synthetic: int | None = None
    vocab: str | None = None
    batch_size: int = 32
    device: str = "cpu"
    threads: int | None = None
    seed: int = 0
    thresholds: Thresholds = field(default_factory=Thresholds)

    def __post_init__(self) -> None:
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

def synthetic_features(n: int, num_regions: int, feature_dim: int, seed: int = 0) -> np.ndarray:
    """Region features shaped like bottom-up-attention ones: non-negative (post-ReLU), sparse
    (about 60% zeros), heavy-tailed, with a per-image scale so images differ in norm.

    Returns:
        float32 (n, num_regions, feature_dim).
    """
    rng = np.random.default_rng(seed)
    shape = (n, num_regions, feature_dim)
    active = rng.random(shape) < 0.4
    values = rng.gamma(shape=0.7, scale=1.5, size=shape)  # mean ~1, tail up to ~15-20
    scale = rng.uniform(0.5, 1.5, size=(n, 1, 1))
    return (np.where(active, values, 0.0) * scale).astype(np.float32)


def synthetic_captions(n_images: int, vocab_size: int, *, max_tokens: int | None = None, seed: int = 0,
                       vocab: Any = None) -> list[list[int]]:
    """5 captions per image, as ids with <start>=1 first and <end>=2 last.

    With a vocabulary, captions are random strings of its words encoded by `vocab.encode` (so the
    tokenizer path runs); without, ids are drawn from [4, vocab_size). Lengths vary from a short
    one (3 tokens) to the longest allowed, so padding and mixed lengths are exercised.
    """
    rng = np.random.default_rng(seed + 1)
    hi = min(max_tokens or 24, 24)
    words = None
    if vocab is not None:
        words = [w for i, w in sorted(vocab.idx2word.items()) if i >= 4 and w.isalpha()]
        words = words or None
    captions = []
    for j in range(n_images * CAPTIONS_PER_IMAGE):
        n_tok = 3 if j == 0 else hi if j == 1 else int(rng.integers(5, hi + 1))
        if words is not None:
            text = " ".join(words[int(k)] for k in rng.integers(0, len(words), n_tok - 2))
            ids = list(vocab.encode(text))[:hi]
            ids[-1] = 2  # keep <end> last if the tokenizer split a word in two
        else:
            ids = [1, *rng.integers(4, max(vocab_size, 5), n_tok - 2).tolist(), 2]
        captions.append(ids)
    return captions


def load_inputs(cfg: ValidateConfig, model_config: Any, vocab: Any, max_tokens: int | None) -> Inputs:
    """The images and captions to compare on: a precomp split or synthetic ones."""
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
        features = np.asarray(split.features[:n_img], dtype=np.float32)
        caps = [list(vocab.encode(c)) for c in split.captions[: n_img * per]]
        if max_tokens:
            caps = [c if len(c) <= max_tokens else c[: max_tokens - 1] + [c[-1]] for c in caps]
        return Inputs(features, caps, f"{cfg.data}:{cfg.split} ({n_img} images)")
    n = cfg.synthetic or 500
    features = synthetic_features(n, model_config.num_regions, model_config.img_dim, cfg.seed)
    caps = synthetic_captions(n, model_config.vocab_size, max_tokens=max_tokens, seed=cfg.seed, vocab=vocab)
    return Inputs(features, caps, f"synthetic ({n} images, seed {cfg.seed})")


def pad_batch(captions: list[list[int]]) -> dict[str, np.ndarray]:
    """Id lists -> {"token_ids": (B, T) int64 padded with 0, "lengths": (B,) int64}."""
    from vsrn_deploy.vocab import pad_ids

    ids, lengths = pad_ids(captions)
    return {"token_ids": ids, "lengths": lengths}


def encode_all(runners: dict[str, Any], inputs: Inputs, batch_size: int) -> dict[str, np.ndarray]:
    """Run the image and text runners over all inputs in batches; outputs concatenated by name."""
    outs: dict[str, list[np.ndarray]] = {n: [] for e in ("image", "text") for n in OUTPUT_NAMES[e]}
    for start in range(0, len(inputs.features), batch_size):
        res = runners["image"].infer({"region_features": inputs.features[start:start + batch_size]})
        for name in OUTPUT_NAMES["image"]:
            outs[name].append(res[name])
    for start in range(0, len(inputs.captions), batch_size):
        res = runners["text"].infer(pad_batch(inputs.captions[start:start + batch_size]))
        outs["text_embedding"].append(res["text_embedding"])
    return {n: np.concatenate(v) for n, v in outs.items()}


# --- metrics -----------------------------------------------------------------------------------

def abs_error_stats(ref: np.ndarray, got: np.ndarray) -> dict[str, float]:
    """max / mean / p99 of |got - ref|."""
    if ref.shape != got.shape:
        raise VsrnError(f"output shape {got.shape} differs from the reference's {ref.shape}")
    err = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    if not np.all(np.isfinite(err)):
        return {"max": float("inf"), "mean": float("inf"), "p99": float("inf")}
    return {"max": float(err.max()), "mean": float(err.mean()), "p99": float(np.percentile(err, 99))}


def row_cosine(ref: np.ndarray, got: np.ndarray) -> np.ndarray:
    """Cosine of each row of `got` with the same row of `ref` (rows flattened past axis 0)."""
    a = ref.reshape(len(ref), -1).astype(np.float64)
    b = got.reshape(len(got), -1).astype(np.float64)
    num = (a * b).sum(1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    same = np.where(np.linalg.norm(a - b, axis=1) == 0, 1.0, 0.0)  # two zero rows agree
    cos = np.where(den > 0, num / np.maximum(den, 1e-300), same)
    return np.nan_to_num(cos, nan=-1.0)


def top1_agreement(ref_sims: np.ndarray, got_sims: np.ndarray, tie_tol: float) -> dict[str, float]:
    """Share of queries whose best match agrees with the reference's, per direction.

    Args:
        ref_sims, got_sims: (n_images, n_captions) similarity matrices.
        tie_tol: a backend pick whose reference score is within this of the reference's best
            counts as agreeing (near-ties in the reference are not ranking changes).

    Returns:
        {"i2t", "t2i"} tie-aware rates and {"i2t_raw", "t2i_raw"} exact-argmax rates.
    """
    out = {}
    for name, ref, got in (("i2t", ref_sims, got_sims), ("t2i", ref_sims.T, got_sims.T)):
        pick = got.argmax(1)
        best = ref.argmax(1)
        rows = np.arange(len(ref))
        out[f"{name}_raw"] = float((pick == best).mean())
        out[name] = float((ref[rows, pick] >= ref[rows, best] - tie_tol).mean())
    return out


def _gt_ranks(sims: np.ndarray, tol: float) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per query, the authors' rank of the ground truth, and its range under score noise of `tol`.

    Returns:
        {"i2t": (rank, rank_lo, rank_hi), "t2i": (...)}: rank counts candidates scoring strictly
        above the ground truth (i2t: the best of an image's 5 captions); rank_lo only those above
        by more than `tol`, rank_hi those above it minus `tol` (near-ties may go either way).
    """
    n_img, n_cap = sims.shape
    per = n_cap // n_img
    out = {}
    gt_i2t = sims.reshape(n_img, n_img, per)[np.arange(n_img), np.arange(n_img)]  # (n_img, per)
    above = [(sims[:, None, :] > gt_i2t[:, :, None] + d).sum(-1) for d in (0.0, tol, -tol)]
    out["i2t"] = (above[0].min(1), above[1].min(1), (above[2] - 1).min(1))  # -1: the caption itself
    gt_t2i = sims[np.arange(n_cap) // per, np.arange(n_cap)]  # (n_cap,)
    above = [(sims > gt_t2i[None, :] + d).sum(0) for d in (0.0, tol, -tol)]
    out["t2i"] = (above[0], above[1], above[2] - 1)
    return out


def unexplained_recall_flips(ref_sims: np.ndarray, got_sims: np.ndarray, tol: float) -> dict[str, float]:
    """Points of R@K (per direction and K) that change for reasons other than near-ties.

    A query whose hit-or-miss at K differs from the reference's counts, unless the reference's own
    rank range under `tol` straddles K (the ground truth ties a candidate at the cut-off within the
    backend's numeric noise). Gains and losses both count, so they cannot cancel.
    """
    ref_r = _gt_ranks(ref_sims, tol)
    got_r = _gt_ranks(got_sims, 0.0)
    out = {}
    for direction in ("i2t", "t2i"):
        rank, lo, hi = ref_r[direction]
        got = got_r[direction][0]
        for k in (1, 5, 10):
            flipped = (got < k) != (rank < k)
            ambiguous = (lo < k) & (hi >= k)
            out[f"{direction}_r{k}"] = float(100.0 * (flipped & ~ambiguous).sum() / len(rank))
    return out


def recall(images: np.ndarray, captions: np.ndarray) -> dict[str, float]:
    """R@1/5/10 both directions (percent) and rsum, per the authors' protocol."""
    from vsrn_deploy.evaluation import recall_report

    rep = recall_report(images, captions)
    return {k: float(rep[k]) for k in (*RECALL_KEYS, "rsum")}


def backend_precision(backend: str, runner: Any) -> str:
    """'fp16', 'int8' or 'fp32': what the backend runs, hence which thresholds apply."""
    if backend == "ort-fp16":
        return "fp16"
    if backend == "ort-int8":
        return "int8"
    if backend == "trt":
        return getattr(runner, "precision", "fp16")
    dtype = getattr(runner, "dtype", None)
    if dtype is not None and "16" in str(dtype):
        return "fp16"
    return "fp32"


def compare(backend: str, precision: str, ref: dict[str, np.ndarray], got: dict[str, np.ndarray],
            ref_recall: dict[str, float], th: Thresholds) -> dict[str, Any]:
    """All metrics of one backend against the reference, with pass/fail and the failures listed."""
    outputs = {n: abs_error_stats(ref[n], got[n]) for n in ref}
    cos = np.concatenate([row_cosine(ref[n], got[n]) for n in ("image_embedding", "text_embedding")])
    ref_sims = ref["image_embedding"] @ ref["text_embedding"].T
    got_sims = got["image_embedding"] @ got["text_embedding"].T
    # A near-tie is a reference gap the backend's own measured similarity error can explain
    # (twice its largest error), capped per precision so a sloppy backend earns no extra slack.
    sim_err = float(np.abs(got_sims - ref_sims).max()) if ref_sims.size else 0.0
    cap = {"fp16": th.tie_tol_fp16, "int8": th.tie_tol_int8}.get(precision, th.tie_tol_fp32)
    tie_tol = min(cap, 2.0 * sim_err)
    top1 = top1_agreement(ref_sims, got_sims, tie_tol)
    rec = recall(got["image_embedding"], got["text_embedding"])
    delta = {k: rec[k] - ref_recall[k] for k in rec}
    flips = unexplained_recall_flips(ref_sims, got_sims, tie_tol)
    result: dict[str, Any] = {
        "precision": precision,
        "max_abs_err": max(o["max"] for o in outputs.values()),
        "mean_abs_err": float(np.mean([o["mean"] for o in outputs.values()])),
        "p99_abs_err": max(o["p99"] for o in outputs.values()),
        "min_cosine": float(cos.min()),
        "mean_cosine": float(cos.mean()),
        "top1_agreement": min(top1["i2t"], top1["t2i"]),
        "top1": top1,
        "similarity_max_abs_err": sim_err,
        "tie_tol": tie_tol,
        "recall": rec,
        "recall_delta": delta,
        "recall_flips_beyond_ties": flips,
        "outputs": outputs,
    }
    failures = []
    if precision == "fp32":
        bound = th.trt_fp32_max_abs if backend == "trt" else th.fp32_max_abs
        if not result["max_abs_err"] <= bound:
            failures.append(f"max abs error {result['max_abs_err']:.3g} > {bound:g}")
    else:
        min_cos, recall_delta, min_top1 = (
            (th.int8_min_cosine, th.int8_recall_delta, th.int8_top1) if precision == "int8"
            else (th.fp16_min_cosine, th.fp16_recall_delta, th.fp16_top1))
        if not result["min_cosine"] >= min_cos:
            failures.append(f"min row cosine {result['min_cosine']:.6f} < {min_cos}")
        bad = {k: round(flips[k], 3) for k in RECALL_KEYS if not flips[k] <= recall_delta}
        if bad:
            failures.append(f"R@K changed beyond near-ties by more than {recall_delta} points: "
                            f"{bad} (raw deltas {({k: round(delta[k], 2) for k in RECALL_KEYS})})")
        if not result["top1_agreement"] >= min_top1:
            failures.append(f"top-1 agreement {result['top1_agreement']:.4f} < {min_top1}")
    result["failures"] = failures
    result["passed"] = not failures
    return result


# --- the run -----------------------------------------------------------------------------------

def _resolve_checkpoint(cfg: ValidateConfig) -> str:
    if cfg.checkpoint:
        if not Path(cfg.checkpoint).is_file():
            raise VsrnError(f"checkpoint not found: {cfg.checkpoint}")
        return cfg.checkpoint
    manifest = Path(cfg.onnx_dir) / "manifest.json"
    if manifest.is_file():
        try:
            source = json.loads(manifest.read_text()).get("source", {}).get("path")
        except ValueError:
            source = None
        if source and Path(source).is_file():
            return str(source)
        raise VsrnError(f"no --checkpoint given and the one {manifest} names ({source}) is not there; "
                        "pass --checkpoint")
    raise VsrnError(f"no --checkpoint given and no export manifest at {manifest} to find one; "
                    "pass --checkpoint")


def _max_tokens(onnx_dir: str) -> int | None:
    manifest = Path(onnx_dir) / "manifest.json"
    if manifest.is_file():
        try:
            value = json.loads(manifest.read_text()).get("text_max_tokens")
            return int(value) if value else None
        except (ValueError, TypeError):
            return None
    return None


def run_validation(cfg: ValidateConfig, *, model: Any = None, vocab: Any = None,
                   log: Log | None = None) -> dict[str, Any]:
    """Encode the same inputs with every backend and compare each with the reference.

    Args:
        cfg: what to compare (see `ValidateConfig`).
        model: a loaded VSRN (skips loading `cfg.checkpoint`).
        vocab: a Vocabulary (default: `cfg.vocab`, else the checkpoint's, else <onnx_dir>/vocab.json).
        log: progress lines.

    Returns:
        The report: {"passed", "reference", "inputs", "thresholds", "reference_recall",
        "backends": {name: {...}}, "versions"}.
    """
    from vsrn_deploy.backend.registry import make_runner

    log = log or (lambda _msg: None)
    checkpoint = None
    if model is None:
        from vsrn_deploy.checkpoint import load_checkpoint

        checkpoint = _resolve_checkpoint(cfg)
        loaded = load_checkpoint(checkpoint)
        model = loaded.model
        if vocab is None and cfg.vocab is None:
            vocab = loaded.vocab
    if vocab is None:  # an explicit --vocab wins over the checkpoint's, then the export's
        from vsrn_deploy.vocab import load_vocab

        path = cfg.vocab or (Path(cfg.onnx_dir) / "vocab.json")
        if cfg.vocab and not Path(path).is_file():
            raise VsrnError(f"vocabulary not found: {path}")
        if Path(path).is_file():
            vocab = load_vocab(path)
    inputs = load_inputs(cfg, model.config, vocab, _max_tokens(cfg.onnx_dir))
    log(f"inputs: {inputs.source}")

    common = {"onnx_dir": cfg.onnx_dir, "engine_dir": cfg.engine_dir, "threads": cfg.threads}

    def run(backend: str) -> tuple[dict[str, np.ndarray], str]:
        device = cfg.device if backend != "trt" else ("cuda" if cfg.device == "cpu" else cfg.device)
        runners = {e: make_runner(backend, e, model=model, device=device, **common)
                   for e in ("image", "text")}
        with runners["image"], runners["text"]:
            outs = encode_all(runners, inputs, cfg.batch_size)
        return outs, backend_precision(backend, runners["image"])

    ref, _ = run(REFERENCE)
    ref_recall = recall(ref["image_embedding"], ref["text_embedding"])
    log(f"{REFERENCE}: rsum {ref_recall['rsum']:.1f}")
    results: dict[str, Any] = {}
    for backend in dict.fromkeys(cfg.backends):
        if backend == REFERENCE:
            results[backend] = compare(backend, "fp32", ref, ref, ref_recall, cfg.thresholds)
            continue
        got, precision = run(backend)
        results[backend] = compare(backend, precision, ref, got, ref_recall, cfg.thresholds)
        r = results[backend]
        log(f"{backend}: max abs {r['max_abs_err']:.3g}, min cos {r['min_cosine']:.6f}, "
            f"{'pass' if r['passed'] else 'FAIL: ' + '; '.join(r['failures'])}")
    return {
        "passed": all(r["passed"] for r in results.values()),
        "reference": REFERENCE,
        "checkpoint": checkpoint,
        "inputs": {"source": inputs.source, "images": int(len(inputs.features)),
                   "captions": len(inputs.captions)},
        "thresholds": asdict(cfg.thresholds),
        "reference_recall": ref_recall,
        "backends": results,
        "versions": _versions(),
    }


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "machine": platform.machine()}
    for pkg in ("numpy", "torch", "onnxruntime", "tensorrt"):
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
    from vsrn_deploy.engine.sidecar import atomic_write_bytes

    atomic_write_bytes(Path(path), (json.dumps(report, indent=2) + "\n").encode())
