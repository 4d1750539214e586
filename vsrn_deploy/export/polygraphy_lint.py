"""`polygraphy check lint` on an exported graph, beside the own TensorRT lint (`trt_lint`).

The two look at different things: `polygraphy check lint` (polygraphy 0.53) runs the ONNX checker
and ONNX Runtime node by node (no TensorRT involved, so it runs on any machine with polygraphy and
onnx-graphsurgeon) and reports nodes that fail to validate or execute; `trt_lint` checks what
TensorRT's ONNX parser supports (operators, types, constant inputs, dynamic axes) from its
documented support matrix. Neither builds an engine.

`polygraphy_lint(path)` runs the tool in a child process (its logger is process-global) and
returns a `PolygraphyLint`; when polygraphy is not installed, or the tool produced no report, the
result says "not run" and why, rather than passing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

_RUN = "import sys; from polygraphy.tools import main; sys.exit(main())"


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
    """Run `polygraphy check lint` on `onnx_path` and parse its JSON report.

    Args:
        onnx_path: the graph.
        timeout: seconds before the tool is given up on (reported as not run).

    Returns:
        A `PolygraphyLint`; `ran` is False when polygraphy or onnx-graphsurgeon is missing or the
        tool wrote no report.
    """
    missing = [m for m in ("polygraphy", "onnx_graphsurgeon") if importlib.util.find_spec(m) is None]
    if missing:
        return PolygraphyLint(False, None, reason=f"{' and '.join(missing)} not installed "
                              "(pip install polygraphy onnx-graphsurgeon)")
    with tempfile.TemporaryDirectory(prefix="vsrn-polygraphy-lint-") as tmp:
        report_path = Path(tmp) / "lint.json"
        try:
            proc = subprocess.run([sys.executable, "-c", _RUN, "check", "lint", str(onnx_path), "-o",
                                   str(report_path)], capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return PolygraphyLint(False, None, reason=f"polygraphy check lint took over {timeout:.0f}s")
        if not report_path.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
            return PolygraphyLint(False, None, reason=f"polygraphy check lint wrote no report "
                                  f"(exit {proc.returncode}): {tail[0]}")
        report = json.loads(report_path.read_text())
    entries = report.get("lint_entries", [])
    failing = tuple(report.get("summary", {}).get("failing", []))
    messages = tuple(f"{e.get('level')}: {e.get('source')}: {str(e.get('message', '')).strip()}"
                     for e in entries)
    errors = [e for e in entries if e.get("level") == "error"]
    return PolygraphyLint(True, not failing and not errors, failing, messages)
