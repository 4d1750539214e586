"""Optimisation profiles: the batch (and token) ranges a TensorRT engine accepts.

One `ProfileSpec` holds a (min, opt, max) batch range and, for the text encoder, a (min, opt, max)
token range; `input_shapes` turns it into per-input (min, opt, max) shapes as
`IOptimizationProfile.set_shape(name, min, opt, max)` takes them. An engine may carry several
profiles (e.g. one tuned for batch 1 and one for batch 64); the runner picks the first that fits.
"""

from __future__ import annotations

from dataclasses import dataclass

from vsrn_deploy.errors import VsrnError

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


def input_shapes(encoder: str, spec: ProfileSpec, *, num_regions: int, feature_dim: int,
                 max_tokens: int | None = None) -> dict[str, tuple[Shape, Shape, Shape]]:
    """Per-input (min, opt, max) shapes of one profile.

    Args:
        encoder: "image" or "text".
        spec: the batch and token ranges.
        num_regions: k, fixed at export (region_features is (B, k, F)).
        feature_dim: F.
        max_tokens: the export's largest token count when the text graph is unrolled (manifest
            "text_max_tokens"); a profile beyond it is an error.

    Returns:
        {input name: (min shape, opt shape, max shape)}.
    """
    b = spec.batch
    if encoder == "image":
        return {"region_features": tuple((n, num_regions, feature_dim) for n in b)}  # type: ignore[dict-item]
    if encoder != "text":
        raise VsrnError(f"encoder must be 'image' or 'text', got {encoder!r}")
    t = spec.tokens
    if max_tokens is not None and t[2] > max_tokens:
        raise VsrnError(f"token range max {t[2]} exceeds the exported text graph's limit of "
                        f"{max_tokens} tokens (manifest text_max_tokens); lower it or re-export")
    return {
        "token_ids": tuple((n, m) for n, m in zip(b, t, strict=True)),  # type: ignore[dict-item]
        "lengths": tuple((n,) for n in b),  # type: ignore[dict-item]
    }


def default_tokens(max_tokens: int | None) -> Triple:
    """The default token range, clipped to an unrolled export's limit."""
    if max_tokens is None:
        return DEFAULT_TOKENS
    hi = max(2, int(max_tokens))
    lo = min(DEFAULT_TOKENS[0], hi)
    return lo, min(DEFAULT_TOKENS[1], hi), hi


def fits(shapes: dict[str, tuple[Shape, Shape, Shape]], feed_shapes: dict[str, Shape]) -> bool:
    """Whether every input shape lies within the profile's [min, max] per dimension."""
    for name, shape in feed_shapes.items():
        if name not in shapes:
            return False
        lo, _, hi = shapes[name]
        if len(shape) != len(lo) or any(not a <= s <= c for a, s, c in zip(lo, shape, hi, strict=True)):
            return False
    return True
