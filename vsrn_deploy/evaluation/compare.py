"""The one comparator: a backend's outputs against the reference's (eager torch FP32), numpy only.

Export-time validation (`vsrn_deploy.export.validation`) and `vsrn-deploy validate` both measure
with these functions and judge with `vsrn_deploy.core.contract.PARITY`, so the same name always means
the same number.

- Abs error: |got - ref| over every element of an output (max / mean / p99), in float64.
- Row cosine: the cosine of each vector along the last axis (an embedding row; for
  region_embeddings each region's vector), in float64. Two all-zero rows agree (1.0); a zero row
  against a non-zero one does not (0.0); a row holding NaN or Inf on either side counts as -1.
- Similarities: images @ captions.T of l2-normalised embeddings; captions 5i..5i+4 belong to image i.
- Near-tie: two candidates whose reference similarities differ by less than the precision's
  `near_tie` (`PARITY[p].near_tie`, fixed; never scaled by the backend's own error). Picking either
  of them is not a ranking change.
- Top-1 agreement: the share of queries (each image, each caption) whose best match under the
  backend is the reference's best; raw (exact argmax) and tie-aware (a pick within `near_tie` of
  the reference's best agrees) are both reported, the tie-aware one is judged.
- Recall: R@1/5/10 both directions and rsum with the authors' protocol (`vsrn_deploy.evaluation.recall`);
  raw deltas to the reference's are reported, and the points that changed beyond near-ties (a
  query's hit at K flipped although the reference's ground truth is not within `near_tie` of the
  cut-off) are judged; gains and losses both count, so they cannot cancel.
- Non-finite rows: a row (last-axis vector) holding NaN or Inf fails, at every precision.

`judge` is the one pass rule: it applies a precision's bounds to these measures and returns a
`Verdict` (passed, the checks made, the failures with reasons, the measured numbers); the export's
checks (`vsrn_deploy.export.validation.Validator`, FP32, FP16 and INT8 alike) and `validate`
(`vsrn_deploy.jobs.validate.compare_backend`) take their verdicts from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vsrn_deploy.core.contract import PARITY, ParityBounds
from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.evaluation.recall import recall_report_from_sims

RECALL_KEYS = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10")


def abs_error_stats(ref: np.ndarray, got: np.ndarray) -> dict[str, float]:
    """max / mean / p99 of |got - ref| (inf when any is not finite; zeros for empty arrays).

    Raises:
        VsrnError: the shapes differ.
    """
    if ref.shape != got.shape:
        raise VsrnError(f"output shape {got.shape} differs from the reference's {ref.shape}")
    if ref.size == 0:
        return {"max": 0.0, "mean": 0.0, "p99": 0.0}
    err = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    if not np.all(np.isfinite(err)):
        return {"max": float("inf"), "mean": float("inf"), "p99": float("inf")}
    return {"max": float(err.max()), "mean": float(err.mean()), "p99": float(np.percentile(err, 99))}


def row_cosine(ref: np.ndarray, got: np.ndarray) -> np.ndarray:
    """Cosine of each last-axis vector of `got` with the same vector of `ref` (see the module doc)."""
    a = ref.reshape(-1, ref.shape[-1]).astype(np.float64)
    b = got.reshape(-1, got.shape[-1]).astype(np.float64)
    num = (a * b).sum(1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    both_zero = ~np.any(a, axis=1) & ~np.any(b, axis=1)
    finite = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
    with np.errstate(all="ignore"):
        cos = np.where(den > 0, num / np.maximum(den, 1e-300), np.where(both_zero, 1.0, 0.0))
    return np.where(finite, np.nan_to_num(cos, nan=-1.0), -1.0)


def similarities(images: np.ndarray, captions: np.ndarray) -> np.ndarray:
    """(n_images, n_captions) similarity matrix in float64."""
    return images.astype(np.float64) @ captions.astype(np.float64).T


def top1_agreement(ref_sims: np.ndarray, got_sims: np.ndarray, near_tie: float) -> dict[str, float]:
    """Share of queries whose best match agrees with the reference's, per direction.

    Args:
        ref_sims, got_sims: (n_images, n_captions) similarity matrices.
        near_tie: a backend pick whose reference score is within this of the reference's best
            agrees (swapping near-ties is not a ranking change).

    Returns:
        {"i2t", "t2i"} tie-aware rates and {"i2t_raw", "t2i_raw"} exact-argmax rates.
    """
    out = {}
    for name, ref, got in (("i2t", ref_sims, got_sims), ("t2i", ref_sims.T, got_sims.T)):
        pick = got.argmax(1)
        best = ref.argmax(1)
        rows = np.arange(len(ref))
        out[f"{name}_raw"] = float((pick == best).mean())
        out[name] = float((ref[rows, pick] >= ref[rows, best] - near_tie).mean())
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


def unexplained_recall_flips(ref_sims: np.ndarray, got_sims: np.ndarray, near_tie: float) -> dict[str, float]:
    """Points of R@K (per direction and K) that change for reasons other than near-ties.

    A query whose hit-or-miss at K differs from the reference's counts, unless the reference's own
    rank range under `near_tie` straddles K. Gains and losses both count.
    """
    ref_r = _gt_ranks(ref_sims, near_tie)
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
    return _recall_of(similarities(images, captions))


def _recall_of(sims: np.ndarray) -> dict[str, float]:
    rep = recall_report_from_sims(sims)
    return {k: float(rep[k]) for k in (*RECALL_KEYS, "rsum")}


def compare_retrieval(ref: tuple[np.ndarray, np.ndarray], got: tuple[np.ndarray, np.ndarray],
                      precision: str, *, ref_recall: dict[str, float] | None = None) -> dict[str, Any]:
    """Retrieval of `got` (image, caption embeddings) against `ref` on the same images and captions.

    Args:
        ref, got: (images (N, D), captions (5N, D)) each.
        precision: the backend's precision; its `near_tie` applies.
        ref_recall: `recall(*ref)` when already computed.

    Returns:
        {"near_tie", "non_finite_rows" (NaN/Inf embeddings of `got`, scored as zero vectors),
        "similarity_max_abs_err", "top1" (raw and tie-aware per direction),
        "top1_agreement" (tie-aware, the worse direction), "top1_agreement_raw", "recall",
        "reference_recall", "recall_delta" (raw, points), "recall_flips_beyond_ties" (points)}.
    """
    near_tie = PARITY[precision].near_tie
    non_finite = int(sum((~np.isfinite(x).all(axis=1)).sum() for x in got))
    got = tuple(np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0) for x in got)  # such rows score 0
    ref_sims, got_sims = similarities(*ref), similarities(*got)
    top1 = top1_agreement(ref_sims, got_sims, near_tie)
    ref_recall = ref_recall if ref_recall is not None else _recall_of(ref_sims)
    rec = _recall_of(got_sims)
    return {
        "near_tie": near_tie,
        "non_finite_rows": non_finite,
        "similarity_max_abs_err": float(np.abs(got_sims - ref_sims).max()) if ref_sims.size else 0.0,
        "top1": top1,
        "top1_agreement": min(top1["i2t"], top1["t2i"]),
        "top1_agreement_raw": min(top1["i2t_raw"], top1["t2i_raw"]),
        "recall": rec,
        "reference_recall": ref_recall,
        "recall_delta": {k: rec[k] - ref_recall[k] for k in rec},
        "recall_flips_beyond_ties": unexplained_recall_flips(ref_sims, got_sims, near_tie),
    }


@dataclass(frozen=True)
class Check:
    """One bound applied by `judge`: what was measured, against which bound, and whether it held.

    output: the output's name ("image_embedding", ...), a retrieval key ("i2t_r1", "top1") or
        "embeddings" (the retrieval set's rows). metric: "max_abs_err", "min_cosine",
        "non_finite_rows", "recall_delta" (points changed beyond near-ties) or "agreement"
        (tie-aware top-1). reason: why it failed (empty when it held).
    """

    output: str
    metric: str
    value: float
    bound: float
    passed: bool
    reason: str = ""


@dataclass
class Verdict:
    """What `judge` decided: every check made, the measured numbers and the failures with reasons."""

    precision: str
    checks: list[Check] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # outputs missing or of the wrong shape / dtype
    measured: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.problems and all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[str]:
        return self.problems + [c.reason for c in self.checks if not c.passed]


def non_finite_rows(x: np.ndarray) -> int:
    """How many last-axis vectors (rows, or each region's vector) of `x` hold NaN or Inf."""
    if x.size == 0:
        return 0
    return int((~np.isfinite(x.reshape(-1, x.shape[-1])).all(axis=1)).sum())


def _judge_output(verdict: Verdict, name: str, ref: np.ndarray, got: np.ndarray, bounds: ParityBounds,
                  cosine: bool) -> np.ndarray | None:
    """The bounds of one output; returns its row cosines when computed."""
    stats = abs_error_stats(ref, got)
    entry: dict[str, Any] = dict(stats)
    bad_rows = non_finite_rows(got)
    cos = None
    bound = bounds.max_abs
    if bound is not None:
        err = stats["max"]
        verdict.checks.append(Check(name, "max_abs_err", err, bound, err <= bound,
                                    f"{name}: max abs error {err:.3g} > {bound:g}"))
    if cosine:
        cos = row_cosine(ref, got)
        entry["min_cosine"] = float(cos.min()) if cos.size else 1.0
        if bounds.min_cosine is not None:
            low = entry["min_cosine"]
            verdict.checks.append(Check(name, "min_cosine", low, bounds.min_cosine, low >= bounds.min_cosine,
                                        f"{name}: min row cosine {low:.6f} < {bounds.min_cosine}"))
    entry["non_finite_rows"] = bad_rows
    if bad_rows:  # every precision: a NaN/Inf row is never an answer
        verdict.checks.append(Check(name, "non_finite_rows", float(bad_rows), 0.0, False,
                                    f"{name}: {bad_rows} rows hold NaN/Inf"))
    verdict.measured["outputs"][name] = entry
    return cos


def _judge_retrieval(verdict: Verdict, result: dict[str, Any], bounds: ParityBounds) -> None:
    """The retrieval bounds of a `compare_retrieval` result."""
    bad_rows = int(result.get("non_finite_rows") or 0)
    if bad_rows:
        verdict.checks.append(Check("embeddings", "non_finite_rows", float(bad_rows), 0.0, False,
                                    f"retrieval: {bad_rows} embedding rows hold NaN/Inf"))
    if bounds.recall_delta is not None:
        for key in RECALL_KEYS:
            flips = result["recall_flips_beyond_ties"][key]
            raw = result["recall_delta"][key]
            verdict.checks.append(Check(
                key, "recall_delta", flips, bounds.recall_delta, flips <= bounds.recall_delta + 1e-9,
                f"{key} changed by {flips:.3g} points beyond near-ties > {bounds.recall_delta} "
                f"(raw delta {raw:+.2f})"))
    if bounds.top1 is not None:
        top1 = result["top1_agreement"]
        verdict.checks.append(Check("top1", "agreement", top1, bounds.top1, top1 >= bounds.top1,
                                    f"top-1 agreement {top1:.4f} < {bounds.top1}"))


def judge(precision: str, ref: Mapping[str, np.ndarray] | None = None,
          got: Mapping[str, np.ndarray] | None = None, *, retrieval: dict[str, Any] | None = None,
          bounds: ParityBounds | None = None, cosine_outputs: Sequence[str] | None = None) -> Verdict:
    """THE pass rule: `got` against `ref` (and a retrieval result) under `PARITY[precision]`.

    Export-time validation, the INT8 graphs' checks and `vsrn-deploy validate` all take their
    verdict from here. Per output of `ref`: it must be in `got` as float32 of the same shape; its
    max abs error is bounded where the precision bounds it; its row cosine where the precision
    bounds it; and any row holding NaN or Inf fails, whatever the precision. A `compare_retrieval`
    result adds its bounds: NaN/Inf embedding rows, R@K changed beyond near-ties (each direction
    and K), tie-aware top-1 agreement.

    Args:
        precision: "fp32", "fp16" or "int8" (the bounds).
        ref, got: outputs by name (the reference's and the candidate's), or None for retrieval only.
        retrieval: a `compare_retrieval` result of the same precision.
        bounds: the bounds in place of `PARITY[precision]`: a backend's own (its table row's
            `parity(precision)`: TensorRT's FP32 plans have a max abs error bound of their own).
        cosine_outputs: the outputs whose row cosine is measured and bounded (None: all of `ref`).

    Returns:
        The Verdict: `passed`, `checks` (every bound applied), `failures` (reasons), and `measured`:
        {"outputs": {name: {max, mean, p99, min_cosine, non_finite_rows}}, "max_abs_err",
        "mean_abs_err", "p99_abs_err", "min_cosine", "mean_cosine" (over the rows of
        `cosine_outputs`), "non_finite_rows"} for outputs, plus "retrieval" when given.
    """
    bounds = bounds or PARITY[precision]
    verdict = Verdict(precision)
    ref, got = ref or {}, got or {}
    verdict.measured["outputs"] = {}
    cosines = []
    for name, expected in ref.items():
        value = got.get(name)
        if value is None or value.shape != expected.shape or value.dtype != np.float32:
            shape = None if value is None else (value.shape, value.dtype)
            verdict.problems.append(f"output {name} is {shape}, expected ({expected.shape}, float32)")
            continue
        cosine = cosine_outputs is None or name in cosine_outputs
        cos = _judge_output(verdict, name, expected, value, bounds, cosine)
        if cos is not None:
            cosines.append(cos)
    outputs = verdict.measured["outputs"]
    if outputs:
        verdict.measured.update({
            "max_abs_err": max(o["max"] for o in outputs.values()),
            "mean_abs_err": float(np.mean([o["mean"] for o in outputs.values()])),
            "p99_abs_err": max(o["p99"] for o in outputs.values()),
            "non_finite_rows": sum(o["non_finite_rows"] for o in outputs.values()),
        })
    if cosines:
        rows = np.concatenate(cosines)
        verdict.measured["min_cosine"] = float(rows.min()) if rows.size else 1.0
        verdict.measured["mean_cosine"] = float(rows.mean()) if rows.size else 1.0
    if retrieval is not None:
        verdict.measured["retrieval"] = retrieval
        _judge_retrieval(verdict, retrieval, bounds)
    return verdict
