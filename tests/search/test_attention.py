"""attention_map against its own naive per-pixel reading of the paper's rule (Sec. 4.5)."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.search.attention import attention_map, boxes_in_pixels, region_ranks, render_attention


def naive_map(regions, image, boxes, height, width, lam=50.0):
    """Pixel by pixel: for each pixel, sum s_i over the boxes that contain it."""
    k = len(regions)
    image = np.asarray(image, dtype=np.float64)
    corr = [float(np.dot(np.asarray(r, dtype=np.float64), image)) for r in regions]
    # rank: 1 + number of regions that come before i (higher c, or equal c and lower index)
    ranks = [1 + sum(1 for j in range(k) if corr[j] > corr[i] or (corr[j] == corr[i] and j < i))
             for i in range(k)]
    scores = [lam * (k - r) ** 2 for r in ranks]
    out = np.zeros((height, width), dtype=np.float64)
    for y in range(height):
        for x in range(width):
            total = 0.0
            for (x1, y1, x2, y2), s in zip(boxes, scores, strict=True):
                if math.floor(x1) <= x <= math.ceil(x2) - 1 and math.floor(y1) <= y <= math.ceil(y2) - 1:
                    total += s
            out[y, x] = total
    return out.astype(np.float32)


def random_case(rng, k, dim, height, width, ties=False):
    regions = rng.normal(size=(k, dim)).astype(np.float32)
    image = rng.normal(size=dim).astype(np.float32)
    if ties:  # some regions equal: equal correlations, ranked by index
        regions[k // 2] = regions[0]
        regions[k - 1] = regions[1]
    x1 = rng.uniform(-5, width + 2, k)
    y1 = rng.uniform(-5, height + 2, k)
    boxes = np.stack([x1, y1, x1 + rng.uniform(0, width / 2, k), y1 + rng.uniform(0, height / 2, k)], 1)
    boxes[0] = [2.0, 3.0, 5.0, 7.0]  # integral edges: columns 2..4, rows 3..6
    boxes[1] = [0.5, 0.5, 0.5, 0.5]  # degenerate: floor 0 .. ceil 1 - 1 = one pixel
    return regions, image, boxes.astype(np.float32)


@pytest.mark.parametrize("seed", range(6))
def test_matches_the_naive_rule_on_random_cases(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 12))
    height, width = int(rng.integers(1, 24)), int(rng.integers(1, 24))
    lam = float(rng.choice([50.0, 1.0, 0.37]))
    regions, image, boxes = random_case(rng, k, 8, height, width, ties=seed % 2 == 0)
    got = attention_map(regions, image, boxes, height, width, lam=lam)
    assert got.dtype == np.float32 and got.shape == (height, width)
    want = naive_map(regions, image, boxes, height, width, lam)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-4)


def test_ranks_break_ties_by_lower_index():
    regions = np.array([[1.0, 0.0], [2.0, 0.0], [1.0, 0.0], [2.0, 0.0]], dtype=np.float32)
    assert region_ranks(regions, np.array([1.0, 0.0])).tolist() == [3, 1, 4, 2]


def test_known_small_map():
    # k = 2: the better region scores lam * 1, the other 0; region 1 correlates more
    regions = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    image = np.array([1.0, 0.0], dtype=np.float32)
    boxes = np.array([[0, 0, 4, 4], [1.2, 0.0, 2.0, 1.5]], dtype=np.float32)
    got = attention_map(regions, image, boxes, 3, 4, lam=50.0)
    want = np.zeros((3, 4), dtype=np.float32)
    want[0:2, 1:2] = 50.0  # columns floor(1.2)=1 .. ceil(2)-1=1, rows 0 .. ceil(1.5)-1=1
    np.testing.assert_array_equal(got, want)


def test_bad_shapes_are_refused():
    regions = np.zeros((3, 4), dtype=np.float32)
    with pytest.raises(VsrnError, match="boxes must be"):
        attention_map(regions, np.zeros(4), np.zeros((2, 4)), 5, 5)
    with pytest.raises(VsrnError, match="image_embedding"):
        attention_map(regions, np.zeros(5), np.zeros((3, 4)), 5, 5)
    with pytest.raises(VsrnError, match="NaN"):
        attention_map(regions, np.full(4, np.nan), np.zeros((3, 4)), 5, 5)


def test_render_outlines_top_regions_over_a_picture(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    regions, image, _ = random_case(rng, 6, 8, 40, 60)
    boxes = np.array([[0.1, 0.1, 0.5, 0.9], [0.5, 0.2, 0.9, 0.8], [0.0, 0.0, 0.2, 0.2],
                      [0.3, 0.3, 0.6, 0.6], [0.7, 0.7, 1.0, 1.0], [0.4, 0.0, 0.6, 0.3]], dtype=np.float32)
    picture = tmp_path / "photo.png"
    Image.new("RGB", (60, 40), (0, 0, 255)).save(picture)
    png = render_attention(regions, image, boxes, picture, top=2)
    out = Image.open(io.BytesIO(png)).convert("RGB")
    assert out.size == (60, 40)  # the photo's size: fractional boxes scaled to it
    pixels = np.asarray(out)
    assert (pixels[..., 2] > 0).any() and (pixels[..., 0] > 0).any()  # photo blended with heat
    # without a picture: a blank canvas of the boxes' extent (fractions -> the normalised canvas)
    blank = Image.open(io.BytesIO(render_attention(regions, image, boxes)))
    scaled, h, w = boxes_in_pixels(boxes)
    assert blank.size == (w, h) and scaled.max() == pytest.approx(w)
    pixel_boxes = boxes * 100
    assert Image.open(io.BytesIO(render_attention(regions, image, pixel_boxes))).size == (100, 100)


def test_a_lambda_that_overflows_the_map_is_refused_by_the_library_too():
    """The command line stops such a --lam first; a caller of the library gets the same refusal."""
    regions = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    boxes = np.array([[0, 0, 4, 4], [1.2, 0.0, 2.0, 1.5]], dtype=np.float32)
    with pytest.raises(VsrnError, match="too large"):
        attention_map(regions, np.array([1.0, 0.0], dtype=np.float32), boxes, 3, 4, lam=1e308)
