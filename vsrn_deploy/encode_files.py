"""Encode region-feature files and caption files with a checkpoint; read and write the arrays.

The library behind `vsrn-deploy encode`: `encode_files` loads a checkpoint of either kind, embeds
`[N, k, F]` region features (.npy) and/or captions (one per line), writes
`image_embeddings.npy` / `text_embeddings.npy` atomically and ranks the images for each caption.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vsrn_deploy.errors import VsrnError

if TYPE_CHECKING:
    from vsrn_deploy.model import VSRN
    from vsrn_deploy.vocab import Vocabulary

__all__ = ["IMAGE_EMBEDDINGS", "TEXT_EMBEDDINGS", "read_region_features", "read_captions",
           "encode_region_features", "encode_captions", "save_array", "EncodeResult", "encode_files"]

IMAGE_EMBEDDINGS = "image_embeddings.npy"
TEXT_EMBEDDINGS = "text_embeddings.npy"


def read_region_features(path: str | os.PathLike[str]) -> np.ndarray:
    """Read precomputed region features, float [N, k, F] (.npy, no pickles), memory-mapped.

    Raises:
        VsrnError: missing file, not a .npy array, or not 3-D floats.
    """
    path = Path(path)
    if not path.is_file():
        raise VsrnError(f"region-feature file not found: {path}")
    try:
        feats = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise VsrnError(f"{path} is not a readable .npy array ({str(exc).splitlines()[0][:200]})") from None
    if not isinstance(feats, np.ndarray) or feats.ndim != 3:
        shape = getattr(feats, "shape", None)
        raise VsrnError(f"{path}: region features must be [images, regions, feature_dim] (got shape {shape})")
    if feats.dtype.kind != "f":
        raise VsrnError(f"{path}: region features must be floats (got {feats.dtype})")
    return feats


def read_captions(path: str | os.PathLike[str]) -> list[str]:
    """One caption per line (UTF-8); trailing blank lines are ignored, inner blank lines are an error."""
    path = Path(path)
    if not path.is_file():
        raise VsrnError(f"caption file not found: {path}")
    try:
        lines = path.read_text(encoding="utf-8").rstrip("\n").split("\n")
    except UnicodeDecodeError as exc:
        raise VsrnError(f"{path} is not UTF-8 text ({exc})") from None
    lines = [line.strip() for line in lines]
    if lines == [""]:
        raise VsrnError(f"{path} holds no captions")
    blank = [i + 1 for i, line in enumerate(lines) if not line]
    if blank:
        raise VsrnError(f"{path}: line {blank[0]} is blank; write one caption per line")
    return lines


def _check_batch(batch_size: int) -> None:
    if batch_size < 1:
        raise VsrnError(f"--batch-size must be >= 1 (got {batch_size})")


def encode_region_features(model: VSRN, features: np.ndarray, batch_size: int = 128,
                           device: str = "cpu") -> np.ndarray:
    """Image embeddings of region features.

    Args:
        model: an eval-mode VSRN.
        features: float [N, k, F].
        batch_size: images per forward pass.
        device: torch device.
    Returns:
        float32 [N, D], l2-normalised.
    """
    import torch

    _check_batch(batch_size)
    expected = model.config.img_dim
    if features.shape[-1] != expected:
        raise VsrnError(f"region features have {features.shape[-1]} values per region but the model "
                        f"expects {expected}")
    out = []
    with torch.no_grad():
        for start in range(0, features.shape[0], batch_size):
            # np.array copies: a memory-mapped file is read-only and torch wants writable memory
            chunk = torch.from_numpy(np.array(features[start:start + batch_size],
                                              dtype=np.float32)).to(device)  # (b, k, F)
            out.append(model.encode_images(chunk).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.embed_size), np.float32)


def encode_captions(model: VSRN, vocab: Vocabulary, captions: Sequence[str], batch_size: int = 128,
                    device: str = "cpu") -> np.ndarray:
    """Caption embeddings: the authors' tokenisation, then the text encoder.

    Args:
        model: an eval-mode VSRN.
        vocab: its vocabulary.
        captions: the captions.
        batch_size: captions per forward pass.
        device: torch device.
    Returns:
        float32 [M, D], l2-normalised.
    """

    _check_batch(batch_size)
    if len(vocab) != model.config.vocab_size:
        raise VsrnError(f"the vocabulary has {len(vocab)} words but the model was trained with "
                        f"{model.config.vocab_size}; pass the vocabulary it was trained with")
    if not captions:
        return np.zeros((0, model.config.embed_size), np.float32)
    from vsrn_deploy.encode_data import encode_captions as encode_batches

    return encode_batches(model, list(captions), vocab, batch_size=batch_size, device=device)


def save_array(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """np.save atomically (`vsrn_deploy.io.files.atomic_writer`)."""
    from vsrn_deploy.io.files import atomic_writer

    with atomic_writer(path) as fh:
        np.save(fh, array, allow_pickle=False)
    return Path(path)


@dataclass
class EncodeResult:
    """What `encode_files` produced.

    Attributes:
        checkpoint_kind: "vsrn-deploy" or "authors".
        variant: "coco" or "f30k".
        image_embeddings / text_embeddings: the arrays, or None.
        files: name -> written path.
        captions: the captions read.
        top_matches: per caption (image index, cosine) of the best image, when both were given.
    """

    checkpoint_kind: str
    variant: str
    image_embeddings: np.ndarray | None = None
    text_embeddings: np.ndarray | None = None
    files: dict[str, Path] = field(default_factory=dict)
    captions: list[str] = field(default_factory=list)
    top_matches: list[tuple[int, float]] = field(default_factory=list)


def encode_files(checkpoint: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
                 images: str | os.PathLike[str] | None = None,
                 captions: str | os.PathLike[str] | None = None,
                 vocab: str | os.PathLike[str] | None = None, batch_size: int = 128,
                 device: str = "cpu") -> EncodeResult:
    """Embed a region-feature file and/or a caption file with a checkpoint of either kind.

    Args:
        checkpoint: vsrn-deploy checkpoint or the authors' `model_best.pth.tar`.
        out_dir: where `image_embeddings.npy` / `text_embeddings.npy` go (created).
        images: `.npy` float [N, k, F].
        captions: text file, one caption per line.
        vocab: vocabulary file; default: the checkpoint's own, or the authors' file found beside it.
        batch_size: items per forward pass.
        device: torch device.
    Returns:
        An EncodeResult.
    """
    from vsrn_deploy.checkpoint import load_checkpoint, resolve_vocab

    if images is None and captions is None:
        raise VsrnError("nothing to encode: pass --images FILE.npy and/or --captions FILE.txt")
    _check_batch(batch_size)
    feats = read_region_features(images) if images is not None else None
    lines = read_captions(captions) if captions is not None else []
    loaded = load_checkpoint(checkpoint, map_location=device)
    result = EncodeResult(checkpoint_kind=loaded.kind, variant=loaded.config.variant, captions=lines)
    the_vocab: Any = None
    if captions is not None:
        the_vocab, _ = resolve_vocab(loaded, vocab)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if feats is not None:
        result.image_embeddings = encode_region_features(loaded.model, feats, batch_size, device)
        result.files["image_embeddings"] = save_array(out / IMAGE_EMBEDDINGS, result.image_embeddings)
    if the_vocab is not None:
        result.text_embeddings = encode_captions(loaded.model, the_vocab, lines, batch_size, device)
        result.files["text_embeddings"] = save_array(out / TEXT_EMBEDDINGS, result.text_embeddings)
    if result.image_embeddings is not None and result.text_embeddings is not None:
        sims = result.text_embeddings @ result.image_embeddings.T  # (M, N) cosine similarities
        best = sims.argmax(axis=1)
        result.top_matches = [(int(i), float(sims[row, i])) for row, i in enumerate(best)]
    return result
