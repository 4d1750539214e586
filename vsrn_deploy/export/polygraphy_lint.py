"""`polygraphy check lint` on an exported graph, beside the own TensorRT lint (`trt_lint`).

The two look at different things: `polygraphy check lint` (polygraphy 0.53) runs the ONNX checker
and ONNX Runtime node by node (no TensorRT involved, so it runs on any machine with polygraphy and
onnx-graphsurgeon) and reports nodes that fail to validate or execute; `trt_lint` checks what
TensorRT's ONNX parser supports (operators, types, constant inputs, dynamic axes) from its
documented support matrix. Neither builds an engine.

`lint_graphs(paths)` runs the tool on several graphs in one child process (its logger is
process-global; one process for all graphs costs about 3 s here for a whole tiny export) and
returns one `PolygraphyLint` per graph; when polygraphy is not installed, or the tool produced no
report, the result says "not run" and why, rather than passing. `check_export(folder, names, say)`
is the export-time hook: it fails the export when a graph fails and returns the manifest entry.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vsrn_deploy.core.errors import CheckFailed

# One child for all graphs: polygraphy.tools.main() reads sys.argv; each run writes its JSON report.
_RUN = """
import sys
from polygraphy.tools import main
for model, report in zip(sys.argv[1::2], sys.argv[2::2]):
    sys.argv = ["polygraphy", "check", "lint", model, "-o", report]
    main()
"""


@dataclass(frozen=True)
class PolygraphyLint:
    """What `polygraphy check lint` said about one graph.

    Attributes:
        ran: whether the tool ran and wrote its report.
        passed: no failing node and no error entry (None when not run).
        failing_nodes: nodes the tool marked failing.
        messages: one line per report entry, "level: source: message".
        reason: why it did not run (empty when it ran).
    """

    ran: bool
    passed: bool | None
    failing_nodes: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def polygraphy_lint(onnx_path: str | os.PathLike, *, timeout: float = 600) -> PolygraphyLint:
    """Run `polygraphy check lint` on one graph (see `lint_graphs`)."""
    return lint_graphs([onnx_path], timeout=timeout)[0]


def lint_graphs(paths: list[str | os.PathLike], *, timeout: float = 600) -> list[PolygraphyLint]:
    """Run `polygraphy check lint` on each graph (one child process) and parse its JSON reports.

    Args:
        paths: the graphs.
        timeout: seconds before the tool is given up on (reported as not run).

    Returns:
        One `PolygraphyLint` per graph; `ran` is False when polygraphy or onnx-graphsurgeon is
        missing or the tool wrote no report for that graph.
    """
    missing = [m for m in ("polygraphy", "onnx_graphsurgeon") if importlib.util.find_spec(m) is None]
    if missing:
        reason = f"{' and '.join(missing)} not installed (pip install polygraphy onnx-graphsurgeon)"
        return [PolygraphyLint(False, None, reason=reason) for _ in paths]
    with tempfile.TemporaryDirectory(prefix="vsrn-polygraphy-lint-") as tmp:
        reports = [Path(tmp) / f"lint{i}.json" for i in range(len(paths))]
        args = [str(a) for pair in zip(paths, reports, strict=True) for a in pair]
        try:
            proc = subprocess.run([sys.executable, "-c", _RUN, *args], capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            return [PolygraphyLint(False, None, reason=f"polygraphy check lint took over {timeout:.0f}s")
                    for _ in paths]
        tail = ((proc.stderr or proc.stdout).strip().splitlines() or [""])[-1]
        return [_parse(report, proc.returncode, tail) for report in reports]


def _parse(report_path: Path, returncode: int, tail: str) -> PolygraphyLint:
    if not report_path.is_file():
        return PolygraphyLint(False, None, reason=f"polygraphy check lint wrote no report "
                              f"(exit {returncode}): {tail}")
    report = json.loads(report_path.read_text())
    entries = report.get("lint_entries", [])
    failing = tuple(report.get("summary", {}).get("failing", []))
    messages = tuple(f"{e.get('level')}: {e.get('source')}: {str(e.get('message', '')).strip()}"
                     for e in entries)
    errors = [e for e in entries if e.get("level") == "error"]
    return PolygraphyLint(True, not failing and not errors, failing, messages)


def check_export(folder: str | os.PathLike, names: list[str], say: Callable[[str], None]) -> dict[str, Any]:
    """The export-time hook: lint the written graphs `names` in `folder`; the manifest's entry.

    Raises:
        CheckFailed: a graph that polygraphy linted has failing nodes or error entries.
    """
    results = dict(zip(names, lint_graphs([Path(folder) / n for n in names]), strict=True))
    failed = {n: r for n, r in results.items() if r.ran and not r.passed}
    if failed:
        lines = [f"{n}: failing nodes {list(r.failing_nodes)}; " + " | ".join(r.messages[:3])
                 for n, r in failed.items()]
        raise CheckFailed("polygraphy check lint failed:\n  " + "\n  ".join(lines))
    ran = [n for n, r in results.items() if r.ran]
    if ran:
        say(f"polygraphy check lint passed ({len(ran)} graphs)")
    else:
        say(f"polygraphy check lint not run: {next(iter(results.values())).reason}")
    return {n: r.to_dict() for n, r in results.items()}
