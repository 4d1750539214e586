"""The one comparator: row cosine, near-tie aware top-1 and recall flips, retrieval pass/fail."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vsrn_deploy.core.contract import PARITY, PRECISIONS
from vsrn_deploy.evaluation.compare import (
    compare_retrieval,
    judge,
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
    verdict = judge("fp16", retrieval=same)
    assert verdict.passed and verdict.failures == []
    assert [(c.output, c.metric) for c in verdict.checks] == [
        *((k, "recall_delta") for k in ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10")),
        ("top1", "agreement")]
    shuffled = compare_retrieval((images, captions), (images, rng.permutation(captions)), "fp16")
    assert shuffled["top1_agreement_raw"] <= shuffled["top1_agreement"] < PARITY["fp16"].top1
    verdict = judge("fp16", retrieval=shuffled)
    assert not verdict.passed and any("top-1" in f for f in verdict.failures)
    assert judge("fp32", retrieval=shuffled).passed  # FP32 bounds no retrieval figure


def _outputs(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"image_embedding": rng.normal(size=(6, 8)).astype(np.float32),
            "region_embeddings": rng.normal(size=(6, 4, 8)).astype(np.float32)}


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_judge_fails_non_finite_rows_at_every_precision(precision, bad):
    ref = _outputs()
    assert judge(precision, ref, {k: v.copy() for k, v in ref.items()}).passed
    got = {k: v.copy() for k, v in ref.items()}
    got["region_embeddings"][2, 1, 3] = bad  # one region's vector of one image
    verdict = judge(precision, ref, got)
    assert not verdict.passed
    assert verdict.measured["outputs"]["region_embeddings"]["non_finite_rows"] == 1
    assert verdict.measured["non_finite_rows"] == 1
    assert "region_embeddings: 1 rows hold NaN/Inf" in verdict.failures
    # even where no other bound would notice: the row's output is left out of the cosine
    only_rows = judge(precision, ref, got, cosine_outputs=("image_embedding",),
                      bounds=dataclasses.replace(PARITY[precision], max_abs=None))
    assert [c.metric for c in only_rows.checks if not c.passed] == ["non_finite_rows"]
    # and in a retrieval set: NaN/Inf embedding rows fail although they barely move R@K
    rng = np.random.default_rng(1)
    images = rng.normal(size=(100, 8))
    captions = images.repeat(5, axis=0) + rng.normal(scale=0.05, size=(500, 8))
    broken = captions.copy()
    broken[7, 0] = bad
    result = compare_retrieval((images, captions), (images, broken), precision)
    assert result["non_finite_rows"] == 1
    verdict = judge(precision, retrieval=result)
    assert [c.metric for c in verdict.checks if not c.passed] == ["non_finite_rows"]
    assert verdict.failures == ["retrieval: 1 embedding rows hold NaN/Inf"]


def test_judge_applies_the_precisions_bounds_and_reports_what_it_measured():
    ref = _outputs()
    got = {k: v + np.float32(2e-5) for k, v in ref.items()}  # beyond FP32's 1e-5, tiny for FP16's cosine
    fp32 = judge("fp32", ref, got)
    assert not fp32.passed
    assert {(c.output, c.metric, c.passed) for c in fp32.checks} == {
        ("image_embedding", "max_abs_err", False), ("region_embeddings", "max_abs_err", False)}
    assert fp32.measured["max_abs_err"] == pytest.approx(2e-5, rel=0.05)
    assert judge("fp32", ref, got, bounds=dataclasses.replace(PARITY["fp32"], max_abs=1e-4)).passed
    fp16 = judge("fp16", ref, got)
    assert fp16.passed and {c.metric for c in fp16.checks} == {"min_cosine"}
    assert fp16.measured["min_cosine"] > PARITY["fp16"].min_cosine
    turned = {**got, "image_embedding": -got["image_embedding"]}
    assert "image_embedding: min row cosine" in judge("int8", ref, turned).failures[0]
    # a missing or mis-shaped output is a problem, not a number
    short = judge("fp16", ref, {"image_embedding": got["image_embedding"][:3]})
    assert not short.passed and len(short.problems) == 2
