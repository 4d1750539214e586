"""Helpers shared by the export tests (models with trained-looking BatchNorm, vocabularies)."""

from __future__ import annotations

from pathlib import Path

import torch

from vsrn_deploy.model import VSRN
from vsrn_deploy.model.config import VSRNConfig


def randomise_batchnorm(model: torch.nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm non-trivial statistics and affine terms (as after training)."""
    gen = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm1d):
            c = mod.num_features
            mod.weight.data = torch.rand(c, generator=gen) + 0.5
            mod.bias.data = torch.rand(c, generator=gen) - 0.5
            mod.running_mean.data = torch.rand(c, generator=gen) * 2 - 1
            mod.running_var.data = torch.rand(c, generator=gen) + 0.5


@torch.no_grad()
def calibrate_batchnorm(model: VSRN, batches: int = 4, batch_size: int = 16, seed: int = 0) -> None:
    """Trained-looking BatchNorm: random affine terms, running statistics measured on synthetic data.

    Random running means would add channel-constant offsets 100x the signal to every GCN layer,
    a model no training produces (and one that loses FP32 digits in the region normalisation).
    """
    from vsrn_deploy.data.synthetic_inputs import region_features as synthetic_region_features

    gen = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    for bn in bns:
        c = bn.num_features
        bn.weight.data = torch.rand(c, generator=gen) + 0.5
        bn.bias.data = (torch.rand(c, generator=gen) - 0.5) * 0.2
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the calibration batches
    cfg = model.config
    model.img_enc.train()
    for i in range(batches):
        x = synthetic_region_features(batch_size, cfg.num_regions, cfg.img_dim, seed=seed + 100 + i)
        model.img_enc(torch.from_numpy(x))
    model.eval()


def tiny_model(seed: int = 0, **overrides) -> VSRN:
    """A tiny eval-mode VSRN (no caption generator) with randomised BatchNorm."""
    torch.manual_seed(seed)
    model = VSRN(VSRNConfig.tiny(**overrides), with_caption=False).eval()
    randomise_batchnorm(model, seed)
    return model


def write_vocab(path: Path, size: int) -> Path:
    """Write a vocab.json of `size` words (the four special tokens first)."""
    from vsrn_deploy.data.vocab import Vocabulary

    words = ["<pad>", "<start>", "<end>", "<unk>"] + [f"word{i}" for i in range(size - 4)]
    Vocabulary.from_words(words).save_json(path)
    return path
