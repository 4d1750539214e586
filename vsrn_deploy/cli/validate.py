"""`vsrn-deploy validate`: every backend against the eager FP32 model, on the same inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vsrn_deploy.cli.common import handle_errors


def validate(
    checkpoint: Annotated[Path | None, typer.Option(
        help="The checkpoint (vsrn-deploy or the authors'); default: the one the export's manifest "
             "names, when it still exists.")] = None,
    onnx_dir: Annotated[Path, typer.Option(help="The export folder (ort backends).")] = Path("export"),
    engine_dir: Annotated[Path, typer.Option(help="The engines folder (trt).")] = Path("engines"),
    backends: Annotated[str, typer.Option(
        help="Comma-separated backends to check against torch: torch-deploy, torch-compile, ort, "
             "ort-fp16, ort-int8, trt (torch, the reference, may be listed).")] = "torch,ort,ort-fp16",
    data: Annotated[Path | None, typer.Option(
        help="A precomputed-feature data folder (<data>/<split>_ims.npy, <split>_caps.txt).")] = None,
    split: Annotated[str, typer.Option(help="Split of --data.")] = "test",
    limit: Annotated[int | None, typer.Option(help="Use at most this many images of --data.")] = 1000,
    synthetic: Annotated[int | None, typer.Option(
        help="N synthetic images (sparse non-negative features at real magnitudes), 5 captions "
             "each (default when no --data: 500).")] = None,
    vocab: Annotated[Path | None, typer.Option(
        help="Vocabulary for --data captions (default: the checkpoint's, else <onnx-dir>/vocab.json).")]
        = None,
    batch_size: Annotated[int, typer.Option(help="Batch size for encoding.")] = 32,
    device: Annotated[str, typer.Option(help="cpu or cuda (torch backends, ort providers).")] = "cpu",
    threads: Annotated[int | None, typer.Option(help="Intra-op threads for torch and onnxruntime.")]
        = None,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic inputs.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Write the JSON report here.")] = None,
) -> None:
    """Encode the same images and captions with each backend; compare errors and recall with torch FP32.

    Exits 1 when any backend misses the parity bounds of its precision (FP32: max abs error; FP16:
    min row cosine, R@1/5/10 change, top-1 agreement); `python -m vsrn_deploy.core.contract` prints them.
    """
    from vsrn_deploy.core.errors import CheckFailed
    from vsrn_deploy.io.outputs import check_out_path
    from vsrn_deploy.jobs.validate import ValidateConfig, format_report, run_validation, write_report

    if out is not None:  # a bad --out fails now, not after the run
        check_out_path(out, want="file")

    cfg = ValidateConfig(
        checkpoint=str(checkpoint) if checkpoint else None, onnx_dir=str(onnx_dir),
        engine_dir=str(engine_dir), backends=tuple(b.strip() for b in backends.split(",") if b.strip()),
        data=str(data) if data else None, split=split, limit=limit, synthetic=synthetic,
        vocab=str(vocab) if vocab else None, batch_size=batch_size, device=device, threads=threads,
        seed=seed)
    report = run_validation(cfg, log=lambda msg: typer.echo(msg, err=True))
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
