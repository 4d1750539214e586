"""Export-time validation: the written graphs against the eager training model.

Every check yields one line (graph, precision, runtime, batch, output, metric, value, bound) and the
export fails with `CheckFailed` if any line misses. Inputs come from `vsrn_deploy.data.synthetic_inputs`
(sparse non-negative region features at real magnitudes; captions of mixed lengths in shuffled
order including the shortest, <start><end>, and the longest); every measure is
`vsrn_deploy.evaluation.compare`'s, the one `vsrn-deploy validate` uses.

FP32: names, shapes, dtypes, then the max abs error at batch 1, 3, 5 and the largest claimed.
FP16: every row's cosine with eager FP32, in ONNX Runtime and in the strict FP16 executor
(`emulate.run_strict`, which rounds every FP16 node's output the way an FP16 engine does); on a
synthetic retrieval set (5 captions per image), R@1/5/10 in both directions and top-1 agreement.
INT8 (`vsrn_deploy.export.int8`): the same row-cosine and retrieval checks with the int8 bounds.
The bounds are `vsrn_deploy.core.contract.PARITY` (`python -m vsrn_deploy.core.contract` prints them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vsrn_deploy.core.contract import PARITY
from vsrn_deploy.evaluation import compare


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
            err = compare.abs_error_stats(expected, value)["max"]
            bound = PARITY["fp32"].max_abs
            self.add(CheckLine(graph, runtime, batch, name, "max_abs_err", err, bound, err <= bound))

    def compare_fp16(
        self,
        graph: str,
        runtime: str,
        batch: int | str,
        ref: dict[str, np.ndarray],
        got: dict[str, np.ndarray],
        precision: str = "fp16",
    ) -> None:
        """Every row's cosine with the reference >= `PARITY[precision].min_cosine` (fp16 or int8)."""
        for name, expected in ref.items():
            value = self._matching_output(graph, runtime, batch, name, expected, got)
            if value is None:
                continue
            cos = float(compare.row_cosine(expected, value).min()) if value.size else 1.0
            bound = PARITY[precision].min_cosine
            self.add(CheckLine(graph, runtime, batch, name, "min_cosine", cos, bound, cos >= bound))

    def compare_retrieval(self, runtime: str, ref: tuple[np.ndarray, np.ndarray],
                          got: tuple[np.ndarray, np.ndarray], precision: str = "fp16") -> dict:
        """Retrieval of `got` against `ref` ((images, captions) embeddings) with `compare`.

        One line per R@K (points changed beyond near-ties) and one for tie-aware top-1 agreement;
        the summary keeps the raw figures too.
        """
        bounds = PARITY[precision]
        result = compare.compare_retrieval(ref, got, precision)
        summary: dict = {}
        for key in compare.RECALL_KEYS:
            flips = result["recall_flips_beyond_ties"][key]
            summary[key] = {"eager": result["reference_recall"][key], "graph": result["recall"][key],
                            "beyond_ties": flips}
            self.add(CheckLine("retrieval", runtime, "set", key, "recall_delta", flips,
                               bounds.recall_delta, flips <= bounds.recall_delta + 1e-9))
        summary["top1_agreement"] = result["top1_agreement"]
        summary["top1_agreement_raw"] = result["top1_agreement_raw"]
        summary["near_tie"] = result["near_tie"]
        top1 = result["top1_agreement"]
        self.add(CheckLine("retrieval", runtime, "set", "top1", "agreement", top1, bounds.top1,
                           top1 >= bounds.top1))
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
