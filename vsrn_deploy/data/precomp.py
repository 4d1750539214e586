"""Reader for the SCAN "precomp" data layout used by VSRN (and VSE++, SCAN, VSE-infinity).

A split folder holds:

- ``{split}_ims.npy``: float32 region features [n_images, k, F] (k = 36, F = 2048 in the release).
  It is memory-mapped, never read whole: COCO train is about 37 GB.
- ``{split}_caps.txt``: one caption per line; 5 per image (caption j belongs to image j // 5), or 1
  per image when the image array has as many rows as there are captions.
- ``{split}_boxes.npy`` (optional, not part of the SCAN release): region boxes [n_images, k, 4] as
  (x1, y1, x2, y2); used to order regions by box area.

Like the authors' loader, the ``dev`` split is truncated to its first 5000 captions (COCO dev:
1000 images), so validation matches their model selection.

Bad input handling:

- missing files, unreadable/truncated ``.npy`` files, a non-3-D feature array, or a caption count
  that is neither 1x nor 5x the number of images: `VsrnError`;
- empty (or whitespace-only) caption lines: `VsrnError` naming the line. Dropping them would shift
  every later caption onto the wrong image, so they are never skipped silently;
- NaN/Inf features: checked lazily, per batch (`vsrn_deploy.data.batching.Batch.check_finite`), and
  at open time on the first image only, so opening a 37 GB file stays O(one image).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vsrn_deploy.core.errors import VsrnError

#: The authors' dev truncation: model selection uses the first 5000 dev captions.
DEV_CAPTIONS = 5000


def _load_npy(path: Path, what: str) -> np.ndarray:
    """Memory-map a .npy file (no pickles), turning numpy's errors into a clear VsrnError."""
    from vsrn_deploy.io.inputs import load_npy

    if not Path(path).exists():
        raise VsrnError(f"{what} file {path} does not exist")
    return load_npy(path, f"{what} file", fix="re-download or regenerate it")


def read_captions(path: Path) -> list[str]:
    """Read one caption per line; an empty or whitespace-only line is an error.

    Args:
        path: the ``{split}_caps.txt`` file.
    Returns:
        The captions, stripped of surrounding whitespace (a final newline is fine).
    """
    from vsrn_deploy.io.inputs import read_caption_lines

    return read_caption_lines(path, "caption file")


class PrecompSplit:
    """One split of a precomp dataset: memory-mapped features, captions and the caption->image map.

    Args:
        root: the folder holding ``{split}_ims.npy``, or its parent when `data_name` is given
            (the authors' ``--data_path`` + ``--data_name``).
        split: ``train``, ``dev``, ``test``, ``testall``, ...
        data_name: optional sub-folder of `root`, e.g. ``coco_precomp``.
        dev_truncate: keep only the first 5000 captions of the ``dev`` split, as the authors do.
        max_images: keep only the first N images (and their captions); for quick experiments.

    Attributes:
        features: memmap [n_images, k, F] (after truncation, still a memmap view).
        boxes: memmap [n_images, k, 4] or None.
        captions: list of caption strings; ``len(split)`` is their number.
        captions_per_image: 5 or 1; caption j belongs to image ``j // captions_per_image``.
    """

    def __init__(self, root: str | Path, split: str, *, data_name: str | None = None,
                 dev_truncate: bool = True, max_images: int | None = None) -> None:
        folder = Path(root) / data_name if data_name else Path(root)
        if not folder.is_dir():
            raise VsrnError(f"data folder {folder} does not exist; generate a synthetic set with "
                            "`vsrn-deploy make-data` or point --data at a SCAN precomp folder")
        self.folder = folder
        self.split = split
        ims_path = folder / f"{split}_ims.npy"
        caps_path = folder / f"{split}_caps.txt"
        if not ims_path.is_file():
            raise VsrnError(f"missing {ims_path} (expected the SCAN precomp layout "
                            f"{{split}}_ims.npy + {{split}}_caps.txt in {folder})")
        features = _load_npy(ims_path, "feature")
        if features.ndim != 3:
            raise VsrnError(f"{ims_path} has shape {features.shape}; expected [n_images, regions, "
                            "feature_dim]")
        if features.dtype not in (np.float32, np.float16, np.float64):
            raise VsrnError(f"{ims_path} has dtype {features.dtype}; expected float32")
        captions = read_captions(caps_path)
        n_images, n_caps = features.shape[0], len(captions)
        if n_images == 0:
            raise VsrnError(f"{ims_path} holds no images")
        if n_caps == n_images:
            per_image = 1
        elif n_caps == 5 * n_images:
            per_image = 5
        else:
            raise VsrnError(f"{caps_path} has {n_caps} captions for {n_images} images in {ims_path}; "
                            "expected 5 per image (or exactly one per image)")
        boxes = None
        boxes_path = folder / f"{split}_boxes.npy"
        if boxes_path.is_file():
            boxes = _load_npy(boxes_path, "box")
            if boxes.shape != (n_images, features.shape[1], 4):
                raise VsrnError(f"{boxes_path} has shape {boxes.shape}; expected "
                                f"{(n_images, features.shape[1], 4)} (x1, y1, x2, y2 per region)")

        if split == "dev" and dev_truncate and n_caps > DEV_CAPTIONS:
            n_caps = DEV_CAPTIONS  # the authors' model selection uses the first 5000 dev captions
        if max_images is not None:
            if max_images < 1:
                raise VsrnError(f"max_images must be >= 1 (got {max_images})")
            n_caps = min(n_caps, max_images * per_image)
        n_images = -(-n_caps // per_image)
        self.features = features[:n_images]
        self.boxes = boxes[:n_images] if boxes is not None else None
        self.captions = captions[:n_caps]
        self.captions_per_image = per_image
        self._check_first_image()

    def _check_first_image(self) -> None:
        # O(one image) sanity check at open time; every batch is checked again while training.
        first = np.asarray(self.features[0])
        if not np.isfinite(first).all():
            raise VsrnError(f"{self.folder / (self.split + '_ims.npy')}: image 0 holds NaN/Inf "
                            "features; the file is corrupt")

    def __len__(self) -> int:
        return len(self.captions)

    @property
    def n_images(self) -> int:
        return int(self.features.shape[0])

    @property
    def num_regions(self) -> int:
        return int(self.features.shape[1])

    @property
    def feature_dim(self) -> int:
        return int(self.features.shape[2])

    def image_index(self, caption_index: int) -> int:
        """The image that caption `caption_index` describes."""
        return caption_index // self.captions_per_image

    def image_features(self, image_index: int) -> np.ndarray:
        """Region features of one image as a float32 array [k, F] (reads only that image)."""
        return np.array(self.features[image_index], dtype=np.float32)  # a writable copy

    def __repr__(self) -> str:
        return (f"PrecompSplit({str(self.folder)!r}, {self.split!r}: {self.n_images} images x "
                f"{self.num_regions} x {self.feature_dim}, {len(self)} captions)")
