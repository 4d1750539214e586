"""PyTorch VSRN: encoders, caption generator, losses (torch), its config (`config`, no torch) and
checkpoints (`checkpoint`). The torch modules load on first use, so `vsrn_deploy.model.config`
imports without torch."""

from __future__ import annotations

from typing import Any

_LAZY = {"VSRN": "vsrn", "ImageEncoder": "encoders", "TextEncoder": "encoders", "RsGCN": "encoders",
         "l2norm": "encoders", "contrastive_loss": "loss", "masked_nll_loss": "loss"}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"vsrn_deploy.model.{_LAZY[name]}"), name)
    raise AttributeError(name)
