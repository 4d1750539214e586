"""Export-time validation: the written graphs against the eager training model.

Every check yields one line (graph, precision, runtime, batch, output, metric, value, bound) and the
export fails with `CheckFailed` if any line misses. Inputs come from `vsrn_deploy.data.synthetic_inputs`
(sparse non-negative region features at real magnitudes; captions of mixed lengths in shuffled
order including the shortest, <start><end>, and the longest); every measure and every verdict is
`vsrn_deploy.evaluation.compare`'s (`compare.judge`, the pass rule `vsrn-deploy validate` applies).
The graphs run through the runners (`vsrn_deploy.backend`): ONNX Runtime's, the strict FP16
executor's, and eager torch for the reference.

FP32: names, shapes, dtypes, then the max abs error at batch 1, 3, 5 and the largest claimed.
FP16: every row's cosine with eager FP32, in ONNX Runtime and in the strict FP16 executor
(`emulate.run_strict`, which rounds every FP16 node's output the way an FP16 engine does); on a
synthetic retrieval set (5 captions per image), R@1/5/10 in both directions and top-1 agreement.
INT8 (`vsrn_deploy.export.int8`): the same row-cosine and retrieval checks with the int8 bounds.
At every precision a row (embedding, or a region's vector) holding NaN or Inf fails.
The bounds are `vsrn_deploy.core.contract.PARITY` (`python -m vsrn_deploy.core.contract` prints them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from vsrn_deploy.backend.base import Runner
from vsrn_deploy.evaluation import compare

# rows per call when a check runs a large feed (the retrieval set; a row's result does not depend on
# the batch): eager torch's recurrent ops run many times slower in large batches on a shared CPU
REFERENCE_BATCH = {"image": 64, "text": 256}
GRAPH_BATCH = {"image": 32, "text": None}
GRAPH_THREADS = 2  # ONNX Runtime's intra-op threads in the export's checks and the INT8 search


def reference_runner(encoder: str, model: Any) -> Runner:
    """The eager reference of the checks: the `torch` runner (the training model's encoder, FP32)
    of `model` (anything with `img_enc` and `txt_enc`), splitting large feeds by `REFERENCE_BATCH`."""
    from vsrn_deploy.backend.torch_runners import TorchRunner

    runner = TorchRunner(encoder, model)
    runner.batch = REFERENCE_BATCH[encoder]
    return runner


def graph_runner(encoder: str, graph: Any) -> Runner:
    """A graph under check (a file or a ModelProto) in ONNX Runtime on the CPU (`GRAPH_THREADS`
    threads, quiet), splitting large feeds by `GRAPH_BATCH`."""
    from vsrn_deploy.backend.onnxrt import OrtRunner

    runner = OrtRunner(encoder, graph, threads=GRAPH_THREADS, quiet=True)
    runner.batch = GRAPH_BATCH[encoder]
    return runner


_AT_MOST = ("max_abs_err", "recall_delta", "non_finite_rows")  # metrics bounded from above


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
        op = "<=" if self.metric in _AT_MOST else ">="
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

    def check(self, graph: str, runtime: str, batch: int | str, ref: dict[str, np.ndarray],
              got: dict[str, np.ndarray], precision: str) -> compare.Verdict:
        """`got` against the eager `ref` under `PARITY[precision]` (`compare.judge`): one line per
        bound of each output (FP32: max abs error; FP16 / INT8: min row cosine; NaN/Inf rows fail
        at every precision); a missing or mis-shaped output is a problem."""
        verdict = compare.judge(precision, ref, got)
        self.problems += [f"{graph} ({runtime}) batch {batch}: {p}" for p in verdict.problems]
        for c in verdict.checks:
            self.add(CheckLine(graph, runtime, batch, c.output, c.metric, c.value, c.bound, c.passed))
        return verdict

    def check_retrieval(self, runtime: str, ref: tuple[np.ndarray, np.ndarray],
                        got: tuple[np.ndarray, np.ndarray], precision: str) -> dict:
        """Retrieval of `got` against `ref` ((images, captions) embeddings): `compare.compare_retrieval`
        judged by `compare.judge`, one line per R@K (points changed beyond near-ties), one for
        tie-aware top-1 agreement and one for NaN/Inf rows when there are any; the summary keeps
        the raw figures too."""
        result = compare.compare_retrieval(ref, got, precision)
        verdict = compare.judge(precision, retrieval=result)
        for c in verdict.checks:
            self.add(CheckLine("retrieval", runtime, "set", c.output, c.metric, c.value, c.bound, c.passed))
        summary: dict = {}
        for key in compare.RECALL_KEYS:
            summary[key] = {"eager": result["reference_recall"][key], "graph": result["recall"][key],
                            "beyond_ties": result["recall_flips_beyond_ties"][key]}
        summary["top1_agreement"] = result["top1_agreement"]
        summary["top1_agreement_raw"] = result["top1_agreement_raw"]
        summary["near_tie"] = result["near_tie"]
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
            worse = max if line.metric in _AT_MOST else min
            entry[line.metric] = worse(entry.get(line.metric, line.value), line.value)
            entry["passed"] = entry.get("passed", True) and line.passed
        return out
