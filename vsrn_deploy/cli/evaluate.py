"""`vsrn-deploy evaluate`: recall of one checkpoint, or a two-model ensemble, on a precomp split.

The work is done by `vsrn_deploy.jobs.evaluate.run_evaluation`; the command only parses options,
prints the table and writes the JSON report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vsrn_deploy.cli.common import handle_errors
from vsrn_deploy.cli.options import MAX_SIZE, Device, ReportOut, Vocab, bounded


def evaluate(
    checkpoints: Annotated[list[Path], typer.Argument(
        help="A checkpoint (vsrn-deploy or the authors' model_best.pth.tar); give two to evaluate "
             "their ensemble (averaged similarities, as the paper reports).")],
    data: Annotated[Path, typer.Option(
        help="The precomp data folder, e.g. data/coco_precomp (holds <split>_ims.npy, "
             "<split>_caps.txt).")],
    split: Annotated[str, typer.Option(
        help="Split to evaluate: test (Flickr30K), testall (COCO 5K, or 1K with --fold5), dev.")] = "test",
    fold5: Annotated[bool, typer.Option(
        "--fold5", help="COCO 1K: mean over 5 folds of 1000 images (n_images/5 in general).")] = False,
    vocab: Vocab = None,
    batch_size: Annotated[int, bounded("Images or captions per forward pass.", 1, MAX_SIZE)] = 128,
    device: Device = "auto",
    max_images: Annotated[int | None, bounded(
        "Evaluate only the first N images and their captions.", 1, MAX_SIZE)] = None,
    out: ReportOut = None,
) -> None:
    """R@1/5/10, medr, meanr and rsum in both directions, with the authors' protocol.

    The vocabulary is the checkpoint's own, else <data>/../vocab/<data_name>_vocab.*, unless --vocab
    names one.
    """
    from vsrn_deploy.jobs.evaluate import run_evaluation

    if out is not None:  # a bad --out fails now, not after the evaluation
        from vsrn_deploy.artifacts.outputs import check_out_path

        check_out_path(out, want="file")
    report = run_evaluation(checkpoints, data, split=split, fold5=fold5, vocab=vocab,
                            batch_size=batch_size, device=device, max_images=max_images)
    from vsrn_deploy.evaluation.recall import format_table

    typer.echo(format_table(report))
    if out is not None:
        from vsrn_deploy.io.files import atomic_write_json

        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out, report)
        typer.echo(f"wrote {out}", err=True)


def register(app: typer.Typer) -> None:
    """Add the `evaluate` command to the root app."""
    app.command("evaluate")(handle_errors(evaluate))
