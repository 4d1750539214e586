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

from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.io.inputs import check_positive

if TYPE_CHECKING:
    from vsrn_deploy.data.vocab import Vocabulary
    from vsrn_deploy.model import VSRN

__all__ = ["IMAGE_EMBEDDINGS", "TEXT_EMBEDDINGS", "read_region_features", "read_captions",
           "encode_region_features", "encode_captions", "save_array", "EncodeResult", "encode_files"]

IMAGE_EMBEDDINGS = "image_embeddings.npy"
TEXT_EMBEDDINGS = "text_embeddings.npy"
EMBEDDINGS_MANIFEST = "embeddings.json"  # what encode wrote into its --out (ownership marker)


def read_region_features(path: str | os.PathLike[str]) -> np.ndarray:
    """Read precomputed region features, float [N, k, F] (.npy, no pickles), memory-mapped.

    Raises:
        VsrnError: missing file, not a .npy array, or not 3-D floats.
    """
    from vsrn_deploy.io.inputs import load_npy

    feats = load_npy(path, "region-feature file")
    if not isinstance(feats, np.ndarray) or feats.ndim != 3:
        shape = getattr(feats, "shape", None)
        raise VsrnError(f"{path}: region features must be [images, regions, feature_dim] (got shape {shape})")
    if feats.dtype.kind != "f":
        raise VsrnError(f"{path}: region features must be floats (got {feats.dtype})")
    return feats


def read_captions(path: str | os.PathLike[str]) -> list[str]:
    """One caption per line (UTF-8, a BOM is stripped, LF or CRLF); trailing blank lines are ignored,
    inner blank lines are an error."""
    from vsrn_deploy.io.inputs import read_caption_lines

    return read_caption_lines(path, "--captions")


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

    check_positive(batch_size, "--batch-size", allow_none=False)
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

    check_positive(batch_size, "--batch-size", allow_none=False)
    if len(vocab) != model.config.vocab_size:
        raise VsrnError(f"the vocabulary has {len(vocab)} words but the model was trained with "
                        f"{model.config.vocab_size}; pass the vocabulary it was trained with")
    if not captions:
        return np.zeros((0, model.config.embed_size), np.float32)
    from vsrn_deploy.model.encode import encode_captions as encode_batches

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
                 device: str = "cpu", overwrite: bool = False) -> EncodeResult:
    """Embed a region-feature file and/or a caption file with a checkpoint of either kind.

    Args:
        checkpoint: vsrn-deploy checkpoint or the authors' `model_best.pth.tar`.
        out_dir: where `image_embeddings.npy` / `text_embeddings.npy` go (created).
        images: `.npy` float [N, k, F].
        captions: text file, one caption per line.
        vocab: vocabulary file; default: the checkpoint's own, or the authors' file found beside it.
        batch_size: items per forward pass.
        device: torch device.
        overwrite: replace same-named files in `out_dir` that vsrn-deploy did not write.
    Returns:
        An EncodeResult.
    """
    from vsrn_deploy.artifacts.outputs import MARKER_KEY, OutputFolder, marker
    from vsrn_deploy.io.files import atomic_write_json, sha256_file
    from vsrn_deploy.io.inputs import check_device, check_finite_features, require_file
    from vsrn_deploy.model.checkpoint import load_checkpoint, resolve_vocab

    if images is None and captions is None:
        raise VsrnError("nothing to encode: pass --images FILE.npy and/or --captions FILE.txt")
    check_positive(batch_size, "--batch-size", allow_none=False)
    check_device(device)
    require_file(checkpoint, "checkpoint")
    if vocab is not None:
        require_file(vocab, "--vocab")
    entries = ([IMAGE_EMBEDDINGS] if images is not None else []) + ([TEXT_EMBEDDINGS] if captions else [])
    # the output is checked before anything is read or created
    folder_args: dict[str, Any] = {
        "kind": "embeddings", "manifest_name": EMBEDDINGS_MANIFEST, "entries": entries, "shared": True,
        "overwrite": overwrite, "input_files": [checkpoint, images, captions, vocab]}
    OutputFolder(out_dir, **folder_args)
    feats = read_region_features(images) if images is not None else None
    if feats is not None:
        if feats.shape[0] == 0:
            raise VsrnError(f"--images {images} holds no images (shape {feats.shape})")
        check_finite_features(feats, f"--images {images}")
    lines = read_captions(captions) if captions is not None else []
    loaded = load_checkpoint(checkpoint, map_location=device)
    result = EncodeResult(checkpoint_kind=loaded.kind, variant=loaded.config.variant, captions=lines)
    the_vocab: Any = None
    if captions is not None:
        the_vocab, _ = resolve_vocab(loaded, vocab)
    if feats is not None:
        result.image_embeddings = encode_region_features(loaded.model, feats, batch_size, device)
    if the_vocab is not None:
        result.text_embeddings = encode_captions(loaded.model, the_vocab, lines, batch_size, device)
    with OutputFolder(out_dir, **folder_args) as folder:
        listed = dict((folder.old_manifest or {}).get("files") or {})
        for key, name, array in (("image_embeddings", IMAGE_EMBEDDINGS, result.image_embeddings),
                                 ("text_embeddings", TEXT_EMBEDDINGS, result.text_embeddings)):
            if array is not None:
                save_array(folder.staging / name, array)
                listed[name] = {"sha256": sha256_file(folder.staging / name)}
                result.files[key] = folder.target / name
        atomic_write_json(folder.staging / EMBEDDINGS_MANIFEST, {
            MARKER_KEY: marker("embeddings"), "checkpoint": str(checkpoint), "files": listed})
        folder.commit(entries)
    if result.image_embeddings is not None and result.text_embeddings is not None:
        sims = result.text_embeddings @ result.image_embeddings.T  # (M, N) cosine similarities
        best = sims.argmax(axis=1)
        result.top_matches = [(int(i), float(sims[row, i])) for row, i in enumerate(best)]
    return result
