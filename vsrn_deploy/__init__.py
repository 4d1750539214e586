"""vsrn-deploy: VSRN image-text retrieval from PyTorch checkpoints to verified ONNX and TensorRT engines.

Importing this package imports no heavy module: `load_model` pulls in torch when called, and
`load_vocab` (used by the serving runtime) never does.
"""

from __future__ import annotations

from typing import Any

from vsrn_deploy.core.version import __version__

__all__ = ["load_model", "load_vocab", "__version__"]


def load_model(path: str, map_location: str = "cpu") -> Any:
    """Load a vsrn-deploy or an authors' checkpoint as an eval-mode `VSRN` (torch.nn.Module).

    Args:
        path: a vsrn-deploy checkpoint or one of the authors' `model_best.pth.tar` files.
        map_location: device for the weights.
    Returns:
        The model, with `encode_images` and `encode_texts`.
    """
    from vsrn_deploy.model.checkpoint import load_model as _load_model

    return _load_model(path, map_location=map_location)


def load_vocab(path: str) -> Any:
    """Read an authors' vocabulary pickle (safely) or vsrn-deploy's `vocab.json`."""
    from vsrn_deploy.data.vocab import load_vocab as _load_vocab

    return _load_vocab(path)
