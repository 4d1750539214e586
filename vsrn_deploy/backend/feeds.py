"""Checking a runner's input feed against the ONNX contract (numpy only: no torch here).

Every runner calls `check_feed` first, so a wrong name, rank or dtype fails the same way on every
backend: a `VsrnError` that says what was expected.
"""

from __future__ import annotations

import numpy as np

from vsrn_deploy.backend.base import INPUT_NAMES
from vsrn_deploy.errors import VsrnError

# name -> (rank, dtype) per the contract: region_features float32 (B, k, F); token_ids int64 (B, T);
# lengths int64 (B,).
_SPECS: dict[str, tuple[int, type]] = {
    "region_features": (3, np.float32),
    "token_ids": (2, np.int64),
    "lengths": (1, np.int64),
}


def check_feed(encoder: str, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Validate and normalise one batch for `encoder`.

    Args:
        encoder: "image" or "text".
        feed: input name -> array.

    Returns:
        A new dict of C-contiguous arrays: float32 features, int64 ids and lengths. Integer ids of
        another integer type are widened; float features of another float type are cast.

    Raises:
        VsrnError: a missing or unexpected input, a wrong rank, a non-numeric dtype, mismatched
            batch sizes, or lengths outside [1, tokens].
    """
    expected = INPUT_NAMES[encoder]
    missing = [n for n in expected if n not in feed]
    extra = [n for n in feed if n not in expected]
    if missing or extra:
        raise VsrnError(f"{encoder} encoder takes inputs {list(expected)}; missing {missing}, "
                        f"unexpected {extra}")
    out: dict[str, np.ndarray] = {}
    for name in expected:
        rank, dtype = _SPECS[name]
        arr = np.asarray(feed[name])
        if arr.ndim != rank:
            raise VsrnError(f"input '{name}' must have rank {rank}, got shape {tuple(arr.shape)}")
        if dtype is np.float32 and not np.issubdtype(arr.dtype, np.floating):
            raise VsrnError(f"input '{name}' must be float32, got {arr.dtype}")
        if dtype is np.int64 and not np.issubdtype(arr.dtype, np.integer):
            raise VsrnError(f"input '{name}' must be int64, got {arr.dtype}")
        out[name] = np.ascontiguousarray(arr, dtype=dtype)
    batches = {out[n].shape[0] for n in expected}
    if len(batches) != 1:
        raise VsrnError(f"inputs {list(expected)} disagree on the batch size: "
                        f"{[tuple(out[n].shape) for n in expected]}")
    if encoder == "text":
        tokens = out["token_ids"].shape[1]
        lengths = out["lengths"]
        if lengths.size and (lengths.min() < 1 or lengths.max() > tokens):
            raise VsrnError(f"lengths must lie in [1, {tokens}] (the token_ids width), got "
                            f"[{lengths.min()}, {lengths.max()}]")
    return out
