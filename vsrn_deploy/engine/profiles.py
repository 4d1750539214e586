"""Optimisation profiles: the batch (and token) ranges a TensorRT engine accepts.

One `ProfileSpec` holds a (min, opt, max) batch range and, for the text encoder, a (min, opt, max)
token range; `input_shapes` turns it into per-input (min, opt, max) shapes as
`IOptimizationProfile.set_shape(name, min, opt, max)` takes them. An engine may carry several
profiles (e.g. one tuned for batch 1 and one for batch 64); the runner picks the first that fits.
"""

from __future__ import annotations

from dataclasses import dataclass

from vsrn_deploy.core import contract
from vsrn_deploy.core.errors import VsrnError

Triple = tuple[int, int, int]
Shape = tuple[int, ...]

DEFAULT_BATCH: Triple = (1, 32, 128)
DEFAULT_TOKENS: Triple = (2, 16, 64)  # lengths count <start> and <end>: 2 is an empty caption


def check_triple(triple: Triple, what: str) -> Triple:
    """Validate a (min, opt, max) range: positive integers with min <= opt <= max."""
    if len(triple) != 3:
        raise VsrnError(f"{what} range needs three numbers min,opt,max; got {triple}")
    lo, opt, hi = (int(v) for v in triple)
    if lo < 1:
        raise VsrnError(f"{what} range must start at >= 1, got min={lo}")
    if not lo <= opt <= hi:
        raise VsrnError(f"{what} range must satisfy min <= opt <= max, got {lo},{opt},{hi}")
    return lo, opt, hi


def parse_triple(text: str, what: str) -> Triple:
    """'1,8,32' -> (1, 8, 32), validated."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise VsrnError(f"{what} range must be three integers 'min,opt,max', got {text!r}") from None
    return check_triple(values, what)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ProfileSpec:
    """One optimisation profile: a batch range and a token range (used by the text encoder)."""

    batch: Triple = DEFAULT_BATCH
    tokens: Triple = DEFAULT_TOKENS

    def __post_init__(self) -> None:
        check_triple(self.batch, "batch")
        check_triple(self.tokens, "tokens")

    @classmethod
    def parse(cls, text: str, *, default_tokens: Triple = DEFAULT_TOKENS) -> ProfileSpec:
        """'1,8,32' (batch only) or '1,8,32:2,16,64' (batch:tokens)."""
        batch, _, tokens = text.partition(":")
        return cls(batch=parse_triple(batch, "batch"),
                   tokens=parse_triple(tokens, "tokens") if tokens else default_tokens)

    def to_dict(self) -> dict[str, list[int]]:
        return {"batch": list(self.batch), "tokens": list(self.tokens)}


def input_shapes(encoder: str, spec: ProfileSpec, *, num_regions: int,
                 feature_dim: int) -> dict[str, tuple[Shape, Shape, Shape]]:
    """Per-input (min, opt, max) shapes of one profile, for the inputs `vsrn_deploy.core.contract` declares.

    Args:
        encoder: "image" or "text".
        spec: the batch and token ranges (the contract's dynamic axes "batch" and "tokens").
        num_regions: k, fixed at export (the contract's "num_regions" axis).
        feature_dim: F (the contract's "img_dim" axis).

    Returns:
        {input name: (min shape, opt shape, max shape)}.
    """
    if encoder not in contract.ENCODERS:
        raise VsrnError(f"encoder must be one of {tuple(contract.ENCODERS)}, got {encoder!r}")
    ranges = {contract.BATCH: spec.batch, contract.TOKENS: spec.tokens}
    fixed = {"num_regions": num_regions, "img_dim": feature_dim}

    def shape(tensor: contract.TensorSpec, i: int) -> Shape:
        return tuple(ranges[a][i] if a in ranges else int(fixed[a]) for a in tensor.axes)

    return {t.name: (shape(t, 0), shape(t, 1), shape(t, 2)) for t in contract.ENCODERS[encoder].inputs}
