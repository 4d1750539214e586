"""`vsrn-deploy bench`: latency percentiles, throughput and roofline columns per backend and batch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vsrn_deploy.bench.core import MAX_SECONDS
from vsrn_deploy.cli.common import handle_errors
from vsrn_deploy.cli.options import (
    MAX_SIZE,
    Backends,
    Device,
    OptionalOnnxDir,
    ReportOut,
    Seed,
    Threads,
    TorchPrecision,
    bounded,
    value,
)
from vsrn_deploy.core.errors import VsrnError


def _int_list(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise VsrnError(f"{what} must be comma-separated integers, e.g. 1,8,32; got {text!r}") from None
    if not values:
        raise VsrnError(f"{what} is empty")
    return values


def bench(
    checkpoint: Annotated[str | None, typer.Option(
        help="Checkpoint to benchmark (vsrn-deploy or the authors'); default: a randomly initialised "
             "model at the paper's sizes.")] = None,
    encoder: Annotated[str, typer.Option(help="image, text or both.")] = "both",
    backends: Backends = "torch,torch-deploy,ort,ort-fp16",  # type: ignore[assignment]  # parse_backends
    batch: Annotated[str, typer.Option(help="Comma-separated batch sizes.")] = "1,8,32,128",
    warmup: Annotated[int, bounded("Untimed calls before timing each backend and batch.", 0, MAX_SIZE)] = 5,
    iters: Annotated[int | None, bounded(
        "Timed calls per backend and batch (instead of --seconds).", 1, MAX_SIZE)] = None,
    seconds: Annotated[float | None, bounded(
        "Time budget per backend and batch (default 2 s; at least 5 calls).", 0, MAX_SECONDS,
        why="longer measurements: --iters")] = None,
    threads: Threads = None,
    device: Device = "cpu",
    precision: Annotated[TorchPrecision | None, typer.Option(
        "--precision", case_sensitive=False,
        help="What torch-deploy/torch-compile compute in (default fp32 on the CPU, fp16 on CUDA); "
             "the other backends run their own graph precision.")] = None,
    onnx_dir: OptionalOnnxDir = None,
    out: ReportOut = None,
    markdown: Annotated[Path | None, typer.Option(help="Write the markdown table here.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write a PNG plot here (needs matplotlib).")] = None,
    tiny: Annotated[bool, typer.Option(help="Tiny random model (smoke tests).")] = False,
    seed: Seed = 0,
) -> None:
    """Time every backend on the same inputs: p50/p90/p99 latency, items/s, GFLOP/s, % of peak.

    --onnx-dir: the export the backends that run graphs use. A missing or empty folder: the
    benchmarked model is exported there first (and reused next time); none given, or another model's
    export: it is exported to a temporary folder. --seed fixes the random model and the inputs.
    """
    if iters is not None and seconds is not None:
        raise VsrnError("give --iters or --seconds, not both")
    encoders = ("image", "text") if encoder == "both" else (encoder,)
    if encoder not in ("image", "text", "both"):
        raise VsrnError(f"--encoder must be image, text or both; got {encoder!r}")
    from vsrn_deploy.bench import BenchConfig, run_benchmark, to_markdown, write_json, write_markdown

    seconds = None if iters is not None else (2.0 if seconds is None else seconds)  # 0: min_iters calls
    cfg = BenchConfig(encoders=encoders, backends=tuple(backends), batches=_int_list(batch, "--batch"),
                      warmup=warmup, iters=iters, seconds=seconds,
                      threads=threads, device=device, dtype=value(precision), checkpoint=checkpoint,
                      onnx_dir=str(onnx_dir) if onnx_dir is not None else None, tiny=tiny, seed=seed)
    from vsrn_deploy.artifacts.outputs import check_out_path

    for flag, path in (("--out", out), ("--markdown", markdown), ("--plot", plot)):
        if path is not None:  # a bad output path fails now, not after the run
            check_out_path(path, want="file", flag=flag)
    if plot is not None:  # fail before the run, not after it, when matplotlib is missing
        from vsrn_deploy.core.errors import import_optional

        import_optional("matplotlib", "bench", "--plot")
    report = run_benchmark(cfg)
    typer.echo(to_markdown(report))
    if out is not None:
        write_json(report, out)
        typer.echo(f"wrote {out}")
    if markdown is not None:
        write_markdown(report, markdown)
        typer.echo(f"wrote {markdown}")
    if plot is not None:
        from vsrn_deploy.bench.plot import plot_report

        plot_report(report, plot)
        typer.echo(f"wrote {plot}")
    if report["skipped"] or not report["results"]:
        # a measurement the user asked for and did not get is a failed run, never a success
        from vsrn_deploy.core.errors import CheckFailed

        missed = "; ".join(f"{s['backend']} ({s['encoder']}" + (f", batch {s['batch']}" if s["batch"] else "")
                           + f"): {s['reason']}" for s in report["skipped"]) or "no measurement was made"
        raise CheckFailed(f"{len(report['skipped'])} requested measurement(s) skipped: {missed}")


def register(app: typer.Typer) -> None:
    """Add `bench` to the root app."""
    app.command("bench")(handle_errors(bench))
