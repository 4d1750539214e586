"""The vectorised recall functions against a per-query loop written the way the authors wrote theirs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from authors_evaluation import naive_i2t, naive_t2i  # the authors' loops, shared with benchmarks/

from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.evaluation import recall as ev


def _embeddings(rng, n_images, dim=16, noise=0.8):
    """Unit-norm (unique images [N, D], captions [5N, D]) where captions lie near their image."""
    ims = rng.standard_normal((n_images, dim))
    caps = np.repeat(ims, 5, axis=0) + noise * rng.standard_normal((5 * n_images, dim))
    ims /= np.linalg.norm(ims, axis=1, keepdims=True)
    caps /= np.linalg.norm(caps, axis=1, keepdims=True)
    return ims.astype(np.float32), caps.astype(np.float32)


def _quantised(rng, n_images, dim=6, levels=2):
    """Small-integer embeddings: every score is exact in floating point, and ties are frequent."""
    ims = rng.integers(-levels, levels + 1, (n_images, dim)).astype(np.float32)
    caps = rng.integers(-levels, levels + 1, (5 * n_images, dim)).astype(np.float32)
    caps[::7] = np.repeat(ims, 5, axis=0)[::7]  # some captions equal to their image
    caps[3::11] = caps[2::11][: len(caps[3::11])]  # duplicate captions
    ims[1::4] = ims[0::4][: len(ims[1::4])]  # duplicate images
    return ims, caps


def _assert_same(vec, naive):
    (metrics, (ranks, top1)), (n_metrics, (n_ranks, n_top1)) = vec, naive
    np.testing.assert_array_equal(ranks, n_ranks.astype(np.int64))
    np.testing.assert_array_equal(top1, n_top1.astype(np.int64))
    assert metrics == tuple(float(x) for x in n_metrics)


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_naive_on_random_embeddings(seed):
    ims, caps = _embeddings(np.random.default_rng(seed), 40)
    rep = np.repeat(ims, 5, axis=0)
    # no exact ties here, so the authors' own (unstable) argsort gives the same ranks
    _assert_same(ev.i2t(ims, caps, return_ranks=True), naive_i2t(rep, caps, kind="quicksort"))
    _assert_same(ev.t2i(ims, caps, return_ranks=True), naive_t2i(rep, caps, kind="quicksort"))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ties_follow_stable_reversed_argsort(seed):
    rng = np.random.default_rng(seed)
    ims, caps = _quantised(rng, 30)
    rep = np.repeat(ims, 5, axis=0)
    sims = ims.astype(np.float64) @ caps.T.astype(np.float64)
    assert (sims[:, :, None] == sims[:, None, :]).sum() > sims.size  # there really are ties
    # a small block forces ties to straddle block boundaries
    for block_bytes in (ev.DEFAULT_BLOCK_BYTES, 8 * caps.shape[0] * 7):
        _assert_same(ev.i2t(ims, caps, return_ranks=True, block_bytes=block_bytes), naive_i2t(rep, caps))
        _assert_same(ev.t2i(ims, caps, return_ranks=True, block_bytes=block_bytes), naive_t2i(rep, caps))


def test_tie_rule_on_a_hand_made_case():
    # image 0: its captions 0..4 all score 1, caption 5 (image 1's) also scores 1 -> caption 5 ranks
    # first (higher index), so image 0's best rank is 1, not 0.
    ims = np.array([[1.0, 0.0], [0.0, 1.0]])
    caps = np.array([[1.0, 0.0]] * 5 + [[1.0, 0.0]] + [[0.0, 1.0]] * 4)
    (r1, *_), (ranks, top1) = ev.i2t(ims, caps, return_ranks=True)
    assert ranks.tolist() == [1, 0]
    assert top1.tolist() == [5, 9]
    assert r1 == 50.0
    # caption 5 belongs to image 1 but scores 1 with image 0 and 0 with image 1 -> rank 1
    _, (tranks, ttop1) = ev.t2i(ims, caps, return_ranks=True)
    assert tranks.tolist() == [0] * 5 + [1] + [0] * 4
    assert ttop1.tolist() == [0] * 6 + [1] * 4


def test_repeated_layout_equals_one_row_per_image():
    ims, caps = _embeddings(np.random.default_rng(3), 25)
    rep = np.repeat(ims, 5, axis=0)
    assert ev.recall_report(ims, caps) == ev.recall_report(rep, caps)
    assert ev.i2t(ims, caps) == ev.i2t(rep, caps)
    assert ev.t2i(ims, caps) == ev.t2i(rep, caps)


def test_repeated_layout_must_really_repeat():
    rng = np.random.default_rng(4)
    ims, caps = _embeddings(rng, 10)
    distinct = rng.standard_normal(caps.shape)
    with pytest.raises(VsrnError, match="not copies of one image"):
        ev.i2t(distinct, caps)


def test_medr_and_meanr_definitions():
    ranks = np.array([0, 1, 2, 3])  # median 1.5 -> floor 1 -> medr 2; mean 1.5 -> meanr 2.5
    assert ev._metrics(ranks) == (25.0, 100.0, 100.0, 2.0, 2.5)
    ranks = np.array([0, 0, 9, 10, 50])
    assert ev._metrics(ranks) == (40.0, 40.0, 60.0, 10.0, 14.8)


def test_fold5_is_the_mean_of_five_independent_folds():
    ims, caps = _embeddings(np.random.default_rng(5), 50, noise=1.2)
    report = ev.recall_report(ims, caps, fold5=True)
    assert report["protocol"] == "5-fold" and report["images_per_fold"] == 10
    assert len(report["folds"]) == 5
    for f, fold in enumerate(report["folds"]):
        sl_i, sl_c = slice(10 * f, 10 * f + 10), slice(50 * f, 50 * f + 50)
        rep = np.repeat(ims[sl_i], 5, axis=0)
        assert tuple(fold[f"i2t_{k}"] for k in ev.METRICS) == naive_i2t(rep, caps[sl_c])[0]
        assert tuple(fold[f"t2i_{k}"] for k in ev.METRICS) == naive_t2i(rep, caps[sl_c])[0]
    for key in ("i2t_r1", "t2i_medr", "rsum"):
        assert report[key] == pytest.approx(np.mean([f[key] for f in report["folds"]]))
    full = ev.recall_report(ims, caps)
    assert "folds" not in full and full["n_images"] == 50
    # smaller galleries are easier: the 1K-style mean beats the all-images numbers
    assert report["rsum"] > full["rsum"]


def test_ensemble_averages_similarities():
    rng = np.random.default_rng(6)
    ims, caps = _embeddings(rng, 30, noise=1.5)
    ims2, caps2 = _embeddings(np.random.default_rng(7), 30, noise=1.5)
    rep, rep2 = np.repeat(ims, 5, axis=0), np.repeat(ims2, 5, axis=0)
    _assert_same(ev.i2t(ims, caps, images2=ims2, captions2=caps2, return_ranks=True),
                 naive_i2t(rep, caps, rep2, caps2))
    _assert_same(ev.t2i(rep, caps, images2=ims2, captions2=caps2, return_ranks=True),
                 naive_t2i(rep, caps, rep2, caps2))
    sims = (ims.astype(np.float64) @ caps.T.astype(np.float64)
            + ims2.astype(np.float64) @ caps2.T.astype(np.float64)) / 2
    report = ev.recall_report(ims, caps, images2=ims2, captions2=caps2)
    assert report["n_models"] == 2
    from_sims = ev.recall_report_from_sims(sims, n_models=2)
    keys = [k for k in report if k.startswith(("i2t_", "t2i_"))] + ["rsum"]
    assert len(keys) == 11
    assert {k: report[k] for k in keys} == {k: from_sims[k] for k in keys}


def test_from_sims_matches_embeddings_and_report_is_json():
    ims, caps = _embeddings(np.random.default_rng(8), 20)
    sims = ev.similarity(ims, caps)
    assert sims.shape == (20, 100) and sims.dtype == np.float64
    assert ev.i2t_from_sims(sims) == ev.i2t(ims, caps)
    assert ev.t2i_from_sims(sims) == ev.t2i(ims, caps)
    report = ev.recall_report(ims, caps, fold5=True)
    assert json.loads(json.dumps(report)) == report
    table = ev.format_table(report)
    assert "image->text" in table and "text->image" in table and "5 folds" in table
    assert f"{report['rsum']:.2f}" in table


def test_perfect_and_reversed_embeddings():
    ims = np.eye(8)[:4]
    caps = np.repeat(ims, 5, axis=0)
    assert ev.i2t(ims, caps) == (100.0, 100.0, 100.0, 1.0, 1.0)
    assert ev.t2i(ims, caps) == (100.0, 100.0, 100.0, 1.0, 1.0)


@pytest.mark.parametrize(
    ("images", "captions", "match"),
    [
        (np.zeros((4, 8)), np.zeros((19, 8)), "not a multiple of 5"),
        (np.zeros((3, 8)), np.zeros((20, 8)), "has 3 rows"),
        (np.zeros((4, 8)), np.zeros((20, 6)), "dimension"),
        (np.zeros((4, 8, 1)), np.zeros((20, 8)), "2-D"),
        (np.zeros((0, 8)), np.zeros((0, 8)), "empty"),
        (np.array([["a"] * 8] * 4), np.zeros((20, 8)), "real numbers"),
    ],
)
def test_bad_shapes_raise(images, captions, match):
    with pytest.raises(VsrnError, match=match):
        ev.recall_report(images, captions)


def test_nan_and_half_ensemble_raise():
    ims, caps = _embeddings(np.random.default_rng(9), 5)
    bad = caps.copy()
    bad[7, 0] = np.nan
    with pytest.raises(VsrnError, match="NaN"):
        ev.i2t(ims, bad)
    with pytest.raises(VsrnError, match="both images2 and captions2"):
        ev.t2i(ims, caps, images2=ims)
    with pytest.raises(VsrnError, match="divisible by 5"):
        ev.recall_report(ims[:4], caps[:20], fold5=True)
    with pytest.raises(VsrnError, match=r"\[n_images, n_images \* 5\]"):
        ev.i2t_from_sims(np.zeros((4, 4)))


def test_slices_inside_blocks_keep_ties_exact(monkeypatch):
    ims, caps = _quantised(np.random.default_rng(10), 23)
    rep = np.repeat(ims, 5, axis=0)
    monkeypatch.setattr(ev, "SLICE_BYTES", 8 * caps.shape[0] * 3)  # slices of 3 rows
    block = 8 * caps.shape[0] * 7  # blocks of 7 rows: slices and blocks both straddle ties
    _assert_same(ev.i2t(ims, caps, return_ranks=True, block_bytes=block), naive_i2t(rep, caps))
    _assert_same(ev.t2i(ims, caps, return_ranks=True, block_bytes=block), naive_t2i(rep, caps))


def test_one_caption_per_image_is_symmetric():
    rng = np.random.default_rng(11)
    sims = rng.integers(0, 4, (12, 12)).astype(np.float64)  # many ties
    a = ev.t2i_from_sims(sims, captions_per_image=1, return_ranks=True)
    b = ev.i2t_from_sims(sims.T.copy(), captions_per_image=1, return_ranks=True)
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1][0], b[1][0])
    np.testing.assert_array_equal(a[1][1], b[1][1])
    # and the i2t ranks are the stable-reversed argsort positions
    for i in range(12):
        order = np.argsort(sims[i], kind="stable")[::-1]
        assert ev.i2t_from_sims(sims, captions_per_image=1, return_ranks=True)[1][0][i] == \
            int(np.where(order == i)[0][0])


def test_module_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, vsrn_deploy.evaluation.recall; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_ensemble_ties_follow_the_same_rule():
    ims, caps = _quantised(np.random.default_rng(12), 20)
    ims2, caps2 = _quantised(np.random.default_rng(13), 20)
    rep, rep2 = np.repeat(ims, 5, axis=0), np.repeat(ims2, 5, axis=0)
    _assert_same(ev.i2t(ims, caps, images2=ims2, captions2=caps2, return_ranks=True),
                 naive_i2t(rep, caps, rep2, caps2))
    _assert_same(ev.t2i(ims, caps, images2=rep2, captions2=caps2, return_ranks=True),
                 naive_t2i(rep, caps, rep2, caps2))
