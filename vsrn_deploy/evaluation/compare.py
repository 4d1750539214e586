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
"""

from __future__ import annotations

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


def retrieval_failures(result: dict[str, Any], bounds: ParityBounds) -> list[str]:
    """What a `compare_retrieval` result misses of `bounds` (empty: passed)."""
    failures = []
    if result.get("non_finite_rows"):
        failures.append(f"{result['non_finite_rows']} embedding rows hold NaN/Inf")
    flips = result["recall_flips_beyond_ties"]
    if bounds.recall_delta is not None:
        bad = {k: round(flips[k], 3) for k in RECALL_KEYS if not flips[k] <= bounds.recall_delta + 1e-9}
        if bad:
            raw = {k: round(result["recall_delta"][k], 2) for k in RECALL_KEYS}
            failures.append(f"R@K changed beyond near-ties by more than {bounds.recall_delta} points: "
                            f"{bad} (raw deltas {raw})")
    if bounds.top1 is not None and not result["top1_agreement"] >= bounds.top1:
        failures.append(f"top-1 agreement {result['top1_agreement']:.4f} < {bounds.top1}")
    return failures
