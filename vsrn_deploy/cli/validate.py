"""`vsrn-deploy validate`: every backend against the eager FP32 model, on the same inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vsrn_deploy.cli.common import handle_errors
from vsrn_deploy.cli.options import (
    MAX_SIZE,
    Backends,
    Device,
    EngineDir,
    OnnxDir,
    ReportOut,
    Seed,
    Threads,
    Vocab,
    bounded,
)


def validate(
    checkpoint: Annotated[Path | None, typer.Option(
        help="The checkpoint (vsrn-deploy or the authors'); default: the one the export's manifest "
             "names, when it still exists.")] = None,
    onnx_dir: OnnxDir = Path("export"),
    engine_dir: EngineDir = Path("engines"),
    backends: Backends = "torch,ort,ort-fp16",  # type: ignore[assignment]  # parsed by parse_backends
    data: Annotated[Path | None, typer.Option(
        help="A precomputed-feature data folder (<data>/<split>_ims.npy, <split>_caps.txt).")] = None,
    split: Annotated[str, typer.Option(help="Split of --data.")] = "test",
    limit: Annotated[int | None, bounded("Use at most this many images of --data.", 1, MAX_SIZE)] = 1000,
    synthetic: Annotated[int | None, typer.Option(
        max=MAX_SIZE,
        help="N synthetic images (sparse non-negative features at real magnitudes), 5 captions "
             "each (default when no --data: 500).")] = None,
    vocab: Vocab = None,
    batch_size: Annotated[int, bounded("Batch size for encoding.", 1, MAX_SIZE)] = 32,
    device: Device = "cpu",
    threads: Threads = None,
    seed: Seed = 0,
    out: ReportOut = None,
) -> None:
    """Encode the same images and captions with each backend; compare errors and recall with torch FP32.

    Every listed backend is compared with torch FP32 (the reference; it may be listed). --vocab
    tokenises --data captions (default: the checkpoint's, else <onnx-dir>/vocab.json); --seed fixes
    the synthetic inputs; --device picks the torch device and the ort providers.

    Exits 1 when any backend misses the parity bounds of its precision (FP32: max abs error; FP16:
    min row cosine, R@1/5/10 change, top-1 agreement); `python -m vsrn_deploy.core.contract` prints them.
    """
    from vsrn_deploy.artifacts.outputs import check_out_path
    from vsrn_deploy.core.errors import CheckFailed
    from vsrn_deploy.jobs.validate import ValidateConfig, format_report, run_validation, write_report

    if out is not None:  # a bad --out fails now, not after the run
        check_out_path(out, want="file")

    cfg = ValidateConfig(
        checkpoint=str(checkpoint) if checkpoint else None, onnx_dir=str(onnx_dir),
        engine_dir=str(engine_dir), backends=tuple(backends),
        data=str(data) if data else None, split=split, limit=limit, synthetic=synthetic,
        vocab=str(vocab) if vocab else None, batch_size=batch_size, device=device, threads=threads,
        seed=seed)
    report = run_validation(cfg)
    typer.echo(format_report(report))
    if out is not None:
        write_report(report, out)
        typer.echo(f"wrote {out}", err=True)
    if not report["passed"]:
        failed = [n for n, r in report["backends"].items() if not r["passed"]]
        raise CheckFailed(f"validation failed for {', '.join(failed)} (see the table above)")


def register(app: typer.Typer) -> None:
    """Add `validate` to the root app."""
    app.command("validate")(handle_errors(validate))
