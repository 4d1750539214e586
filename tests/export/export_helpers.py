"""Helpers shared by the export tests (models with trained-looking BatchNorm, vocabularies)."""

from __future__ import annotations

from pathlib import Path

import torch

from vsrn_deploy.config import VSRNConfig
from vsrn_deploy.model import VSRN


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


def tiny_model(seed: int = 0, **overrides) -> VSRN:
    """A tiny eval-mode VSRN (no caption generator) with randomised BatchNorm."""
    torch.manual_seed(seed)
    model = VSRN(VSRNConfig.tiny(**overrides), with_caption=False).eval()
    randomise_batchnorm(model, seed)
    return model


def write_vocab(path: Path, size: int) -> Path:
    """Write a vocab.json of `size` words (the four special tokens first)."""
    from vsrn_deploy.vocab import Vocabulary

    words = ["<pad>", "<start>", "<end>", "<unk>"] + [f"word{i}" for i in range(size - 4)]
    Vocabulary.from_words(words).save_json(path)
    return path
