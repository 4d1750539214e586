"""`vsrn-deploy train`: parse options into a `TrainConfig` and call `vsrn_deploy.training.train`.

Multi-GPU (one process per GPU, DistributedDataParallel):

    torchrun --standalone --nproc-per-node 4 -m vsrn_deploy train --data data/coco_precomp --out runs/coco
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vsrn_deploy.cli.common import handle_errors
from vsrn_deploy.cli.options import MAX_SIZE, Device, Overwrite, Seed, Vocab, bounded
from vsrn_deploy.model.config import MAX_DIM, MAX_GCN_LAYERS  # bounded where the model is configured
from vsrn_deploy.training.config import (
    MAX_GRAD_CLIP,
    MAX_LR,
    MAX_MARGIN,
    MAX_WORKERS,
)

_DIM = "a model dimension; weights grow with its square"


def train_command(
    data: Annotated[Path, typer.Option(help="Folder with {split}_ims.npy and {split}_caps.txt "
                                            "(SCAN precomp layout, or `vsrn-deploy make-data`).")],
    out: Annotated[Path, typer.Option(help="Run folder: model_best.pt, last.pt, metrics.jsonl.")] = Path(
        "runs/vsrn"),
    vocab: Vocab = None,
    epochs: Annotated[int, bounded("Training epochs.", 1, MAX_SIZE)] = 30,
    batch_size: Annotated[int, bounded(
        "Captions per step (per process under torchrun).", 2, MAX_SIZE,
        why="the matching loss needs a negative in the batch")] = 128,
    lr: Annotated[float, bounded("Adam learning rate.", 0, MAX_LR, above=True,
                                 why="the paper's is 2e-4; larger steps leave any minimum")] = 2e-4,
    lr_update: Annotated[int, bounded("Divide the learning rate by 10 every N epochs.", 1, MAX_SIZE)] = 15,
    grad_clip: Annotated[float, bounded("Gradient-norm clip (0: off).", 0, MAX_GRAD_CLIP,
                                        why="a larger clip never clips")] = 2.0,
    margin: Annotated[float, bounded("Triplet-loss margin.", 0, MAX_MARGIN,
                                     why="cosine similarities differ by at most 2")] = 0.2,
    max_violation: Annotated[bool, typer.Option(
        "--max-violation/--sum-violation", help="Hardest negatives (VSE++) or the sum over all.")] = True,
    warmup_epochs: Annotated[int, bounded(
        "Sum over all negatives for the first N epochs, then hardest (0: the paper).", 0, MAX_SIZE)] = 0,
    generation_loss: Annotated[bool, typer.Option(
        "--generation-loss/--no-generation-loss", help="Add the caption loss L_G to L_M.")] = True,
    embed_size: Annotated[int, bounded("Joint embedding size D.", 1, MAX_DIM, why=_DIM)] = 2048,
    word_dim: Annotated[int, bounded("Word embedding size.", 1, MAX_DIM, why=_DIM)] = 300,
    gcn_layers: Annotated[int, bounded("Region relationship reasoning (GCN) layers.", 0,
                                       MAX_GCN_LAYERS, why="the paper uses 4")] = 4,
    img_pool: Annotated[str, typer.Option(help="Image pooling: gru (paper) or mean (baseline).")] = "gru",
    caption_hidden: Annotated[int, bounded("Caption decoder hidden size.", 1, MAX_DIM, why=_DIM)] = 512,
    variant: Annotated[str, typer.Option(
        help="auto (f30k iff the data folder is f30k_precomp), coco or f30k.")] = "auto",
    region_order: Annotated[str, typer.Option(
        help="Region order fed to the GRU: given, box (largest box first) or random.")] = "given",
    workers: Annotated[int, bounded("DataLoader worker processes.", 0, MAX_WORKERS,
                                    why="each is a process")] = 2,
    group_batches: Annotated[bool, typer.Option(
        "--group-batches/--no-group-batches",
        help="Batches of whole groups of look-alike images from {split}_groups.npy (synthetic "
             "data), so negatives include them; off: shuffled captions (the paper).")] = False,
    max_train_images: Annotated[int | None, bounded("Use only the first N train images.", 1, MAX_SIZE)]
        = None,
    max_val_images: Annotated[int | None, bounded("Use only the first N dev images.", 1, MAX_SIZE)] = None,
    val_every: Annotated[int, bounded("Also validate every N steps (0: per epoch).", 0, MAX_SIZE)] = 0,
    log_every: Annotated[int, bounded("Write a metrics record every N steps.", 1, MAX_SIZE)] = 20,
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
