"""Writing a benchmark report: JSON (atomically) and a markdown table with the roofline columns."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vsrn_deploy.core import backends
from vsrn_deploy.io.files import atomic_write_bytes, atomic_write_json


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write text (UTF-8) or bytes atomically (`vsrn_deploy.io.files`), creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(path, data.encode("utf-8") if isinstance(data, str) else data)


def write_json(report: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write the report as indented JSON (atomically), creating parent folders."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_json(path, report)


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _mb(nbytes: float) -> str:
    return f"{nbytes / 1e9:.2f} GB" if nbytes >= 1e9 else f"{nbytes / 1e6:.3g} MB"


def speedups(report: dict[str, Any], baseline: str = backends.REFERENCE) -> dict[tuple[str, str, int], float]:
    """p50 of `baseline` / p50 of each row, keyed by (encoder, backend, batch)."""
    base = {(r["encoder"], r["batch"]): r["p50_ms"] for r in report["results"] if r["backend"] == baseline}
    return {(r["encoder"], r["backend"], r["batch"]): base[(r["encoder"], r["batch"])] / r["p50_ms"]
            for r in report["results"] if (r["encoder"], r["batch"]) in base}


def machine_line(report: dict[str, Any]) -> str:
    """One line naming the machine, threads, peak and key versions."""
    m = report["machine"]
    peak = m.get("matmul_peak", {}).get("float32", {})
    versions = m.get("versions", {})
    where = m["gpu"]["name"] if m.get("gpu") else f"{m.get('cpu')} ({m.get('physical_cores')} cores)"
    parts = [where, f"threads {m.get('threads') or 'default'}"]
    if m.get("load_average"):
        parts.append("load average {:.1f} at start, {:.1f} at end".format(*m["load_average"]))
    if peak:
        parts.append(f"measured fp32 matmul peak {peak['gflops']:.1f} GFLOP/s (n={peak['n']})")
    if m.get("gpu") and "float16" in m.get("matmul_peak", {}):
        parts.append(f"fp16 peak {m['matmul_peak']['float16']['gflops']:.0f} GFLOP/s")
    if "int8" in m.get("matmul_peak", {}):
        parts.append(f"measured int8 GEMM peak {m['matmul_peak']['int8']['gops']:.0f} GOP/s (onnxruntime)")
    parts.append(", ".join(f"{k} {v}" for k, v in versions.items() if k != "vsrn-deploy"))
    return "; ".join(parts)


def to_markdown(report: dict[str, Any], baseline: str = backends.REFERENCE, title: str | None = None,
                note: str | None = None) -> str:
    """A markdown table per encoder: backend, precision, batch, p50/p90/p99, items/s, GFLOP/s,
    % of the measured matmul peak and the p50 speed-up over `baseline`, then batch-1 bandwidths.

    Args:
        report: what `run_benchmark` returned (or its JSON read back).
        baseline: the backend the speed-up column divides by.
        title: an optional heading.
        note: what one timed call covers (default: `runner.infer` with host numpy arrays).

    Returns:
        Markdown text.
    """
    lines: list[str] = []
    if title:
        lines += [f"## {title}", ""]
    lines += [f"Machine: {machine_line(report)}", ""]
    model = report.get("model", {})
    if model:
        cfg = model.get("config", {})
        lines += [f"Model: {model.get('source')} ({model.get('sizes') or model.get('checkpoint')}); "
                  f"k={cfg.get('num_regions')}, F={cfg.get('img_dim')}, D={cfg.get('embed_size')}, "
                  f"words={cfg.get('word_dim')}, vocab={cfg.get('vocab_size')}", ""]
    ratio = speedups(report, baseline)
    for encoder in ("image", "text"):
        rows = [r for r in report["results"] if r["encoder"] == encoder]
        if not rows:
            continue
        lines += [f"### {encoder} encoder", "",
                  f"| backend | precision | batch | p50 ms | p90 ms | p99 ms | items/s | GFLOP/s "
                  f"| % of peak | x {baseline} (p50) |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        order = {b: i for i, b in enumerate(dict.fromkeys(r["backend"] for r in rows))}
        for r in sorted(rows, key=lambda r: (r["batch"], r["backend"] != baseline, order[r["backend"]])):
            x = ratio.get((encoder, r["backend"], r["batch"]))
            lines.append(f"| {r['backend']} | {r['precision']} | {r['batch']} | {_fmt(r['p50_ms'])} "
                         f"| {_fmt(r['p90_ms'])} | {_fmt(r['p99_ms'])} | {_fmt(r['items_per_s'], 1)} "
                         f"| {_fmt(r['gflops'], 1)} | {_fmt(r['pct_of_peak'], 0)} "
                         f"| {'-' if x is None else f'{x:.2f}x'} |")
        lines.append("")
        if encoder == "text":
            widths = sorted({(r["batch"], r["tokens"], r["mean_tokens"]) for r in rows
                             if r.get("tokens") is not None and r.get("mean_tokens") is not None})
            if widths:
                lines += ["Text batches are padded (widths count <start>/<end>): "
                          + ", ".join(f"batch {b}: width {t}, mean length {m:.1f}" for b, t, m in widths), ""]
        bw = [r for r in rows if r["batch"] == 1 and "weight_gbps" in r]
        if bw:
            lines += [f"Batch-1 weight streaming ({encoder}): "
                      + "; ".join(f"{r['backend']} ({r['precision']}) {_mb(r['weight_bytes'])} once = "
                                  f"{r['weight_gbps']:.3g} GB/s, with the recurrent matrix re-read per "
                                  f"step {_mb(r['streamed_weight_bytes'])} = "
                                  f"{r['streamed_weight_gbps']:.3g} GB/s" for r in bw), ""]
    if report.get("skipped"):
        lines += ["Skipped: " + "; ".join(
            f"{s['backend']} ({s['encoder']}{'' if s.get('batch') is None else ', batch ' + str(s['batch'])})"
            f": {s['reason']}" for s in report["skipped"]), ""]
    lines += [note or ("Latency of one synchronised call with inputs and outputs as host numpy arrays "
                       "(runner.infer)."),
              "items/s = batch / p50; GFLOP/s counts matmul FLOPs (vsrn_deploy.bench.flops); % of peak "
              "is against a matmul of the row's precision (fp32 where no fp16 peak was measured; int8 rows: "
              "ONNX Runtime's INT8 GEMM, in GOP/s) timed "
              "in the same run.", ""]
    return "\n".join(lines)


def write_markdown(report: dict[str, Any], path: str | os.PathLike, **kwargs: Any) -> Path:
    """Write `to_markdown(report, **kwargs)` to `path` (atomically)."""
    return write_atomic(path, to_markdown(report, **kwargs))
