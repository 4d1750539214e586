"""Training VSRN with the paper's recipe: L = L_M (hardest-negative triplet) + L_G (caption decoder).

One `train(cfg)` call runs the whole loop: data, model, Adam with a step decay, gradient clipping,
mixed precision on CUDA, DistributedDataParallel under torchrun, validation by rsum on the dev split
(each epoch and every `val_every` steps), best-snapshot selection, resumable checkpoints, a progress
bar and a JSON-lines metrics log.

Files in the run folder (`cfg.out`):

- ``model_best.pt``: the snapshot with the best dev rsum (vsrn-deploy checkpoint format);
- ``last.pt``: the state after the last finished epoch, for ``--resume``;
- ``metrics.jsonl``: one JSON object per logged step / validation (appended on resume);
- ``train_summary.json``: best rsum, its epoch/step, samples/s;
- ``vocab.json``: the vocabulary the model was trained with;
- TensorBoard event files, when the `tensorboard` package is installed.
"""

from __future__ import annotations

import json
import logging
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vsrn_deploy.core.contract import BEST_CHECKPOINT_NAME, LAST_CHECKPOINT_NAME
from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.data.batching import Batch, CaptionDataset, GroupBatchSampler, make_loader
from vsrn_deploy.data.precomp import PrecompSplit
from vsrn_deploy.io.files import atomic_write_json
from vsrn_deploy.io.inputs import load_npy
from vsrn_deploy.model.config import F30K_DATA_NAME, VSRNConfig
from vsrn_deploy.model.vsrn import VSRN
from vsrn_deploy.training.config import TrainConfig
from vsrn_deploy.training.distributed import DistInfo, barrier, init_distributed, shutdown

BEST_NAME, LAST_NAME = BEST_CHECKPOINT_NAME, LAST_CHECKPOINT_NAME  # the run folder's checkpoints
METRICS_NAME = "metrics.jsonl"
SUMMARY_NAME = "train_summary.json"
RUN_FILES = (BEST_NAME, LAST_NAME, METRICS_NAME, SUMMARY_NAME, "vocab.json", "tensorboard")


