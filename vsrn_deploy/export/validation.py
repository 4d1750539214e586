"""Export-time validation: the written graphs against the eager training model.

Every check yields one line (graph, precision, runtime, batch, output, metric, value, bound) and the
export fails with `CheckFailed` if any line misses. Inputs are realistic: sparse non-negative region
features at the magnitudes of bottom-up-attention features, and captions of mixed lengths in
shuffled order including the shortest (<start><end>) and the longest.

FP32: names, shapes, dtypes, then max abs error <= 1e-5 at batch 1, 3, 5 and the largest claimed.
FP16: every row's cosine with eager FP32 >= 0.9995, in ONNX Runtime and in the strict FP16 executor
(`emulate.run_strict`, which rounds every FP16 node's output the way an FP16 engine does); on a
synthetic retrieval set (5 captions per image), R@1/5/10 in both directions within 0.2 points of
eager FP32 and top-1 agreement >= 99%.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

FP32_MAX_ABS = 1e-5
FP16_MIN_COSINE = 0.9995
RECALL_TOLERANCE = 0.2  # points
TOP1_AGREEMENT = 0.99

NumpyFn = Callable[..., dict[str, np.ndarray]]


def synthetic_region_features(n: int, k: int, dim: int, seed: int = 0) -> np.ndarray:
    """Sparse non-negative features like pooled ResNet-101 region features (post-ReLU).

    About 60% zeros, exponential magnitudes (mean ~0.5 over all entries), a few large activations
    (up to ~30), as in the SCAN precomp release.

    Args:
        n: number of images; k: regions per image; dim: feature size.
        seed: random seed.
    Returns:
        float32 (n, k, dim).
    """
    rng = np.random.default_rng(seed)
    mask = rng.random((n, k, dim)) < 0.4
    values = rng.exponential(1.2, size=(n, k, dim))
    hot = rng.random((n, k, dim)) < 0.002
    values = np.where(hot, rng.uniform(8.0, 30.0, size=(n, k, dim)), values)
    return (values * mask).astype(np.float32)


def synthetic_captions(
    n: int, vocab_size: int, max_tokens: int = 24, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Captions of mixed lengths: <start> words <end>, padded with 0, in shuffled order.

    The set always holds the shortest caption (2 tokens) and the longest (`max_tokens`) when n >= 2.

    Returns:
        (token_ids int64 (n, T), lengths int64 (n,)), T = the longest length present.
    """
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, max_tokens + 1, size=n)
    if n >= 2:
        lengths[0], lengths[1] = 2, max_tokens
    elif n == 1:
        lengths[0] = max(2, max_tokens // 2)
    lengths = rng.permutation(lengths)
    tokens = int(lengths.max())
    ids = np.zeros((n, tokens), dtype=np.int64)
    low = 4 if vocab_size > 4 else 0
    for i, length in enumerate(lengths):
        ids[i, 0] = 1 % vocab_size  # <start>
        ids[i, 1 : length - 1] = rng.integers(low, vocab_size, size=length - 2)
        ids[i, length - 1] = 2 % vocab_size  # <end>
    return ids, lengths.astype(np.int64)


@dataclass(frozen=True)
class CheckLine:
    """One validation result."""

    graph: str
    runtime: str
    batch: int | str
    output: str
    metric: str
    value: float
    bound: float
    passed: bool

    def format(self) -> str:
        op = "<=" if self.metric == "max_abs_err" or self.metric.endswith("_delta") else ">="
        status = "ok" if self.passed else "FAILED"
        return (
            f"{self.graph:<24} {self.runtime:<12} batch {str(self.batch):<5} {self.output:<18} "
            f"{self.metric} {self.value:.6g} {op} {self.bound:g}  {status}"
        )


def check_io(session, expected_inputs: list[dict], expected_outputs: list[dict], graph: str) -> list[str]:
    """Names, element types and ranks of the graph's and the session's inputs and outputs.

    Returns:
        A list of problems (empty when all match).
    """
    problems = []
    for kind, declared, actual in (
        ("input", expected_inputs, session.get_inputs()),
        ("output", expected_outputs, session.get_outputs()),
    ):
        names = [a.name for a in actual]
        if names != [d["name"] for d in declared]:
            problems.append(f"{graph}: {kind} names {names} != {[d['name'] for d in declared]}")
            continue
        for d, a in zip(declared, actual, strict=True):
            if a.type != f"tensor({d['dtype']})":
                problems.append(f"{graph}: {kind} {a.name} has type {a.type}, expected tensor({d['dtype']})")
            if len(a.shape) != len(d["shape"]):
                problems.append(
                    f"{graph}: {kind} {a.name} has rank {len(a.shape)}, expected {len(d['shape'])}"
                )
    return problems


def _row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.reshape(-1, a.shape[-1]).astype(np.float64)
    b = b.reshape(-1, b.shape[-1]).astype(np.float64)
    num = (a * b).sum(1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    with np.errstate(all="ignore"):
        cos = np.where(
            den > 0, num / np.maximum(den, 1e-300), np.where(np.abs(a).sum(1) == np.abs(b).sum(1), 1.0, 0.0)
        )
    return np.nan_to_num(cos, nan=-1.0)


def retrieval_metrics(images: np.ndarray, captions: np.ndarray, per_image: int = 5) -> dict:
    """R@1/5/10 both directions (the authors' protocol) and each query's top-1 candidate.

    Args:
        images: (N, D) one row per image; captions: (per_image * N, D), caption j belongs to image
            j // per_image.
    Returns:
        {"i2t_r1", ..., "t2i_r10", "i2t_top1" (N,), "t2i_top1" (per_image*N,), "sims" (N, 5N)}.
    """
    sims = images.astype(np.float64) @ captions.astype(np.float64).T  # (N, 5N)
    n = images.shape[0]
    order = np.argsort(-sims, axis=1, kind="stable")
    owner = order // per_image  # image of each ranked caption
    i2t_rank = np.argmax(owner == np.arange(n)[:, None], axis=1)  # best rank among its captions
    order_t = np.argsort(-sims.T, axis=1, kind="stable")  # (5N, N)
    t2i_rank = np.argmax(order_t == (np.arange(captions.shape[0]) // per_image)[:, None], axis=1)
    out = {}
    for k in (1, 5, 10):
        out[f"i2t_r{k}"] = 100.0 * float(np.mean(i2t_rank < k))
        out[f"t2i_r{k}"] = 100.0 * float(np.mean(t2i_rank < k))
    out["i2t_top1"], out["t2i_top1"] = order[:, 0], order_t[:, 0]
    out["sims"] = sims
    return out


class Validator:
    """Collects `CheckLine`s for one export and turns misses into `CheckFailed`."""

    def __init__(self, log: Callable[[str], None] | None = None) -> None:
        self.lines: list[CheckLine] = []
        self.problems: list[str] = []
        self.log = log or (lambda _line: None)

    def add(self, line: CheckLine) -> None:
        self.lines.append(line)
        self.log(line.format())

    def _matching_output(
        self, graph: str, runtime: str, batch: int | str, name: str, expected: np.ndarray,
        got: dict[str, np.ndarray],
    ) -> np.ndarray | None:
        """`got[name]` when its shape and dtype match `expected`; otherwise record a problem."""
        value = got.get(name)
        if value is None or value.shape != expected.shape or value.dtype != np.float32:
            shape = None if value is None else (value.shape, value.dtype)
            self.problems.append(
                f"{graph} ({runtime}) batch {batch}: output {name} is {shape}, expected "
                f"({expected.shape}, float32)"
            )
            return None
        return value

    def compare_fp32(
        self, graph: str, runtime: str, batch: int, ref: dict[str, np.ndarray], got: dict[str, np.ndarray]
    ) -> None:
        for name, expected in ref.items():
            value = self._matching_output(graph, runtime, batch, name, expected, got)
            if value is None:
                continue
            err = float(np.max(np.abs(value.astype(np.float64) - expected))) if value.size else 0.0
            if not np.isfinite(err):
                err = float("inf")
            self.add(
                CheckLine(graph, runtime, batch, name, "max_abs_err", err, FP32_MAX_ABS, err <= FP32_MAX_ABS)
            )

    def compare_fp16(
        self,
        graph: str,
        runtime: str,
        batch: int | str,
        ref: dict[str, np.ndarray],
        got: dict[str, np.ndarray],
        min_cosine: float = FP16_MIN_COSINE,
    ) -> None:
        """Every row's cosine with the reference >= `min_cosine` (FP16's bound unless given)."""
        for name, expected in ref.items():
            value = self._matching_output(graph, runtime, batch, name, expected, got)
            if value is None:
                continue
            cos = float(_row_cosine(value, expected).min()) if value.size else 1.0
            self.add(CheckLine(graph, runtime, batch, name, "min_cosine", cos, min_cosine, cos >= min_cosine))

    def compare_retrieval(
        self,
        runtime: str,
        ref: dict,
        got: dict,
        recall_tolerance: float = RECALL_TOLERANCE,
        top1_agreement: float = TOP1_AGREEMENT,
        near_tie: float = 0.0,
    ) -> dict:
        """Recall deltas and top-1 agreement of `got` against `ref` (both from retrieval_metrics);
        FP16's bounds unless given. With `near_tie` > 0, swaps of candidates whose reference
        similarities differ by less than it are no ranking change: a top-1 pick that close to the
        reference's best agrees, and R@K counts only hits that flipped although the ground truth is
        not that close to the cut-off (`vsrn_deploy.validate.unexplained_recall_flips`); the raw
        rate and deltas are reported beside them."""
        summary = {}
        flips = None
        if near_tie > 0:
            from vsrn_deploy.validate import unexplained_recall_flips

            flips = unexplained_recall_flips(ref["sims"], got["sims"], near_tie)
        for key in ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10"):
            delta = abs(got[key] - ref[key]) if flips is None else flips[key]
            summary[key] = {"eager": ref[key], "graph": got[key]}
            if flips is not None:
                summary[key]["flips_beyond_near_ties"] = flips[key]
            self.add(
                CheckLine(
                    "retrieval",
                    runtime,
                    "set",
                    key,
                    "recall_delta",
                    delta,
                    recall_tolerance,
                    delta <= recall_tolerance + 1e-9,
                )
            )
        agree = np.concatenate([got["i2t_top1"] == ref["i2t_top1"], got["t2i_top1"] == ref["t2i_top1"]])
        summary["top1_agreement_raw"] = float(np.mean(agree))
        if near_tie > 0:
            sims = ref["sims"]
            rows, cols = np.arange(sims.shape[0]), np.arange(sims.shape[1])
            agree = np.concatenate([
                sims[rows, got["i2t_top1"]] >= sims[rows, ref["i2t_top1"]] - near_tie,
                sims.T[cols, got["t2i_top1"]] >= sims.T[cols, ref["t2i_top1"]] - near_tie,
            ])
        top1 = float(np.mean(agree))
        summary["top1_agreement"] = top1
        summary["near_tie"] = near_tie
        self.add(
            CheckLine(
                "retrieval", runtime, "set", "top1", "agreement", top1, top1_agreement, top1 >= top1_agreement
            )
        )
        return summary

    @property
    def passed(self) -> bool:
        return not self.problems and all(line.passed for line in self.lines)

    def failures(self) -> list[str]:
        return self.problems + [line.format() for line in self.lines if not line.passed]

    def summary(self) -> dict:
        """Worst value per (graph, runtime, output, metric), for the manifest."""
        out: dict = {}
        for line in self.lines:
            key = f"{line.graph}/{line.runtime}"
            entry = out.setdefault(key, {}).setdefault(line.output, {})
            worse = max if line.metric in ("max_abs_err", "recall_delta") else min
            entry[line.metric] = worse(entry.get(line.metric, line.value), line.value)
            entry["passed"] = entry.get("passed", True) and line.passed
        return out
