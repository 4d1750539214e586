"""Checkpoints: vsrn-deploy's own format and the authors' `model_best.pth.tar`, loaded safely.

vsrn-deploy's format is a dict (loadable with ``torch.load(weights_only=True)``)::

    {"format": "vsrn-deploy-checkpoint", "format_version": 1,
     "config": asdict(VSRNConfig), "with_caption": bool, "state_dict": VSRN.state_dict(),
     "vocab": {"words": [...]} | None, "vocab_path": str | None,
     "train_state": {epoch, step, best_rsum, optimizer, scheduler, rng, ...}, "versions": {...}}

The authors' format (their train.py) is ``{"epoch", "model": [image_sd, text_sd], "best_rsum",
"opt": argparse.Namespace, "Eiters"}``; the released files were written by PyTorch 0.4 under
Python 2 on a GPU (legacy non-zip serialisation, byte strings, CUDA-tagged storages). Every file is
read with ``torch.load(weights_only=True)``, allowing `argparse.Namespace` and nothing else beyond
torch's own weights-only set, so a hostile pickle fails before any of its code runs. The config is
derived from `opt` and checked against the weights' shapes. Their files carry no caption generator,
so their models are built with ``with_caption=False``.

One module per job; this package exposes the names callers use:

- `safe_load`: the weights-only ``torch.load``, its allow-list and its one-line refusals;
- `loaded`: `LoadedCheckpoint` and the state-dict steps both formats share;
- `native`: vsrn-deploy's own format (`save_checkpoint`, `FORMAT_NAME`, `FORMAT_VERSION`);
- `authors`: reading the authors' format (`config_from_authors`);
- `vocab_lookup`: the vocabulary beside a model (`find_authors_vocab`, `resolve_vocab`);
- `authors_writer`: writing the authors' layout for tests and demos (`save_authors_checkpoint`,
  `authors_opt`);
- here: `load_checkpoint` / `load_model`, which tell the two formats apart.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.model import VSRN
from vsrn_deploy.model.checkpoint.authors import _load_authors, config_from_authors
from vsrn_deploy.model.checkpoint.authors_writer import authors_opt, save_authors_checkpoint
from vsrn_deploy.model.checkpoint.loaded import LoadedCheckpoint
from vsrn_deploy.model.checkpoint.native import FORMAT_NAME, FORMAT_VERSION, _load_own, save_checkpoint
from vsrn_deploy.model.checkpoint.safe_load import _torch_load
from vsrn_deploy.model.checkpoint.vocab_lookup import find_authors_vocab, resolve_vocab

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "LoadedCheckpoint", "save_checkpoint", "load_checkpoint",
           "load_model", "save_authors_checkpoint", "authors_opt", "config_from_authors",
           "find_authors_vocab", "resolve_vocab"]


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> LoadedCheckpoint:
    """Load a vsrn-deploy checkpoint or one of the authors' files, never running code from it.

    Args:
        path: the file.
        map_location: where tensors go ("cpu" works for CUDA-tagged files on any machine).
    Returns:
        A LoadedCheckpoint with an eval-mode model.
    Raises:
        VsrnError: missing, empty, truncated, hostile or unrelated file, or inconsistent contents.
    """
    path = Path(path)
    obj = _torch_load(path, map_location)
    if isinstance(obj, Mapping) and obj.get("format") == FORMAT_NAME:
        return _load_own(dict(obj), path, map_location)
    if isinstance(obj, Mapping) and "model" in obj:
        return _load_authors(dict(obj), path, map_location)
    if isinstance(obj, Mapping):
        keys = [str(k) for k in list(obj)[:8]]
        raise VsrnError(f"{path} is a PyTorch file but not a VSRN checkpoint: expected a vsrn-deploy "
                        f"checkpoint or the authors' dict with 'model' and 'opt' (top-level keys: "
                        f"{keys}{' ...' if len(obj) > 8 else ''})")
    raise VsrnError(f"{path} is a PyTorch file holding a {type(obj).__name__}, not a VSRN checkpoint")


def load_model(path: str | os.PathLike[str], map_location: Any = "cpu") -> VSRN:
    """The eval-mode VSRN of a checkpoint of either kind (see `load_checkpoint`)."""
    return load_checkpoint(path, map_location=map_location).model
