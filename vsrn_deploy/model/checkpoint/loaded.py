"""What loading produces (`LoadedCheckpoint`) and the steps both formats share to put weights
into a VSRN: clean a state dict, load it strictly with one readable line, move the model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.data.vocab import Vocabulary
from vsrn_deploy.io.safe_pickle import decode_py2_str
from vsrn_deploy.model import VSRN
from vsrn_deploy.model.config import VSRNConfig


@dataclass
class LoadedCheckpoint:
    """A loaded checkpoint of either kind.

    Attributes:
        config: the model config.
        model: the VSRN, in eval mode (authors' files: no caption generator).
        vocab: the vocabulary when the file carries it or it was found beside it, else None.
        vocab_path: where the vocabulary came from / is referenced, if anywhere.
        train_state: epoch, step, best_rsum, ... (authors' files: also `authors_opt`).
        kind: "vsrn-deploy" or "authors".
        sha256: hex digest of the file.
        path: the file.
    """

    config: VSRNConfig
    model: VSRN
    vocab: Vocabulary | None
    vocab_path: str | None
    train_state: dict[str, Any] = field(default_factory=dict)
    kind: str = "vsrn-deploy"
    sha256: str = ""
    path: str = ""


def _clean_state_dict(sd: Any, what: str, source: str) -> dict[str, torch.Tensor]:
    if not isinstance(sd, Mapping):
        raise VsrnError(f"{source}: the {what} weights are a {type(sd).__name__}, not a state dict")
    out = {}
    for key, value in sd.items():
        key = decode_py2_str(key) if isinstance(key, str | bytes) else key
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise VsrnError(f"{source}: the {what} state dict holds {key!r}: {type(value).__name__}, "
                            "expected tensors under string keys")
        out[key.removeprefix("module.")] = value  # DataParallel prefixes
    return out


def _load_strict(module: torch.nn.Module, sd: dict[str, torch.Tensor], what: str, source: str) -> None:
    """load_state_dict(strict=True) with one readable line for missing/extra/mis-shaped keys."""
    expected = module.state_dict()
    sd = dict(sd)
    for key in expected:
        # PyTorch 0.4.0 wrote BatchNorm without num_batches_tracked; it only matters for training
        if key.endswith("num_batches_tracked") and key not in sd:
            sd[key] = torch.zeros((), dtype=torch.long)
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    wrong = [f"{k} {tuple(sd[k].shape)} (expected {tuple(v.shape)})" for k, v in expected.items()
             if k in sd and sd[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"missing {_short(missing)}")
    if unexpected:
        problems.append(f"unexpected {_short(unexpected)}")
    if wrong:
        problems.append(f"wrong shape {_short(wrong)}")
    if problems:
        raise VsrnError(f"{source}: the {what} weights do not fit the model: " + "; ".join(problems))
    module.load_state_dict(sd, strict=True)


def _short(items: list[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{', ...' if len(items) > limit else ''}] ({len(items)} keys)"


def _to_device(model: VSRN, map_location: Any) -> VSRN:
    if map_location is None or callable(map_location) or isinstance(map_location, dict):
        return model
    device = torch.device(map_location)
    return model if device.type == "cpu" else model.to(device)
