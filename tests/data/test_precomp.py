"""The SCAN precomp reader on small hand-written files: mapping, dev truncation, bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.data.precomp import DEV_CAPTIONS, PrecompSplit, read_captions


def write_split(folder: Path, split: str, n_images: int, n_caps: int, k: int = 3, dim: int = 4,
                boxes: bool = False) -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)
    feats = np.arange(n_images * k * dim, dtype=np.float32).reshape(n_images, k, dim)
    np.save(folder / f"{split}_ims.npy", feats)
    (folder / f"{split}_caps.txt").write_text("".join(f"caption number {i}\n" for i in range(n_caps)))
    if boxes:
        np.save(folder / f"{split}_boxes.npy", np.ones((n_images, k, 4), dtype=np.float32))
    return feats


def test_five_captions_per_image_and_memmap(tmp_path: Path) -> None:
    feats = write_split(tmp_path / "x_precomp", "train", 4, 20)
    split = PrecompSplit(tmp_path, "train", data_name="x_precomp")
    assert len(split) == 20 and split.n_images == 4 and split.captions_per_image == 5
    assert isinstance(split.features, np.memmap)  # never read whole
    assert [split.image_index(j) for j in (0, 4, 5, 19)] == [0, 0, 1, 3]
    np.testing.assert_array_equal(split.image_features(2), feats[2])
    assert split.captions[7] == "caption number 7"
    assert (split.num_regions, split.feature_dim) == (3, 4)


def test_one_caption_per_image(tmp_path: Path) -> None:
    write_split(tmp_path, "test", 6, 6)
    split = PrecompSplit(tmp_path, "test")
    assert split.captions_per_image == 1
    assert split.image_index(5) == 5


def test_dev_truncation_like_the_authors(tmp_path: Path) -> None:
    write_split(tmp_path, "dev", 1002, 5010, k=1, dim=2)
    dev = PrecompSplit(tmp_path, "dev")
    assert len(dev) == DEV_CAPTIONS and dev.n_images == 1000
    full = PrecompSplit(tmp_path, "dev", dev_truncate=False)
    assert len(full) == 5010 and full.n_images == 1002
    write_split(tmp_path, "test", 1002, 5010, k=1, dim=2)
    assert len(PrecompSplit(tmp_path, "test")) == 5010  # only dev is truncated


def test_max_images(tmp_path: Path) -> None:
    write_split(tmp_path, "train", 5, 25)
    split = PrecompSplit(tmp_path, "train", max_images=2)
    assert len(split) == 10 and split.n_images == 2


def test_boxes_checked(tmp_path: Path) -> None:
    write_split(tmp_path, "train", 2, 10, boxes=True)
    assert PrecompSplit(tmp_path, "train").boxes.shape == (2, 3, 4)
    np.save(tmp_path / "train_boxes.npy", np.ones((2, 3, 3), dtype=np.float32))
    with pytest.raises(VsrnError, match="boxes"):
        PrecompSplit(tmp_path, "train")


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(VsrnError, match="does not exist"):
        PrecompSplit(tmp_path / "nope", "train")
    with pytest.raises(VsrnError, match="train_ims.npy"):
        PrecompSplit(tmp_path, "train")
    np.save(tmp_path / "train_ims.npy", np.zeros((2, 3, 4), dtype=np.float32))
    with pytest.raises(VsrnError, match="train_caps.txt"):
        PrecompSplit(tmp_path, "train")


def test_caption_count_not_divisible(tmp_path: Path) -> None:
    write_split(tmp_path, "train", 4, 19)
    with pytest.raises(VsrnError, match="19 captions for 4 images"):
        PrecompSplit(tmp_path, "train")


def test_empty_caption_line_is_an_error(tmp_path: Path) -> None:
    write_split(tmp_path, "train", 1, 5)
    (tmp_path / "train_caps.txt").write_text("a\nb\n\nd\ne\n")
    with pytest.raises(VsrnError, match="line 3 is empty"):
        PrecompSplit(tmp_path, "train")
    (tmp_path / "train_caps.txt").write_text("a\nb\n   \nd\ne")  # whitespace only, no final newline
    with pytest.raises(VsrnError, match="line 3"):
        read_captions(tmp_path / "train_caps.txt")


def test_bad_feature_files(tmp_path: Path) -> None:
    write_split(tmp_path, "train", 2, 10)
    np.save(tmp_path / "train_ims.npy", np.zeros((2, 12), dtype=np.float32))
    with pytest.raises(VsrnError, match="expected \\[n_images, regions"):
        PrecompSplit(tmp_path, "train")
    np.save(tmp_path / "train_ims.npy", np.zeros((2, 3, 4), dtype=np.float32))
    raw = (tmp_path / "train_ims.npy").read_bytes()
    (tmp_path / "train_ims.npy").write_bytes(raw[:-20])  # truncated
    with pytest.raises(VsrnError, match="not a readable .npy"):
        PrecompSplit(tmp_path, "train")
    np.save(tmp_path / "train_ims.npy", np.array([[[{"a": 1}]]], dtype=object), allow_pickle=True)
    with pytest.raises(VsrnError, match="never unpickles"):  # object arrays need pickle: refused
        PrecompSplit(tmp_path, "train")


def test_nan_in_first_image_is_caught_at_open(tmp_path: Path) -> None:
    feats = np.ones((2, 3, 4), dtype=np.float32)
    feats[0, 1, 2] = np.nan
    np.save(tmp_path / "train_ims.npy", feats)
    (tmp_path / "train_caps.txt").write_text("a\nb\n")
    with pytest.raises(VsrnError, match="NaN"):
        PrecompSplit(tmp_path, "train")
