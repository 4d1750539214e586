"""The benchmark plot: p50 latency and throughput against batch size, one line per backend.

matplotlib is optional (the `bench` extra) and imported only here, when a plot is asked for.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from vsrn_deploy.bench.report import machine_line, write_atomic
from vsrn_deploy.core.errors import import_optional


def plot_report(report: dict[str, Any], path: str | os.PathLike) -> Path:
    """Draw latency vs batch and throughput vs batch (log-log) per encoder and backend as a PNG.

    Args:
        report: what `run_benchmark` returned.
        path: the .png to write (atomically).

    Returns:
        The path written.

    Raises:
        VsrnError: matplotlib is not installed.
    """
    matplotlib = import_optional("matplotlib", "bench", "plotting benchmark results")
    matplotlib.use("Agg", force=True)  # no display needed
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    encoders = [e for e in ("image", "text") if any(r["encoder"] == e for r in report["results"])]
    if not encoders:
        encoders = ["image"]
    fig, axes = plt.subplots(len(encoders), 2, figsize=(11, 4.2 * len(encoders)), squeeze=False)
    for row_axes, encoder in zip(axes, encoders, strict=True):
        rows = [r for r in report["results"] if r["encoder"] == encoder]
        backends = list(dict.fromkeys(r["backend"] for r in rows))
        for backend in backends:
            pts = sorted((r["batch"], r["p50_ms"], r["items_per_s"], r["precision"])
                         for r in rows if r["backend"] == backend)
            label = f"{backend} ({pts[0][3]})"
            row_axes[0].plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
            row_axes[1].plot([p[0] for p in pts], [p[2] for p in pts], marker="o", label=label)
        for ax, what in zip(row_axes, ("p50 latency (ms)", "throughput (items/s)"), strict=True):
            ax.set_xscale("log", base=2)
            batches = sorted({r["batch"] for r in rows})
            ax.set_xticks(batches)
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_yscale("log")
            ax.set_xlabel("batch size")
            ax.set_ylabel(what)
            ax.set_title(f"{encoder} encoder: {what.split(' (')[0]}")
            ax.grid(True, which="both", alpha=0.3)
            if backends:
                ax.legend(fontsize=8)
    fig.suptitle(machine_line(report)[:150], fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return write_atomic(path, buf.getvalue())
