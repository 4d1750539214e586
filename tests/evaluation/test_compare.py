"""The one comparator: row cosine, near-tie aware top-1 and recall flips, retrieval pass/fail."""

from __future__ import annotations

import numpy as np

from vsrn_deploy.core.contract import PARITY
from vsrn_deploy.evaluation.compare import (
    compare_retrieval,
    retrieval_failures,
    row_cosine,
    top1_agreement,
    unexplained_recall_flips,
)


def test_top1_and_recall_flips_ignore_near_ties_only():
    ref = np.array([[0.9, 0.8995, 0.1, 0.0, 0.0], [0.1, 0.2, 0.3, 0.4, 0.5]]).repeat(5, axis=1)[:, :10]
    ref = np.random.default_rng(0).normal(size=(2, 10)) * 0.01 + ref
    swapped = ref.copy()
    i, j = ref[0].argsort()[-2:]
    swapped[0, [i, j]] = ref[0, [j, i]]  # swap the two best captions of image 0
    gap = abs(ref[0, i] - ref[0, j])
    assert top1_agreement(ref, swapped, near_tie=gap + 1e-9)["i2t"] == 1.0
    assert top1_agreement(ref, swapped, near_tie=gap / 2)["i2t"] == 0.5
    assert top1_agreement(ref, swapped, near_tie=gap / 2)["i2t_raw"] == 0.5
    assert unexplained_recall_flips(ref, ref, 1e-3) == dict.fromkeys(
        ["i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10"], 0.0)


def test_row_cosine_is_per_last_axis_vector_with_one_zero_row_rule():
    ref = np.array([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [3.0, 4.0]]])  # (2, 2, 2): regions
    got = np.array([[[2.0, 0.0], [0.0, 0.0]], [[1.0, 0.0], [3.0, 4.0]]])
    assert row_cosine(ref, got).tolist() == [1.0, 1.0, 0.0, 1.0]  # zero/zero agrees, zero/non-zero not
    assert row_cosine(np.array([[np.nan, 1.0]]), np.array([[1.0, 1.0]])).tolist() == [-1.0]


def test_compare_retrieval_reports_raw_and_tie_aware_and_judges_with_the_contract():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(20, 8))
    captions = images.repeat(5, axis=0) + rng.normal(scale=0.3, size=(100, 8))
    same = compare_retrieval((images, captions), (images, captions), "fp16")
    assert same["near_tie"] == PARITY["fp16"].near_tie
    assert same["top1_agreement"] == same["top1_agreement_raw"] == 1.0
    assert retrieval_failures(same, PARITY["fp16"]) == []
    shuffled = compare_retrieval((images, captions), (images, rng.permutation(captions)), "fp16")
    assert shuffled["top1_agreement_raw"] <= shuffled["top1_agreement"] < PARITY["fp16"].top1
    assert any("top-1" in f for f in retrieval_failures(shuffled, PARITY["fp16"]))
