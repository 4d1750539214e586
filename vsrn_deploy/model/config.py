"""Model configuration as a frozen dataclass.

The authors' checkpoints carry an argparse Namespace; `VSRNConfig.from_authors_opt` turns it into
this once, at the boundary. vsrn-deploy's own checkpoints store `asdict(config)`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from vsrn_deploy.core.errors import VsrnError

F30K_DATA_NAME = "f30k_precomp"
# the largest model dimension (embed_size, word_dim, caption_hidden): weights grow with its square, and
# beyond this one GRU's weights alone (3 x 2 x D^2 floats) outgrow any GPU's memory; the paper's sizes
# are 300 to 2048
MAX_DIM = 65536
# region relationship reasoning layers: the paper uses 4; each is four D x D matrices
MAX_GCN_LAYERS = 64


def dimension_problems(config: Any) -> list[str]:
    """The model dimensions (embed_size, word_dim, caption_hidden) of `config` (a model or a training
    config) above MAX_DIM."""
    return [f"{name} must be <= {MAX_DIM}, the largest model dimension (got {getattr(config, name)})"
            for name in ("embed_size", "word_dim", "caption_hidden") if getattr(config, name) > MAX_DIM]


def dataclass_from_dict(cls: type, data: dict[str, Any], what: str, hint: str = "") -> Any:
    """`cls(**data)` for a config dataclass, refusing keys it does not have (a VsrnError naming them)."""
    unknown = sorted(set(data) - {f.name for f in fields(cls)})
    if unknown:
        raise VsrnError(f"unknown {what} keys {unknown}{hint}")
    return cls(**data)


@dataclass(frozen=True)
class VSRNConfig:
    """Sizes and switches of a VSRN model.

    The defaults are the paper's COCO model. `fc_norm` / `final_bn` select the variant: COCO models
    normalise the fc output (over the region axis, as the authors do) and have no final BatchNorm;
    Flickr30K models do the opposite (`VSRNConfig.flickr30k()`).
    """

    vocab_size: int = 10006
    img_dim: int = 2048  # F: region feature size
    embed_size: int = 2048  # D: joint embedding size
    word_dim: int = 300
    num_regions: int = 36  # k
    gcn_layers: int = 4  # region relationship reasoning layers (0 allowed)
    text_layers: int = 1  # GRU layers of the text encoder
    fc_norm: bool = True  # COCO: l2norm(fc(V)) over the region axis; Flickr30K: no
    final_bn: bool = False  # Flickr30K: BatchNorm1d on the image embedding
    img_pool: str = "gru"  # "gru" (global semantic reasoning) or "mean" (paper's baseline)
    img_norm: bool = True  # l2-normalise the image embedding (authors: not no_imgnorm)
    use_abs: bool = False
    # caption generator (L_G); its weights are never in the authors' checkpoints
    caption_hidden: int = 512
    caption_max_len: int = 60
    caption_dropout: float = 0.2
    # numerics: normalisation never divides by less than this (all-zero inputs give 0, not NaN)
    norm_eps: float = 1e-12
    data_name: str = "coco_precomp"

    def __post_init__(self) -> None:
        problems = []
        for name in ("vocab_size", "img_dim", "embed_size", "word_dim", "num_regions", "text_layers"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1 (got {getattr(self, name)})")
        problems += dimension_problems(self)
        if not 0 <= self.gcn_layers <= MAX_GCN_LAYERS:
            problems.append(f"gcn_layers must lie in [0, {MAX_GCN_LAYERS}] (got {self.gcn_layers})")
        if self.img_pool not in ("gru", "mean"):
            problems.append(f"img_pool must be 'gru' or 'mean' (got {self.img_pool!r})")
        if problems:
            raise VsrnError("invalid model config: " + "; ".join(problems))

    @classmethod
    def flickr30k(cls, **overrides: Any) -> VSRNConfig:
        """The Flickr30K variant: no fc normalisation, final BatchNorm."""
        base: dict[str, Any] = {"vocab_size": 8481, "fc_norm": False, "final_bn": True,
                                "data_name": F30K_DATA_NAME}
        base.update(overrides)
        return cls(**base)

    @classmethod
    def tiny(cls, **overrides: Any) -> VSRNConfig:
        """Small sizes for tests and quick demos."""
        base: dict[str, Any] = {"vocab_size": 50, "img_dim": 24, "embed_size": 16, "word_dim": 8,
                                "num_regions": 6, "gcn_layers": 2, "caption_hidden": 12,
                                "caption_max_len": 12}
        base.update(overrides)
        return cls(**base)

    @property
    def variant(self) -> str:
        """'f30k' or 'coco': the authors' two image-encoder formulations."""
        return "f30k" if (not self.fc_norm and self.final_bn) else "coco"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VSRNConfig:
        """Build from a dict (e.g. a checkpoint); unknown keys are an error, missing keys default."""
        return dataclass_from_dict(cls, data, "model config", "; this file was written by a newer or "
                                   "different tool")

    def replace(self, **changes: Any) -> VSRNConfig:
        return replace(self, **changes)
