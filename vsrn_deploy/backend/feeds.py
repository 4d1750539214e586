"""Checking a runner's input feed against `vsrn_deploy.core.contract` (numpy only: no torch here).

Every runner calls `check_feed` first, so a wrong name, rank or dtype fails the same way on every
backend: a `VsrnError` that says what was expected.
"""

from __future__ import annotations

import numpy as np

from vsrn_deploy.core import contract
from vsrn_deploy.core.errors import VsrnError


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
    spec = contract.ENCODERS[encoder]
    expected = spec.input_names
    missing = [n for n in expected if n not in feed]
    extra = [n for n in feed if n not in expected]
    if missing or extra:
        raise VsrnError(f"{encoder} encoder takes inputs {list(expected)}; missing {missing}, "
                        f"unexpected {extra}")
    out: dict[str, np.ndarray] = {}
    for name in expected:
        tensor = spec.tensor(name)
        rank, dtype = tensor.rank, tensor.np_dtype.type
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
    if spec is contract.TEXT:
        ids, lengths_name = spec.input_names
        tokens = out[ids].shape[1]
        lengths = out[lengths_name]
        if lengths.size and (lengths.min() < 1 or lengths.max() > tokens):
            raise VsrnError(f"{lengths_name} must lie in [1, {tokens}] (the {ids} width), got "
                            f"[{lengths.min()}, {lengths.max()}]")
    return out
