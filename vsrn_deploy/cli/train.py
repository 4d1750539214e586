"""`vsrn-deploy train`: parse options into a `TrainConfig` and call `vsrn_deploy.training.train`.

Multi-GPU (one process per GPU, DistributedDataParallel):

    torchrun --standalone --nproc-per-node 4 -m vsrn_deploy train --data data/coco_precomp --out runs/coco
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vsrn_deploy.cli.common import handle_errors
from vsrn_deploy.cli.options import Device, Overwrite, Seed, Vocab


def train_command(
    data: Annotated[Path, typer.Option(help="Folder with {split}_ims.npy and {split}_caps.txt "
                                            "(SCAN precomp layout, or `vsrn-deploy make-data`).")],
    out: Annotated[Path, typer.Option(help="Run folder: model_best.pt, last.pt, metrics.jsonl.")] = Path(
        "runs/vsrn"),
    vocab: Vocab = None,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 30,
    batch_size: Annotated[int, typer.Option(
        help="Captions per step (per process under torchrun).")] = 128,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 2e-4,
    lr_update: Annotated[int, typer.Option(help="Divide the learning rate by 10 every N epochs.")] = 15,
    grad_clip: Annotated[float, typer.Option(help="Gradient-norm clip (0: off).")] = 2.0,
    margin: Annotated[float, typer.Option(help="Triplet-loss margin.")] = 0.2,
    max_violation: Annotated[bool, typer.Option(
        "--max-violation/--sum-violation", help="Hardest negatives (VSE++) or the sum over all.")] = True,
    warmup_epochs: Annotated[int, typer.Option(
        help="Sum over all negatives for the first N epochs, then hardest (0: the paper).")] = 0,
    generation_loss: Annotated[bool, typer.Option(
        "--generation-loss/--no-generation-loss", help="Add the caption loss L_G to L_M.")] = True,
    embed_size: Annotated[int, typer.Option(help="Joint embedding size D.")] = 2048,
    word_dim: Annotated[int, typer.Option(help="Word embedding size.")] = 300,
    gcn_layers: Annotated[int, typer.Option(help="Region relationship reasoning (GCN) layers.")] = 4,
    img_pool: Annotated[str, typer.Option(help="Image pooling: gru (paper) or mean (baseline).")] = "gru",
    caption_hidden: Annotated[int, typer.Option(help="Caption decoder hidden size.")] = 512,
    variant: Annotated[str, typer.Option(
        help="auto (f30k iff the data folder is f30k_precomp), coco or f30k.")] = "auto",
    region_order: Annotated[str, typer.Option(
        help="Region order fed to the GRU: given, box (largest box first) or random.")] = "given",
    workers: Annotated[int, typer.Option(help="DataLoader worker processes.")] = 2,
    group_batches: Annotated[bool, typer.Option(
        "--group-batches/--no-group-batches",
        help="Batches of whole groups of look-alike images from {split}_groups.npy (synthetic "
             "data), so negatives include them; off: shuffled captions (the paper).")] = False,
    max_train_images: Annotated[int | None, typer.Option(
        help="Use only the first N train images.")] = None,
    max_val_images: Annotated[int | None, typer.Option(help="Use only the first N dev images.")] = None,
    val_every: Annotated[int, typer.Option(help="Also validate every N steps (0: per epoch).")] = 0,
    log_every: Annotated[int, typer.Option(help="Write a metrics record every N steps.")] = 20,
    seed: Seed = 0,
    device: Device = "auto",
    amp: Annotated[bool, typer.Option("--amp/--no-amp", help="Mixed precision on CUDA.")] = True,
    resume: Annotated[Path | None, typer.Option(
        help="Continue from a checkpoint (a run folder means its last.pt).")] = None,
    overwrite: Overwrite = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bar.")] = True,
) -> None:
    """Train VSRN (defaults: the paper's recipe) with dev-rsum model selection.

    A run folder that already holds a model needs --resume, or --overwrite to start afresh.
    """
    from vsrn_deploy.training import TrainConfig
    from vsrn_deploy.training.trainer import train

    cfg = TrainConfig(
        data=str(data), out=str(out), vocab=str(vocab) if vocab else None, epochs=epochs,
        batch_size=batch_size, lr=lr, lr_update=lr_update, grad_clip=grad_clip, margin=margin,
        max_violation=max_violation, warmup_epochs=warmup_epochs, generation_loss=generation_loss,
        embed_size=embed_size,
        word_dim=word_dim, gcn_layers=gcn_layers, img_pool=img_pool, caption_hidden=caption_hidden,
        variant=variant, region_order=region_order, workers=workers, group_batches=group_batches,
        max_train_images=max_train_images, max_val_images=max_val_images, val_every=val_every,
        log_every=log_every, seed=seed, device=device, amp=amp,
        resume=str(resume) if resume else None, overwrite=overwrite, progress=progress)
    best = train(cfg)
    typer.echo(str(best))


def register(app: typer.Typer) -> None:
    """Add `train` to the root app."""
    app.command("train")(handle_errors(train_command))
