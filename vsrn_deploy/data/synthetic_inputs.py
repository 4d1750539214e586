"""Synthetic encoder inputs that look like real ones: region features and captions (numpy only).

One generator for every place that needs inputs without a dataset: export-time validation and FP16
calibration, `vsrn-deploy validate --synthetic`, the benchmark feeds and the tests.

- Region features: sparse and non-negative like pooled ResNet-101 region features (post-ReLU):
  about 60% zeros, exponential magnitudes (mean ~0.5 over all entries) and a few large activations
  (up to ~30), as in the SCAN precomp release.
- Captions: id lists `<start> w1 .. wn <end>` of mixed lengths (counting `<start>` and `<end>`),
  with the shortest and the longest allowed both present when there are two or more; drawn from
  the vocabulary's words (and encoded by it, so the tokenizer runs) when one is given. Captions are
  always lists of ids; `text_feed` pads them into the text encoder's inputs.

The special ids and input names come from `vsrn_deploy.core.contract`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vsrn_deploy.core.contract import END_ID, IMAGE, START_ID, TEXT, UNK_ID


def region_features(n: int, num_regions: int, feature_dim: int, seed: int = 0) -> np.ndarray:
    """Sparse non-negative region features at the magnitudes of bottom-up-attention ones.

    Args:
        n: number of images; num_regions: k; feature_dim: F.
        seed: random seed.
    Returns:
        float32 (n, k, F).
    """
    rng = np.random.default_rng(seed)
    shape = (n, num_regions, feature_dim)
    mask = rng.random(shape) < 0.4
    values = rng.exponential(1.2, size=shape)
    hot = rng.random(shape) < 0.002
    values = np.where(hot, rng.uniform(8.0, 30.0, size=shape), values)
    return (values * mask).astype(np.float32)


def captions(n: int, vocab_size: int, *, min_tokens: int = 2, max_tokens: int = 24, seed: int = 0,
             vocab: Any = None, extremes: bool = True) -> list[list[int]]:
    """`n` captions as id lists, `<start>` first and `<end>` last, lengths in [min_tokens, max_tokens].

    Args:
        n: how many captions.
        vocab_size: ids of words are drawn from [4, vocab_size) (the special tokens are 0..3).
        min_tokens, max_tokens: length range, counting `<start>` and `<end>` (2 = an empty caption).
        seed: random seed.
        vocab: a `Vocabulary`: captions are strings of its words encoded by `vocab.encode`.
        extremes: with n >= 2, one caption of each extreme length, at random positions.
    Returns:
        list of n id lists.
    """
    if not 2 <= min_tokens <= max_tokens:
        raise ValueError(f"need 2 <= min_tokens <= max_tokens, got {min_tokens}..{max_tokens}")
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_tokens, max_tokens + 1, size=n)
    if extremes:
        if n >= 2:
            lengths[0], lengths[1] = min_tokens, max_tokens
        elif n == 1:
            lengths[0] = max(min_tokens, (min_tokens + max_tokens) // 2)
        lengths = rng.permutation(lengths)
    words = None
    if vocab is not None:
        words = [w for i, w in sorted(vocab.idx2word.items()) if i > UNK_ID and w.isalpha()] or None
    out = []
    for length in lengths.tolist():
        if words is not None:
            text = " ".join(words[int(k)] for k in rng.integers(0, len(words), length - 2))
            ids = list(vocab.encode(text))[:length]
            ids[-1] = END_ID  # keep <end> last if the tokenizer split a word in two
        else:
            words_ids = rng.integers(UNK_ID + 1, max(vocab_size, UNK_ID + 2), length - 2)
            ids = [START_ID, *words_ids.tolist(), END_ID]
        out.append(ids)
    return out


def image_feed(features: np.ndarray) -> dict[str, np.ndarray]:
    """The image encoder's inputs: {"region_features": (B, k, F) float32}."""
    (name,) = IMAGE.input_names
    return {name: np.ascontiguousarray(features, dtype=np.float32)}


def text_feed(caption_ids: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
    """The text encoder's inputs: {"token_ids": (B, T) int64 padded with 0, "lengths": (B,) int64}."""
    from vsrn_deploy.data.vocab import pad_ids

    ids, lengths = pad_ids(caption_ids)
    return dict(zip(TEXT.input_names, (ids, lengths), strict=True))
