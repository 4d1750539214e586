"""`vsrn-deploy encode`: embeddings of region features and captions with a checkpoint of either kind."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vsrn_deploy.cli.common import handle_errors
from vsrn_deploy.cli.options import MAX_SIZE, Device, Overwrite, Vocab, bounded

_SHOWN_MATCHES = 20


def encode(
    checkpoint: Annotated[Path, typer.Argument(
        help="A vsrn-deploy checkpoint or one of the authors' model_best.pth.tar files.")],
    images: Annotated[Path | None, typer.Option(
        help="Region features: .npy, float, (images, regions, feature_dim), e.g. test_ims.npy.")] = None,
    captions: Annotated[Path | None, typer.Option(help="Captions, one per line (UTF-8).")] = None,
    vocab: Vocab = None,
    out: Annotated[Path, typer.Option(
        help="Folder for image_embeddings.npy / text_embeddings.npy.")] = Path("embeddings"),
    batch_size: Annotated[int, bounded("Items per forward pass.", 1, MAX_SIZE)] = 128,
    device: Device = "cpu",
    overwrite: Overwrite = False,
) -> None:
    """Write l2-normalised embeddings; with both inputs, print each caption's best-matching image."""
    from vsrn_deploy.jobs.encode_files import encode_files

    result = encode_files(checkpoint, out, images=images, captions=captions, vocab=vocab,
                          batch_size=batch_size, device=device, overwrite=overwrite)
    typer.echo(f"checkpoint: {checkpoint} ({result.checkpoint_kind} format, {result.variant} variant)")
    for name, array in (("images", result.image_embeddings), ("captions", result.text_embeddings)):
        if array is not None:
            key = "image_embeddings" if name == "images" else "text_embeddings"
            typer.echo(f"{name}: {array.shape[0]} x {array.shape[1]} -> {result.files[key]}")
    for row, (image, score) in enumerate(result.top_matches[:_SHOWN_MATCHES]):
        typer.echo(f"caption {row}: image {image} (cosine {score:.4f})  {result.captions[row][:60]}")
    if len(result.top_matches) > _SHOWN_MATCHES:
        typer.echo(f"... {len(result.top_matches) - _SHOWN_MATCHES} more captions")


def register(app: typer.Typer) -> None:
    """Add `encode` to the root app."""
    app.command("encode")(handle_errors(encode))
