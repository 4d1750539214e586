"""GroupBatchSampler (whole groups of look-alikes per batch) and the synthetic data's group ids."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.data import synthetic
from vsrn_deploy.data.batching import GroupBatchSampler, make_loader
from vsrn_deploy.data.precomp import PrecompSplit
from vsrn_deploy.data.vocab import load_vocab


def test_group_batches_hold_whole_groups_once_per_image() -> None:
    groups = np.repeat(np.arange(10), 4)[np.random.default_rng(3).permutation(40)]  # 40 images
    sampler = GroupBatchSampler(groups, 5, batch_size=8, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 5 * 5  # 5 rounds x (10 groups / 2 per batch)
    seen = Counter()
    for batch in batches:
        assert len(batch) == 8
        images = [c // 5 for c in batch]
        assert len(set(images)) == 8  # no image twice: no false negatives
        per_group = Counter(groups[images].tolist())
        assert sorted(per_group.values()) == [4, 4]  # two whole groups
        seen.update(batch)
    assert sorted(seen) == list(range(200)) and set(seen.values()) == {1}  # each caption once
    sampler.set_epoch(1)
    assert list(sampler) != batches  # reshuffled per epoch
    sampler.set_epoch(0)
    assert list(sampler) == batches  # reproducible


def test_group_batches_drop_last_and_large_groups() -> None:
    groups = np.array([0, 0, 0, 1, 1, 1])  # batch 4 holds one group of 3 at a time
    full = list(GroupBatchSampler(groups, 1, batch_size=4, seed=0))
    assert [len(b) for b in full] == [3]  # the round's last, incomplete batch is dropped
    kept = list(GroupBatchSampler(groups, 1, batch_size=4, seed=0, drop_last=False))
    assert sorted(len(b) for b in kept) == [3, 3]  # groups are never split to fill a batch
    assert sorted(c for b in kept for c in b) == list(range(6))
    big = list(GroupBatchSampler(np.zeros(6, dtype=np.int64), 1, batch_size=4, drop_last=False))
    assert sorted(len(b) for b in big) == [2, 4]
    with pytest.raises(VsrnError, match="1-D"):
        GroupBatchSampler(np.zeros((2, 2)), 5, 4)


def test_synthetic_groups_file_marks_the_look_alikes(tmp_path: Path) -> None:
    folder = synthetic.generate_dataset(tmp_path, n_train=12, n_dev=2, n_test=2, num_regions=8,
                                        feature_dim=32, seed=4)
    split = PrecompSplit(folder, "train")
    groups = np.load(folder / "train_groups.npy")
    assert groups.shape == (12,) and groups.dtype == np.int64
    assert sorted(Counter(groups.tolist()).values()) == [4, 4, 4]
    for g in set(groups.tolist()):
        members = np.flatnonzero(groups == g)
        words = [frozenset(split.captions[5 * i].split()) & set(synthetic.NOUNS + synthetic.COLOURS)
                 for i in members]
        assert len(set(words)) == 1  # same two nouns and two colours
        assert len({split.captions[5 * i] for i in members}) == 4  # but four different images
    vocab = load_vocab(synthetic.default_vocab_path(folder))
    loader = make_loader(split, vocab, 4, shuffle=False,
                         batch_sampler=GroupBatchSampler(groups, 5, 4, seed=0))
    batch = next(iter(loader))
    assert len(set(groups[batch.image_index.numpy()].tolist())) == 1
