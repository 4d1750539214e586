"""Encode a precomp split with a VSRN model into the embeddings `vsrn_deploy.evaluation.recall` ranks.

The authors' ``encode_data`` runs the image encoder once per caption (each image 5 times) and
stores the results in float64 arrays. Here each image is encoded once, in batches read straight
from the memory-mapped feature file, and repeated per caption only when the authors' layout is
asked for; captions are encoded in batches of padded ids. The model runs in eval mode without
gradients; its training flag is restored afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.data.batching import CaptionDataset
from vsrn_deploy.data.precomp import PrecompSplit
from vsrn_deploy.data.vocab import pad_ids

Progress = Callable[[str, int, int], None]


_log = logging.getLogger(__name__)  # progress lines; the command line shows them on stderr


def _pad(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Ids padded with 0 (``<pad>``) -> (token_ids (B, T) int64, lengths (B,) int64)."""
    ids, lengths = pad_ids(rows)
    return torch.from_numpy(ids), torch.from_numpy(lengths)


def _resolve(dataset: CaptionDataset | PrecompSplit, vocab: Any) -> tuple[PrecompSplit, Any, Any]:
    """(split, vocabulary, region permutation function or None)."""
    if isinstance(dataset, CaptionDataset):
        order = dataset.region_permutation if dataset.region_order != "given" else None
        return dataset.split, vocab if vocab is not None else dataset.vocab, order
    if isinstance(dataset, PrecompSplit):
        if vocab is None:
            raise VsrnError("encoding a PrecompSplit needs a vocabulary (vocab=...) for its captions")
        return dataset, vocab, None
    raise VsrnError(f"encode_split takes a CaptionDataset or a PrecompSplit, not {type(dataset).__name__}")


def _check_vocab(model: torch.nn.Module, vocab: Any) -> None:
    config = getattr(model, "config", None)
    size = getattr(config, "vocab_size", None)
    if size is not None and hasattr(vocab, "__len__") and len(vocab) != size:
        raise VsrnError(f"the vocabulary has {len(vocab)} words but the model's word embedding has "
                        f"{size} rows; use the vocabulary the checkpoint was trained with")


def _in_batches(n: int, batch_size: int, embed: Callable[[int, int], torch.Tensor], what: str,
                progress: Progress | None) -> np.ndarray:
    """float32 [n, D] from `embed(a, b)` -> (b - a, D) over batches of `batch_size` (n >= 1)."""
    out: np.ndarray | None = None
    for a in range(0, n, batch_size):
        b = min(n, a + batch_size)
        emb = embed(a, b).float().cpu().numpy()
        if out is None:
            out = np.empty((n, emb.shape[1]), dtype=np.float32)
        out[a:b] = emb
        if progress is not None:
            progress(what, b, n)
    assert out is not None
    return out


@torch.inference_mode()
def encode_images(model: torch.nn.Module, split: PrecompSplit, *, batch_size: int = 128,
                  device: str | torch.device = "cpu",
                  permutation: Callable[[int, int], np.ndarray | None] | None = None,
                  progress: Progress | None = None) -> np.ndarray:
    """Embed every image of a split once.

    Args:
        model: anything with ``encode_images((B, k, F)) -> (B, D)`` (a VSRN).
        split: the precomp split (features are read batch by batch from the memmap).
        batch_size: images per forward pass.
        device: where the model runs (the model must already be there).
        permutation: optional ``(caption_index, image_index) -> region order``; image i uses the
            order of its first caption (a per-caption random order has no single image embedding).
        progress: optional callback ``(what, done, total)``.
    Returns:
        float32 [n_images, D].
    """
    if batch_size < 1:
        raise VsrnError(f"batch size must be >= 1 (got {batch_size})")
    def embed(a: int, b: int) -> torch.Tensor:
        feats = np.array(split.features[a:b], dtype=np.float32)  # (B, k, F), a writable copy
        if permutation is not None:
            feats = np.stack([f[p] if (p := permutation(i * split.captions_per_image, i)) is not None
                              else f for i, f in zip(range(a, b), feats, strict=True)])
        finite = np.isfinite(feats.reshape(len(feats), -1)).all(axis=1)
        if not finite.all():
            bad = (np.flatnonzero(~finite) + a).tolist()
            raise VsrnError(f"region features of image(s) {bad[:10]} in {split!r} hold NaN/Inf; the "
                            "feature file is corrupt (fix or drop those images)")
        return model.encode_images(torch.from_numpy(np.ascontiguousarray(feats)).to(device))  # (B, D)

    return _in_batches(split.n_images, batch_size, embed, "images", progress)  # n >= 1: no empty splits


