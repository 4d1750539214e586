"""Training configuration: one frozen dataclass, defaults = the paper's recipe.

The command line only parses options into `TrainConfig`; checkpoints store `asdict(config)`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.model.config import MAX_GCN_LAYERS, dataclass_from_dict, dimension_problems

IMG_POOLS = ("gru", "mean")
REGION_ORDERS = ("given", "box", "random")
DEVICES = ("auto", "cpu", "cuda")
MAX_WORKERS = 256  # DataLoader worker processes
# the largest Adam learning rate: the paper's is 2e-4; steps of this size already leave any minimum
MAX_LR = 10.0
# the largest triplet margin: cosine similarities of unit embeddings differ by at most 2, so with a
# margin of 2 every negative already counts; more only inflates the loss
MAX_MARGIN = 2.0
# the largest gradient-norm clip (0: off): above it nothing is ever clipped; the paper's is 2
MAX_GRAD_CLIP = 1e6


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs.

    Paper defaults (Li et al., ICCV 2019, and the authors' train.py): Adam, lr 2e-4 divided by 10
    after `lr_update` epochs (15; Flickr30K: 10), 30 epochs, batch 128, gradient-norm clip 2.0,
    margin 0.2, hardest negatives, L = L_M + L_G, D = 2048, word_dim 300, 4 GCN layers, GRU pooling.

    Attributes:
        data: folder holding ``{split}_ims.npy`` / ``{split}_caps.txt``.
        out: run folder (checkpoints, metrics.jsonl, train_summary.json).
        vocab: vocabulary (.json or the authors' .pkl); None looks beside the data
            (``<data>/vocab.json``, ``<data>/../vocab/<name>_vocab.{json,pkl}``).
        batch_size: captions per step and per process (DDP: the global batch is
            batch_size x world size; hardest negatives are mined within each process's batch).
        warmup_epochs: sum over all negatives (instead of the hardest) for the first N epochs, as
            VSE-infinity does; 0 (the paper) mines hardest negatives from the start. Small models
            trained from scratch on small data can collapse under hardest negatives at first.
        group_batches: build training batches from whole groups of look-alike images read from
            ``<data>/{train_split}_groups.npy`` (the synthetic data writes it), one caption per
            image per batch, so the in-batch negatives include an image's look-alikes; False (the
            paper) shuffles captions. Not with DDP.
        val_every: also validate every N steps (0: only at the end of each epoch).
        max_train_images / max_val_images: use only the first N images (quick runs).
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        amp: mixed precision (torch.autocast float16 + GradScaler); CUDA only, ignored on CPU.
        resume: a checkpoint written by a previous run (``<out>/last.pt``) to continue from.
        overwrite: start afresh in a run folder that already holds a model (its run files are
            replaced once this run has saved a model; put back if it fails before that).
        variant: ``auto`` (Flickr30K formulation iff the data folder is named ``f30k_precomp``,
            like the authors), ``coco`` or ``f30k``.
    """

    data: str
    out: str = "runs/vsrn"
    vocab: str | None = None
    train_split: str = "train"
    val_split: str = "dev"
    # model
    embed_size: int = 2048
    word_dim: int = 300
    gcn_layers: int = 4
    img_pool: str = "gru"
    text_layers: int = 1
    caption_hidden: int = 512
    variant: str = "auto"
    # optimisation (the paper's recipe)
    epochs: int = 30
    batch_size: int = 128
    lr: float = 2e-4
    lr_update: int = 15
    grad_clip: float = 2.0
    margin: float = 0.2
    max_violation: bool = True
    warmup_epochs: int = 0
    generation_loss: bool = True
    # data
    region_order: str = "given"
    workers: int = 2
    group_batches: bool = False
    max_train_images: int | None = None
    max_val_images: int | None = None
    # run
    val_every: int = 0
    log_every: int = 20
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    resume: str | None = None
    overwrite: bool = False
    progress: bool = True
    tensorboard: bool = True

    def __post_init__(self) -> None:
        problems = []
        for name in ("embed_size", "word_dim", "text_layers", "caption_hidden", "epochs", "batch_size",
                     "lr_update", "log_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1 (got {getattr(self, name)})")
        for name in ("gcn_layers", "workers", "val_every", "warmup_epochs"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0 (got {getattr(self, name)})")
        if self.workers > MAX_WORKERS:  # each is a process: a huge count forks until the system refuses
            problems.append(f"workers must be <= {MAX_WORKERS} (got {self.workers})")
        if self.batch_size < 2:
            problems.append("batch_size must be >= 2 (the matching loss needs negatives)")
        problems += dimension_problems(self)
        if self.gcn_layers > MAX_GCN_LAYERS:
            problems.append(f"gcn_layers must be <= {MAX_GCN_LAYERS} (got {self.gcn_layers})")
        if not 0 < self.lr <= MAX_LR:  # NaN fails too
            problems.append(f"lr must lie in (0, {MAX_LR:g}] (got {self.lr})")
        for name, top in (("grad_clip", MAX_GRAD_CLIP), ("margin", MAX_MARGIN)):
            if not 0 <= getattr(self, name) <= top:
                problems.append(f"{name} must lie in [0, {top:g}] (got {getattr(self, name)})")
        for name, allowed in (("img_pool", IMG_POOLS), ("region_order", REGION_ORDERS),
                              ("device", DEVICES), ("variant", ("auto", "coco", "f30k"))):
            if getattr(self, name) not in allowed:
                problems.append(f"{name} must be one of {allowed} (got {getattr(self, name)!r})")
        for name in ("max_train_images", "max_val_images"):
            value = getattr(self, name)
            if value is not None and value < 1:
                problems.append(f"{name} must be >= 1 (got {value})")
        if self.resume and self.overwrite:
            problems.append("give --resume or --overwrite, not both")
        if problems:
            raise VsrnError("invalid training config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict (e.g. a checkpoint's train_state); unknown keys are an error."""
        return dataclass_from_dict(cls, data, "training config")

    def replace(self, **changes: Any) -> TrainConfig:
        return replace(self, **changes)