class TrainStep(nn.Module):
    """Wraps VSRN so that `forward` returns the losses: DDP synchronises gradients through forward."""

    def __init__(self, model: VSRN, margin: float, max_violation: bool, generation_loss: bool) -> None:
        super().__init__()
        self.model = model
        self.margin = margin
        self.max_violation = max_violation
        self.generation_loss = generation_loss

    def forward(self, features: torch.Tensor, token_ids: torch.Tensor,
                lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model.loss(features, token_ids, lengths, margin=self.margin,
                               max_violation=self.max_violation, generation_loss=self.generation_loss)


def find_vocab(data: str | Path, explicit: str | None = None) -> Path:
    """The vocabulary of a dataset: `explicit`, else ``<data>/vocab.json``, else
    ``<data>/../vocab/<name>_vocab.json`` or ``.pkl`` (the authors' ``--vocab_path`` layout)."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise VsrnError(f"vocabulary {path} does not exist")
        return path
    folder = Path(data)
    if not folder.is_dir():
        raise VsrnError(f"data folder {folder} does not exist; generate a synthetic set with "
                        "`vsrn-deploy make-data` or point --data at a SCAN precomp folder")
    candidates = [folder / "vocab.json", folder.parent / "vocab" / f"{folder.name}_vocab.json",
                  folder.parent / "vocab" / f"{folder.name}_vocab.pkl"]
    for path in candidates:
        if path.is_file():
            return path
    raise VsrnError(f"no vocabulary found for {folder} (looked for {', '.join(map(str, candidates))}); "
                    "pass --vocab")


def model_config_for(cfg: TrainConfig, split: PrecompSplit, vocab_size: int) -> VSRNConfig:
    """The VSRN sizes: data-given (regions, feature size, vocabulary) plus the config's choices."""
    data_name = Path(cfg.data).name
    variant = cfg.variant
    if variant == "auto":
        variant = "f30k" if data_name == F30K_DATA_NAME else "coco"
    sizes: dict[str, Any] = {
        "vocab_size": vocab_size, "img_dim": split.feature_dim, "num_regions": split.num_regions,
        "embed_size": cfg.embed_size, "word_dim": cfg.word_dim, "gcn_layers": cfg.gcn_layers,
        "img_pool": cfg.img_pool, "text_layers": cfg.text_layers, "caption_hidden": cfg.caption_hidden,
        "data_name": data_name}
    if variant == "f30k":
        return VSRNConfig.flickr30k(**sizes)
    return VSRNConfig(**sizes)


def learning_rate(cfg: TrainConfig, epoch: int) -> float:
    """The authors' step schedule: lr x 0.1 ** (epoch // lr_update)."""
    return cfg.lr * (0.1 ** (epoch // cfg.lr_update))


def _rng_state() -> dict[str, Any]:
    # checkpoints hold plain containers and tensors only: numpy's key array becomes a tensor
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
            "python": list(random.getstate())}


def _set_rng_state(state: dict[str, Any]) -> None:
    try:
        torch.set_rng_state(state["torch"])
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    except (KeyError, TypeError, ValueError, RuntimeError):
        pass  # an older or foreign checkpoint: continue with fresh seeds rather than fail


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class _MetricsLog:
    """JSON lines on rank 0, plus TensorBoard scalars when the package is installed."""

    def __init__(self, out: Path, enabled: bool, tensorboard: bool) -> None:
        self.enabled = enabled
        self.path = out / METRICS_NAME
        self.writer = None
        if enabled and tensorboard:
            try:  # lazily: tensorboard is optional
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(out / "tensorboard"))
            except ImportError:
                self.writer = None

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")
        if self.writer is not None:
            prefix = record.get("event", "train")
            for key, value in record.items():
                if isinstance(value, int | float) and key not in ("step", "epoch"):
                    self.writer.add_scalar(f"{prefix}/{key}", value, record.get("step", 0))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@dataclass
class _State:
    epoch: int = 0  # the next epoch to run
    step: int = 0
    best_rsum: float = -math.inf
    best: dict[str, Any] = field(default_factory=dict)
    samples: int = 0  # samples trained in this process's run (global: x world size)
    train_seconds: float = 0.0


_log = logging.getLogger(__name__)  # progress lines; the command line shows them on stderr


def _echo(info: DistInfo, message: str) -> None:
    if info.is_main:  # one line per run, not one per process
        _log.info(message)


def validate(model: VSRN, dataset: CaptionDataset, batch_size: int, device: torch.device) -> dict[str, Any]:
    """Encode the validation split and compute the authors' recall report (rsum etc.).

    Args:
        model: the (unwrapped) model; put in eval mode here and back in train mode after.
        dataset: the validation captions (image features repeated per caption).
        batch_size: encoding batch size.
        device: where to encode.
    Returns:
        `vsrn_deploy.evaluation.recall_report` of the split.
    """
    from vsrn_deploy.evaluation.recall import recall_report
    from vsrn_deploy.model.encode import encode_split

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            img_embs, cap_embs = encode_split(model, dataset, batch_size=batch_size, device=str(device))
    finally:
        model.train(was_training)
    return recall_report(np.asarray(img_embs), np.asarray(cap_embs),
                         captions_per_image=dataset.split.captions_per_image)


def _save(path: Path, model: VSRN, vocab: Any, vocab_path: Path, cfg: TrainConfig, state: _State,
          optimizer: torch.optim.Optimizer, scaler: Any, epoch_done: bool) -> None:
    from vsrn_deploy.model.checkpoint import save_checkpoint

    train_state = {
        "epoch": state.epoch + 1 if epoch_done else state.epoch,
        "step": state.step,
        "best_rsum": state.best_rsum if math.isfinite(state.best_rsum) else None,
        "best": state.best,
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler.is_enabled() else None,
        "rng": _rng_state(),
        "train_config": cfg.to_dict(),
    }
    save_checkpoint(str(path), model, vocab=vocab, vocab_path=str(vocab_path), train_state=train_state)


def _resume(cfg: TrainConfig, model: VSRN, optimizer: torch.optim.Optimizer, scaler: Any,
            device: torch.device) -> _State:
    from vsrn_deploy.model.checkpoint import load_checkpoint

    path = Path(cfg.resume or "")
    if path.is_dir():
        path = path / LAST_NAME
    if not path.is_file():
        raise VsrnError(f"--resume: checkpoint {path} does not exist")
    loaded = load_checkpoint(str(path), map_location="cpu")
    if loaded.config != model.config:
        saved, now = loaded.config.to_dict(), model.config.to_dict()
        diff = {k: (saved[k], now[k]) for k in saved if saved[k] != now[k]}
        raise VsrnError(f"--resume: {path} was trained with a different model ({{option: (saved, now)}}: "
                        f"{diff}); use the same sizes and data")
    ts = loaded.train_state or {}
    if "optimizer" not in ts or "epoch" not in ts:
        raise VsrnError(f"--resume: {path} holds no training state (optimizer, epoch); it is a model "
                        "snapshot, not a training checkpoint")
    model.img_enc.load_state_dict(loaded.model.img_enc.state_dict())
    model.txt_enc.load_state_dict(loaded.model.txt_enc.state_dict())
    if model.caption is not None and loaded.model.caption is not None:
        model.caption.load_state_dict(loaded.model.caption.state_dict())
    elif (model.caption is None) != (loaded.model.caption is None):
        how = "without" if loaded.model.caption is None else "with"
        raise VsrnError(f"--resume: {path} was trained {how} the generation loss; resume with the same "
                        "--generation-loss setting")
    model.to(device)
    optimizer.load_state_dict(ts["optimizer"])
    if ts.get("scaler") and scaler.is_enabled():
        scaler.load_state_dict(ts["scaler"])
    if ts.get("rng"):
        _set_rng_state(ts["rng"])
    best = ts.get("best_rsum")
    return _State(epoch=int(ts["epoch"]), step=int(ts.get("step", 0)),
                  best_rsum=-math.inf if best is None else float(best), best=dict(ts.get("best") or {}))


def _group_sampler(cfg: TrainConfig, split: PrecompSplit) -> GroupBatchSampler:
    """The group batch sampler of `cfg.group_batches`, from ``<data>/{split}_groups.npy``."""
    path = split.folder / f"{split.split}_groups.npy"
    if not path.is_file():
        raise VsrnError(f"--group-batches needs {path} (int group id per image; "
                        "`vsrn-deploy make-data` writes it); it does not exist")
    groups = load_npy(path, "group ids", mmap=False, fix="regenerate it with vsrn-deploy make-data")
    if groups.ndim != 1 or groups.shape[0] < split.n_images or groups.dtype.kind not in "iu":
        raise VsrnError(f"{path} must hold one integer group id per image ({split.n_images}); "
                        f"got {groups.dtype} {groups.shape}")
    return GroupBatchSampler(groups[: split.n_images], split.captions_per_image, cfg.batch_size,
                             seed=cfg.seed, drop_last=True)


def train(cfg: TrainConfig, *, on_log: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """Train VSRN; returns the path of the best checkpoint (by dev rsum).

    Args:
        cfg: the run's configuration.
        on_log: optional callback receiving every metrics record (tests, notebooks).
    Returns:
        ``<out>/model_best.pt``.
    """
    import contextlib

    from vsrn_deploy.artifacts.outputs import check_run_folder, run_folder_guard
    from vsrn_deploy.data.vocab import load_vocab

    # before anything is created: a run folder holding a model needs --resume or --overwrite
    check_run_folder(cfg.out, resume=bool(cfg.resume), overwrite=cfg.overwrite)
    find_vocab(cfg.data, cfg.vocab)
    info = init_distributed(cfg.device)
    try:
        # a run that fails before it saved a model leaves nothing behind (rank 0 owns the folder)
        guard = (run_folder_guard(cfg.out, RUN_FILES, overwrite=cfg.overwrite) if info.is_main
                 else contextlib.nullcontext())
        with guard:
            return _train(cfg, info, load_vocab, on_log)
    finally:
        shutdown(info)


@dataclass
class _Run:
    """Everything one training run holds, built by `_setup` and used by the stages below."""

    cfg: TrainConfig
    info: DistInfo
    out: Path
    vocab: Any
    vocab_path: Path
    train_split: PrecompSplit
    model_cfg: VSRNConfig
    model: VSRN
    optimizer: torch.optim.Optimizer
    scaler: Any
    use_amp: bool
    state: _State
    step_module: nn.Module
    train_set: CaptionDataset
    val_set: CaptionDataset
    sampler: Any
    group_sampler: GroupBatchSampler | None
    log: _MetricsLog
    on_log: Callable[[dict[str, Any]], None] | None

    @property
    def device(self) -> torch.device:
        return self.info.device

    def emit(self, record: dict[str, Any]) -> None:
        self.log.write(record)
        if self.on_log is not None and self.info.is_main:
            self.on_log(record)

    def save(self, name: str, *, epoch_done: bool) -> None:
        _save(self.out / name, self.model, self.vocab, self.vocab_path, self.cfg, self.state, self.optimizer,
              self.scaler, epoch_done=epoch_done)


def _setup(cfg: TrainConfig, info: DistInfo, load_vocab: Callable[[str], Any],
           on_log: Callable[[dict[str, Any]], None] | None) -> _Run:
    """Stage 1: data, vocabulary, model, optimiser (resumed when asked), samplers and the log."""
    device = info.device
    seed_everything(cfg.seed)
    out = Path(cfg.out)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
    vocab_path = find_vocab(cfg.data, cfg.vocab)
    vocab = load_vocab(str(vocab_path))
    train_split = PrecompSplit(cfg.data, cfg.train_split, max_images=cfg.max_train_images)
    val_split = PrecompSplit(cfg.data, cfg.val_split, max_images=cfg.max_val_images)
    if (val_split.num_regions, val_split.feature_dim) != (train_split.num_regions, train_split.feature_dim):
        raise VsrnError(f"{cfg.val_split} features are {val_split.num_regions} x {val_split.feature_dim} "
                        f"but {cfg.train_split} features are {train_split.num_regions} x "
                        f"{train_split.feature_dim}")
    model_cfg = model_config_for(cfg, train_split, len(vocab))
    model = VSRN(model_cfg, with_caption=cfg.generation_loss).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    state = _resume(cfg, model, optimizer, scaler, device) if cfg.resume else _State()

    step_module: nn.Module = TrainStep(model, cfg.margin, cfg.max_violation, cfg.generation_loss)
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel

        step_module = DistributedDataParallel(
            step_module, device_ids=[device.index] if device.type == "cuda" else None)
    train_set = CaptionDataset(train_split, vocab, region_order=cfg.region_order, seed=cfg.seed)
    val_order = "given" if cfg.region_order == "random" else cfg.region_order
    val_set = CaptionDataset(val_split, vocab, region_order=val_order, seed=cfg.seed)
    sampler = None
    if info.enabled:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(train_set, num_replicas=info.world_size, rank=info.rank,
                                     shuffle=True, seed=cfg.seed, drop_last=True)
    group_sampler = _group_sampler(cfg, train_split) if cfg.group_batches else None
    if group_sampler is not None and info.enabled:
        raise VsrnError("group batching (--group-batches) is not supported under torchrun/DDP")
    log = _MetricsLog(out, info.is_main, cfg.tensorboard)
    return _Run(cfg, info, out, vocab, vocab_path, train_split, model_cfg, model, optimizer, scaler, use_amp,
                state, step_module, train_set, val_set, sampler, group_sampler, log, on_log)


def _validate_and_keep_best(run: _Run, epoch: int) -> None:
    """Stage 2a: recall on the validation split (rank 0); the best so far is saved."""
    info, state = run.info, run.state
    if info.is_main:
        report = validate(run.model, run.val_set, run.cfg.batch_size, run.device)
        rsum = float(report["rsum"])
        numbers = {k: float(v) for k, v in report.items()
                   if isinstance(v, int | float) and not isinstance(v, bool)}
        run.emit({"event": "val", "epoch": epoch, "step": state.step, **numbers})
        i2t = "/".join(f"{report[f'i2t_r{k}']:.1f}" for k in (1, 5, 10))
        t2i = "/".join(f"{report[f't2i_r{k}']:.1f}" for k in (1, 5, 10))
        _echo(info, f"[val] epoch {epoch} step {state.step}: rsum {rsum:.2f}  i2t R@1/5/10 {i2t}  "
                    f"t2i R@1/5/10 {t2i}")
        if rsum > state.best_rsum:
            state.best_rsum = rsum
            state.best = {"epoch": epoch, "step": state.step, **numbers}
            run.save(BEST_NAME, epoch_done=False)
    barrier(info)


def _train_epoch(run: _Run, epoch: int) -> None:
    """Stage 2: one epoch of steps (learning rate, hardest-negative switch, loader, updates, logs)."""
    cfg, info, state, optimizer, scaler = run.cfg, run.info, run.state, run.optimizer, run.scaler
    device = run.device
    state.epoch = epoch
    lr = learning_rate(cfg, epoch)
    for group in optimizer.param_groups:
        group["lr"] = lr
    # hardest negatives after the warm-up (VSE-infinity); the paper: from the first step
    step_core = run.step_module.module if info.enabled else run.step_module
    step_core.max_violation = cfg.max_violation and epoch >= cfg.warmup_epochs
    run.train_set.set_epoch(epoch)
    if run.sampler is not None:
        run.sampler.set_epoch(epoch)
    if run.group_sampler is not None:
        run.group_sampler.set_epoch(epoch)
    loader = make_loader(run.train_set, None, cfg.batch_size, shuffle=True, workers=cfg.workers,
                         seed=cfg.seed * 1000 + epoch, sampler=run.sampler, drop_last=True,
                         pin_memory=device.type == "cuda", batch_sampler=run.group_sampler)
    if len(loader) == 0:
        raise VsrnError(f"{len(run.train_split)} training captions do not fill one batch of "
                        f"{cfg.batch_size} per process; lower --batch-size")
    bar = _progress(loader, cfg.progress and info.is_main, f"epoch {epoch}")
    epoch_start = time.perf_counter()
    epoch_samples = 0
    for batch in bar:
        batch: Batch
        batch.check_finite()
        batch = batch.to(device, non_blocking=True)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=run.use_amp):
            losses = run.step_module(batch.features, batch.token_ids, batch.lengths)
        loss = losses["loss"]
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            raise VsrnError(f"the loss became {loss_value} at step {state.step}; lower --lr or "
                            "check the data")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.grad_clip > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        state.step += 1
        n = len(batch) * info.world_size
        epoch_samples += n
        elapsed = time.perf_counter() - epoch_start
        speed = epoch_samples / max(elapsed, 1e-9)
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{loss_value:.3f}", samples_s=f"{speed:.0f}")
        if state.step % cfg.log_every == 0:
            run.emit({"event": "train", "epoch": epoch, "step": state.step, "lr": lr,
                      "loss": loss_value, "matching": float(losses["matching"].detach()),
                      "generation": float(losses["generation"].detach()), "samples_per_s": speed})
        if cfg.val_every and state.step % cfg.val_every == 0:
            pause = time.perf_counter()
            _validate_and_keep_best(run, epoch)
            epoch_start += time.perf_counter() - pause  # speed counts training time only
    if hasattr(bar, "close"):
        bar.close()
    seconds = time.perf_counter() - epoch_start
    state.samples += epoch_samples
    state.train_seconds += seconds
    run.emit({"event": "epoch", "epoch": epoch, "step": state.step, "lr": lr,
              "samples_per_s": epoch_samples / max(seconds, 1e-9), "world_size": info.world_size,
              "steps_in_epoch": len(loader)})
    _echo(info, f"epoch {epoch}: {epoch_samples} samples in {seconds:.1f} s = "
                f"{epoch_samples / max(seconds, 1e-9):.0f} samples/s, lr {lr:g}")


def _write_summary(run: _Run) -> Path:
    """Stage 3: train_summary.json (rank 0); returns the best checkpoint's path."""
    state, out = run.state, run.out
    best_path = out / BEST_NAME
    if run.info.is_main:
        summary = {"best_rsum": state.best_rsum if math.isfinite(state.best_rsum) else None,
                   "best": state.best, "steps": state.step, "world_size": run.info.world_size,
                   "samples_per_s": state.samples / state.train_seconds if state.train_seconds else None,
                   "best_checkpoint": str(best_path), "last_checkpoint": str(out / LAST_NAME),
                   "device": str(run.device), "amp": run.use_amp, "model": run.model_cfg.to_dict(),
                   "train_config": run.cfg.to_dict()}
        atomic_write_json(out / SUMMARY_NAME, summary)
        if summary["samples_per_s"]:
            _echo(run.info, f"done: best rsum {state.best_rsum:.2f} ({best_path}); "
                            f"{summary['samples_per_s']:.0f} samples/s")
    return best_path


def _train(cfg: TrainConfig, info: DistInfo, load_vocab: Callable[[str], Any],
           on_log: Callable[[dict[str, Any]], None] | None) -> Path:
    """The run's stages: set up; per epoch train, validate, save the last; write the summary."""
    run = _setup(cfg, info, load_vocab, on_log)
    if info.is_main:
        split, state = run.train_split, run.state
        _echo(info, f"training {run.model_cfg.data_name}: {len(split)} captions / {split.n_images} "
                    f"images ({split.num_regions} x {split.feature_dim}), vocab {len(run.vocab)}, "
                    f"device {run.device}{' (AMP)' if run.use_amp else ''}, world size {info.world_size}, "
                    f"epochs {state.epoch}..{cfg.epochs - 1}")
        run.vocab.save_json(str(run.out / "vocab.json"))
    run.model.train()
    for epoch in range(run.state.epoch, cfg.epochs):
        _train_epoch(run, epoch)
        _validate_and_keep_best(run, epoch)
        if info.is_main:
            run.save(LAST_NAME, epoch_done=True)
        barrier(info)
    run.log.close()
    return _write_summary(run)


def _progress(loader: Any, enabled: bool, desc: str) -> Any:
    """A tqdm bar when enabled and tqdm is installed; the plain loader otherwise."""
    if not enabled:
        return loader
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return loader
    return tqdm(loader, desc=desc, leave=False, dynamic_ncols=True, file=sys.stderr)
