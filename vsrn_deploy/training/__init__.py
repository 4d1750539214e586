"""Training: `TrainConfig` (frozen dataclass, the paper's recipe as defaults) and `train(cfg)`.

`train` imports torch when first used, so `from vsrn_deploy.training import TrainConfig` stays light.
"""

from __future__ import annotations

from typing import Any

from vsrn_deploy.training.config import TrainConfig

__all__ = ["TrainConfig", "train"]


def __getattr__(name: str) -> Any:
    if name == "train":
        from vsrn_deploy.training.trainer import train

        return train
    raise AttributeError(name)