@torch.inference_mode()
def encode_captions(model: torch.nn.Module, captions: list[str], vocab: Any, *, batch_size: int = 128,
                    device: str | torch.device = "cpu", progress: Progress | None = None) -> np.ndarray:
    """Embed captions in batches of padded ids.

    Args:
        model: anything with ``encode_texts(token_ids (B, T), lengths (B,)) -> (B, D)``.
        captions: caption strings.
        vocab: ``encode(caption) -> ids`` with ``<start>``/``<end>`` (a `vsrn_deploy.data.vocab.Vocabulary`).
        batch_size: captions per forward pass.
        device: where the model runs.
        progress: optional callback ``(what, done, total)``.
    Returns:
        float32 [n_captions, D].
    """
    if batch_size < 1:
        raise VsrnError(f"batch size must be >= 1 (got {batch_size})")
    if not captions:
        raise VsrnError("there are no captions to encode")

    def embed(a: int, b: int) -> torch.Tensor:
        ids, lengths = _pad([vocab.encode(c) for c in captions[a:b]])
        return model.encode_texts(ids.to(device), lengths.to(device))  # (B, D)

    return _in_batches(len(captions), batch_size, embed, "captions", progress)


def encode_split(model: torch.nn.Module, dataset: CaptionDataset | PrecompSplit, batch_size: int = 128,
                 device: str | torch.device = "cpu", *, vocab: Any = None, repeat: bool = True,
                 progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of every image and caption of a split, ready for `vsrn_deploy.evaluation.recall`.

    Args:
        model: a VSRN (`encode_images`, `encode_texts`); it is moved to nothing, so put it on
            `device` first. It runs in eval mode; its training flag is restored.
        dataset: a `CaptionDataset` (its vocabulary and region order are used) or a `PrecompSplit`
            (then pass `vocab`).
        batch_size: items per forward pass.
        device: where inputs go.
        vocab: the vocabulary (overrides the dataset's).
        repeat: True: the authors' layout, image rows repeated per caption ([n_captions, D]);
            False: one row per image ([n_images, D]), which `evaluation` accepts as well.
        progress: optional callback ``(what, done, total)``.
    Returns:
        (image embeddings, caption embeddings) as float32 numpy arrays; caption j belongs to image
        ``j // captions_per_image``.
    """
    split, vocab, permutation = _resolve(dataset, vocab)
    _check_vocab(model, vocab)
    was_training = model.training
    model.eval()
    try:
        images = encode_images(model, split, batch_size=batch_size, device=device,
                               permutation=permutation, progress=progress)
        captions = encode_captions(model, list(split.captions), vocab, batch_size=batch_size,
                                   device=device, progress=progress)
    finally:
        model.train(was_training)
    for name, emb in (("image", images), ("caption", captions)):
        if not np.isfinite(emb).all():
            rows = np.flatnonzero(~np.isfinite(emb).all(axis=1))
            raise VsrnError(f"the model produced NaN/Inf {name} embeddings (rows {rows[:5].tolist()}); "
                            "check the checkpoint and the inputs")
    if repeat:
        per = split.captions_per_image
        images = np.repeat(images, per, axis=0)[: len(captions)]  # (n_captions, D)
    return images, captions
