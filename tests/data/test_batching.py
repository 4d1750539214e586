"""CaptionDataset, collate padding, region orders, the lazy NaN check and the loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.data.batching import CaptionDataset, collate_batch, make_loader
from vsrn_deploy.data.precomp import PrecompSplit
from vsrn_deploy.data.vocab import build_vocab

CAPTIONS = ["a dog", "a red dog runs", "dog", "a cat", "the red cat sits here", "cat"]


@pytest.fixture()
def split(tmp_path: Path) -> PrecompSplit:
    feats = np.random.default_rng(0).random((6, 4, 5)).astype(np.float32)
    np.save(tmp_path / "train_ims.npy", feats)
    boxes = np.zeros((6, 4, 4), dtype=np.float32)
    boxes[:, :, 2] = [1, 3, 2, 4]  # widths: area order 3, 1, 2, 0
    boxes[:, :, 3] = 1
    np.save(tmp_path / "train_boxes.npy", boxes)
    (tmp_path / "train_caps.txt").write_text("\n".join(CAPTIONS) + "\n")
    return PrecompSplit(tmp_path, "train")


@pytest.fixture()
def vocab():
    return build_vocab(CAPTIONS, threshold=1)


def test_sample_and_collate_padding(split: PrecompSplit, vocab) -> None:
    ds = CaptionDataset(split, vocab)
    feats, ids, cap, img = ds[4]
    assert feats.dtype == torch.float32 and feats.shape == (4, 5)
    assert (cap, img) == (4, 4)
    assert ids.tolist() == vocab.encode(CAPTIONS[4])
    batch = collate_batch([ds[i] for i in (2, 4, 0)])
    assert batch.features.shape == (3, 4, 5)
    assert batch.lengths.tolist() == [3, 7, 4]  # <start> and <end> counted
    assert batch.token_ids.shape == (3, 7)
    assert batch.token_ids[:, 0].tolist() == [1, 1, 1]  # <start>
    assert batch.token_ids[0, 2].item() == 2 and batch.token_ids[0, 3:].tolist() == [0] * 4  # <end>, pad
    assert batch.caption_index.tolist() == [2, 4, 0] and batch.image_index.tolist() == [2, 4, 0]


def test_region_orders(split: PrecompSplit, vocab) -> None:
    raw = split.image_features(1)
    by_box = CaptionDataset(split, vocab, region_order="box")[1][0].numpy()
    np.testing.assert_array_equal(by_box, raw[[3, 1, 2, 0]])
    rand = CaptionDataset(split, vocab, region_order="random", seed=3)
    first = rand[1][0].numpy()
    assert sorted(map(tuple, first)) == sorted(map(tuple, raw))  # a permutation of the regions
    np.testing.assert_array_equal(first, rand[1][0].numpy())  # reproducible within an epoch
    orders = set()
    for epoch in range(6):
        rand.set_epoch(epoch)
        orders.add(tuple(rand.region_permutation(1, 1)))
    assert len(orders) > 1  # and changes across epochs


def test_box_order_needs_boxes(tmp_path: Path, vocab) -> None:
    np.save(tmp_path / "test_ims.npy", np.ones((1, 2, 3), dtype=np.float32))
    (tmp_path / "test_caps.txt").write_text("dog\n")
    with pytest.raises(VsrnError, match="boxes"):
        CaptionDataset(PrecompSplit(tmp_path, "test"), vocab, region_order="box")
    with pytest.raises(VsrnError, match="region order"):
        CaptionDataset(PrecompSplit(tmp_path, "test"), vocab, region_order="size")


def test_nan_is_caught_per_batch(split: PrecompSplit, vocab) -> None:
    ds = CaptionDataset(split, vocab)
    batch = collate_batch([ds[i] for i in range(3)])
    batch.check_finite()
    batch.features[1, 0, 0] = float("nan")
    with pytest.raises(VsrnError, match=r"image\(s\) \[1\]"):
        batch.check_finite()


def test_loader_with_workers(split: PrecompSplit, vocab) -> None:
    loader = make_loader(split, vocab, batch_size=4, shuffle=True, workers=1, seed=1)
    seen = []
    for batch in loader:
        assert batch.token_ids.shape[0] == batch.lengths.shape[0] == batch.features.shape[0]
        seen += batch.caption_index.tolist()
    assert sorted(seen) == list(range(6))
    with pytest.raises(VsrnError):
        make_loader(split, vocab, batch_size=0, shuffle=False)
