"""Image-text retrieval recall with the authors' protocol (VSE++ / VSRN ``evaluation.py``), vectorised.

The protocol (Faghri et al., VSE++, BMVC 2018; kept by VSRN, Li et al., ICCV 2019):

- ``captions`` [5N, D]: captions 5i..5i+4 describe image i. ``images`` is either one row per image
  [N, D] or the authors' layout [5N, D] with each image repeated once per caption (their
  ``encode_data`` output); both give identical results.
- Scores are inner products (cosine for l2-normalised embeddings) computed in float64, as the
  authors' ``encode_data`` stores embeddings in float64 arrays.
- image->text (i2t): an image's rank is the best (smallest) 0-based rank among its 5 captions when all
  5N captions are sorted by score; text->image (t2i): a caption's rank is that of its image among the
  N images.
- R@K = 100 * (fraction of queries with rank < K); medr = floor(median(ranks)) + 1;
  meanr = mean(ranks) + 1; rsum = R@1 + R@5 + R@10 of both directions.
- COCO 1K: the mean of each metric over 5 folds of 1000 images (5000 captions); COCO 5K and
  Flickr30K: all test images at once. Two-model ensembles average the two similarity matrices,
  as the paper's published numbers do.

Ties. The authors rank with ``inds = numpy.argsort(scores)[::-1]`` and ``numpy.where(inds == i)``.
numpy's default argsort is not stable (introsort, and SIMD sorting networks in numpy >= 1.25 even
for short arrays), so the order it gives to exactly equal scores depends on the numpy version and
the CPU. This module fixes it to the deterministic version of their expression,
``numpy.argsort(scores, kind="stable")[::-1]``: among equal scores the item with the higher index
comes first. The 0-based rank of item i is therefore::

    #{j : s_j > s_i} + #{j > i : s_j == s_i}

Without exact ties (the normal case for real-valued embeddings) every number equals the authors'
loop exactly; with ties it equals their loop with a stable sort. Ties are exact only when the
scores are computed exactly (e.g. small-integer test embeddings); for general floats, BLAS may round
the same product differently at different positions of the matrix, in the authors' code as here.

Speed and memory. No Python loop over queries: the similarity matrix is built a block of image rows
at a time (at most ``block_bytes`` of float64 scores), and a rank is the number of items scoring
higher, counted by comparison, plus the tie rule. 5,000 images x 25,000 captions needs one block
buffer (64 MiB by default), never the 1 GB matrix. The module imports numpy only (no torch).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vsrn_deploy.core.errors import VsrnError

#: Captions per image in COCO and Flickr30K.
CAPTIONS_PER_IMAGE = 5
#: Default upper bound on the float64 score block held at once.
DEFAULT_BLOCK_BYTES = 64 * 2**20
#: Scores compared at once: small enough to stay in cache across the comparison passes.
SLICE_BYTES = 4 * 2**20
#: The tie rule, named in reports.
TIE_RULE = "argsort(kind='stable')[::-1]: among equal scores the higher index ranks first"
METRICS = ("r1", "r5", "r10", "medr", "meanr")

Recalls = tuple[float, float, float, float, float]
_BlockFn = Callable[[int, int, np.ndarray], np.ndarray]


# ----------------------------------------------------------------------------------------------
# input checking
# ----------------------------------------------------------------------------------------------


def _as_matrix(x: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(x)
    except Exception as exc:  # e.g. a ragged list
        raise VsrnError(f"{name} is not an array ({exc})") from None
    if arr.ndim != 2:
        raise VsrnError(f"{name} must be a 2-D array [rows, dim]; got shape {arr.shape}")
    if arr.dtype.kind not in "fiu":
        raise VsrnError(f"{name} must hold real numbers; got dtype {arr.dtype}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise VsrnError(f"{name} is empty (shape {arr.shape})")
    return arr


def _check_finite(arr: np.ndarray, name: str) -> None:
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
        raise VsrnError(f"{name} holds NaN/Inf in {bad.size} row(s), first rows {bad[:5].tolist()}; "
                        "check the model inputs (e.g. all-zero region features) before evaluating")


def _check_per_image(per_image: int) -> None:
    if not isinstance(per_image, (int, np.integer)) or per_image < 1:
        raise VsrnError(f"captions_per_image must be a positive integer (got {per_image!r})")


def _unique_images(images: np.ndarray, n_captions: int, per_image: int, name: str) -> np.ndarray:
    """One row per image, from either accepted layout; rejects any other row count."""
    if n_captions % per_image:
        raise VsrnError(f"there are {n_captions} captions, not a multiple of {per_image} captions per "
                        "image; captions k*i..k*i+k-1 must belong to image i")
    n_images = n_captions // per_image
    if images.shape[0] == n_images:
        return images
    if images.shape[0] == n_captions:
        # The authors' layout: each image repeated once per caption. Make sure it really is, so a
        # set of distinct images with one caption each is never silently subsampled.
        groups = images.reshape(n_images, per_image, images.shape[1])
        scale = float(np.abs(groups[:, 0]).max()) or 1.0
        for start in range(0, n_images, 256):  # bounded temporaries, even at 2048 dims
            part = groups[start:start + 256]
            if not np.allclose(part, part[:, :1], rtol=0.0, atol=1e-3 * scale):
                raise VsrnError(
                    f"{name} has one row per caption ({n_captions}) but rows {per_image}*i..."
                    f"{per_image}*i+{per_image - 1} are not copies of one image; pass one row per "
                    f"image [{n_images}, D] or the authors' layout with each image repeated "
                    f"{per_image} times")
        return images[::per_image]
    raise VsrnError(f"{name} has {images.shape[0]} rows but captions describe {n_images} images "
                    f"({n_captions} captions, {per_image} per image); expected {n_images} rows (one per "
                    f"image) or {n_captions} (each image repeated per caption)")


def _prepare(images: Any, captions: Any, per_image: int, suffix: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Validated float64 (unique images [N, D], transposed captions [D, N*k]), C-contiguous.

    The captions are kept only transposed (the fast BLAS operand): one float64 copy in memory.
    """
    _check_per_image(per_image)
    ims = _as_matrix(images, "images" + suffix)
    caps = _as_matrix(captions, "captions" + suffix)
    if ims.shape[1] != caps.shape[1]:
        raise VsrnError(f"images{suffix} have dimension {ims.shape[1]} but captions{suffix} have "
                        f"{caps.shape[1]}; both must come from the same model")
    ims = _unique_images(ims, caps.shape[0], per_image, "images" + suffix)
    _check_finite(ims, "images" + suffix)
    _check_finite(caps, "captions" + suffix)
    return (np.ascontiguousarray(ims, dtype=np.float64),
            np.ascontiguousarray(caps.T, dtype=np.float64))  # (N, D), (D, M)


@dataclass(frozen=True)
class _Scores:
    """Block-wise access to the [N images, N*k captions] score matrix (one model or an average)."""

    n_images: int
    per_image: int
    block: _BlockFn  # block(a, b, out) -> scores of images a..b-1, written into out (b-a, M)
    gt: np.ndarray  # (M,) score of each caption with its own image
    sub: Callable[[int, int], _Scores]  # the scores restricted to images a..b-1 and their captions

    @property
    def n_captions(self) -> int:
        return self.n_images * self.per_image


def _scores_from_embeddings(pairs: Sequence[tuple[np.ndarray, np.ndarray]], per_image: int) -> _Scores:
    """Scores of one model, or the mean of several (the authors' ensemble: (d1 + d2) / 2).

    Each pair is (images [N, D], captions transposed [D, N*k]), float64 and C-contiguous.
    """
    n_images = pairs[0][0].shape[0]

    def block(a: int, b: int, out: np.ndarray) -> np.ndarray:
        np.matmul(pairs[0][0][a:b], pairs[0][1], out=out)  # (b-a, M)
        if len(pairs) > 1:
            tmp = np.empty_like(out)
            for ims, caps_t in pairs[1:]:
                np.matmul(ims[a:b], caps_t, out=tmp)
                out += tmp
            out /= len(pairs)
        return out

    gts = []
    for ims, caps_t in pairs:
        groups = caps_t.reshape(caps_t.shape[0], n_images, per_image)  # (D, N, k)
        gts.append(np.einsum("nd,dnk->nk", ims, groups).reshape(-1))  # (M,) own-image scores
    gt = gts[0]
    for extra in gts[1:]:
        gt = gt + extra
    if len(gts) > 1:
        gt = gt / len(gts)

    def sub(a: int, b: int) -> _Scores:
        return _scores_from_embeddings(
            [(ims[a:b], np.ascontiguousarray(caps_t[:, a * per_image:b * per_image]))
             for ims, caps_t in pairs], per_image)

    return _Scores(n_images, per_image, block, gt, sub)


def _scores_from_matrix(sims: np.ndarray, per_image: int) -> _Scores:
    n_images = sims.shape[0]
    m = n_images * per_image
    gt = np.asarray(sims[np.arange(m) // per_image, np.arange(m)], dtype=np.float64)

    def block(a: int, b: int, out: np.ndarray) -> np.ndarray:
        out[...] = sims[a:b]
        return out

    def sub(a: int, b: int) -> _Scores:
        return _scores_from_matrix(sims[a:b, a * per_image:b * per_image], per_image)

    return _Scores(n_images, per_image, block, gt, sub)


def _prepare_sims(sims: Any, per_image: int) -> np.ndarray:
    _check_per_image(per_image)
    mat = _as_matrix(sims, "sims")
    if mat.shape[1] != mat.shape[0] * per_image:
        raise VsrnError(f"sims must be [n_images, n_images * {per_image}] (image rows, caption "
                        f"columns); got shape {mat.shape}")
    # The finiteness check goes a block at a time so a memory-mapped matrix is never loaded whole.
    for a in range(0, mat.shape[0], 1024):
        _check_finite(mat[a:a + 1024], "sims")
    return mat


def _embedding_scores(images: Any, captions: Any, images2: Any, captions2: Any,
                      per_image: int) -> _Scores:
    pairs = [_prepare(images, captions, per_image)]
    if (images2 is None) != (captions2 is None):
        raise VsrnError("an ensemble needs both images2 and captions2 (the second model's embeddings)")
    if images2 is not None:
        pairs.append(_prepare(images2, captions2, per_image, suffix="2"))
        if pairs[1][1].shape[1] != pairs[0][1].shape[1]:
            raise VsrnError(f"the two models embed different caption sets ({pairs[0][1].shape[1]} vs "
                            f"{pairs[1][1].shape[1]} captions); encode the same split with both")
    return _scores_from_embeddings(pairs, per_image)


# ----------------------------------------------------------------------------------------------
# ranking
# ----------------------------------------------------------------------------------------------


@dataclass
class _Ranks:
    i2t: np.ndarray | None  # (N,) int64 0-based ranks
    i2t_top1: np.ndarray | None  # (N,) index of the top caption
    t2i: np.ndarray | None  # (M,)
    t2i_top1: np.ndarray | None  # (M,)


def _block_rows(n_images: int, n_captions: int, block_bytes: int) -> int:
    return max(1, min(n_images, block_bytes // (8 * n_captions)))


def _row_counts(mask: np.ndarray) -> np.ndarray:
    """Per-row count of True in a (rows, M) bool block (a narrow accumulator is ~6x faster than
    `np.count_nonzero(axis=1)`)."""
    acc = np.uint16 if mask.shape[1] < 2**16 else np.uint32 if mask.shape[1] < 2**32 else np.int64
    return np.add.reduce(mask.view(np.uint8), axis=1, dtype=acc).astype(np.int64)


def _column_counts(mask: np.ndarray) -> np.ndarray:
    """Per-column count of True in a (rows, M) bool block; byte/short adds vectorise well."""
    rows = mask.shape[0]
    acc = np.uint8 if rows < 2**8 else np.uint16 if rows < 2**16 else np.int64
    return np.add.reduce(mask.view(np.uint8), axis=0, dtype=acc).astype(np.int64)


def _rank(scores: _Scores, *, do_i2t: bool, do_t2i: bool, top1: bool,
          block_bytes: int = DEFAULT_BLOCK_BYTES) -> _Ranks:
    """Ranks of every query in one pass over the score matrix, block by block of image rows."""
    n, k = scores.n_images, scores.per_image
    m = n * k
    rows_per_block = _block_rows(n, m, block_bytes)
    rows_per_slice = _block_rows(rows_per_block, m, SLICE_BYTES)
    buf = np.empty((rows_per_block, m), dtype=np.float64)
    mask_buf = np.empty((rows_per_slice, m), dtype=bool)
    owner = np.arange(m) // k  # image of each caption
    g = scores.gt  # (M,)

    i2t = np.zeros(n, dtype=np.int64) if do_i2t else None
    i2t_top = np.zeros(n, dtype=np.int64) if do_i2t and top1 else None
    t2i = np.zeros(m, dtype=np.int64) if do_t2i else None
    t2i_top = np.zeros(m, dtype=np.int64) if do_t2i and top1 else None
    t2i_best = np.full(m, -np.inf) if do_t2i and top1 else None

    for start in range(0, n, rows_per_block):
        stop = min(n, start + rows_per_block)
        block = scores.block(start, stop, buf[:stop - start])  # (rows, M)
        # Compare in slices that stay in cache: each slice is read by up to four passes.
        for a in range(start, stop, rows_per_slice):
            b = min(stop, a + rows_per_slice)
            c = b - a
            s = block[a - start:b - start]  # (c, M)
            mask = mask_buf[:c]
            local = np.arange(c)
            own_cols = np.arange(a * k, b * k)  # captions of the images in this slice
            own_rows = owner[own_cols] - a  # their image's row in the slice

            if i2t is not None:
                cols = own_cols.reshape(c, k)  # (c, k) captions of each image
                own = s[local[:, None], cols]  # (c, k) their scores
                pick = k - 1 - np.argmax(own[:, ::-1], axis=1)  # best caption; ties: highest index
                best_col = cols[local, pick]
                best = own[local, pick][:, None]  # (c, 1)
                np.greater(s, best, out=mask)
                rank = _row_counts(mask)
                np.equal(s, best, out=mask)
                mask[local, best_col] = False
                if mask.any():  # exact ties: equal scores at a higher caption index rank first
                    rr, cc = np.nonzero(mask)
                    later = cc > best_col[rr]
                    rank += np.bincount(rr[later], minlength=c)
                i2t[a:b] = rank
                if i2t_top is not None:
                    i2t_top[a:b] = m - 1 - np.argmax(s[:, ::-1], axis=1)  # last index of the maximum

            if t2i is not None:
                np.greater(s, g, out=mask)
                mask[own_rows, own_cols] = False  # a caption's own image is not "above" itself
                t2i += _column_counts(mask)
                np.equal(s, g, out=mask)
                mask[own_rows, own_cols] = False
                if mask.any():
                    rr, cc = np.nonzero(mask)
                    later = (rr + a) > owner[cc]
                    t2i += np.bincount(cc[later], minlength=m)
                if t2i_top is not None:
                    idx = c - 1 - np.argmax(s[::-1], axis=0)  # last row of each column's maximum
                    val = s[idx, np.arange(m)]
                    # later slices hold higher image indices: >= keeps the highest index among ties
                    upd = val >= t2i_best
                    t2i_best[upd] = val[upd]
                    t2i_top[upd] = a + idx[upd]
    return _Ranks(i2t, i2t_top, t2i, t2i_top)


def _metrics(ranks: np.ndarray) -> Recalls:
    """(R@1, R@5, R@10, medr, meanr) from 0-based ranks, with the authors' arithmetic."""
    r = ranks.astype(np.float64)
    n = len(r)
    r1 = 100.0 * int(np.count_nonzero(r < 1)) / n
    r5 = 100.0 * int(np.count_nonzero(r < 5)) / n
    r10 = 100.0 * int(np.count_nonzero(r < 10)) / n
    medr = float(np.floor(np.median(r)) + 1)
    meanr = float(r.mean() + 1)
    return (r1, r5, r10, medr, meanr)


def _direction(scores: _Scores, direction: str, return_ranks: bool, block_bytes: int) -> Any:
    ranks = _rank(scores, do_i2t=direction == "i2t", do_t2i=direction == "t2i", top1=return_ranks,
                  block_bytes=block_bytes)
    r, top = (ranks.i2t, ranks.i2t_top1) if direction == "i2t" else (ranks.t2i, ranks.t2i_top1)
    metrics = _metrics(r)
    return (metrics, (r, top)) if return_ranks else metrics


# ----------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------


def similarity(images: Any, captions: Any, *, captions_per_image: int = CAPTIONS_PER_IMAGE) -> np.ndarray:
    """The full float64 score matrix (inner products), image rows by caption columns.

    Args:
        images: [N, D] one row per image, or [kN, D] each image repeated per caption.
        captions: [kN, D]; captions k*i..k*i+k-1 describe image i.
        captions_per_image: k (5 for COCO and Flickr30K).
    Returns:
        [N, kN] float64 scores. For large sets prefer `recall_report`, which never builds this.
    """
    ims, caps_t = _prepare(images, captions, captions_per_image)
    return ims @ caps_t  # (N, kN)


def i2t(images: Any, captions: Any, *, return_ranks: bool = False, images2: Any = None,
        captions2: Any = None, captions_per_image: int = CAPTIONS_PER_IMAGE,
        block_bytes: int = DEFAULT_BLOCK_BYTES) -> Any:
    """Image -> text retrieval (image annotation) with the authors' protocol.

    Args:
        images: [N, D] one row per image, or the authors' [5N, D] with each image repeated 5 times.
        captions: [5N, D]; captions 5i..5i+4 belong to image i.
        return_ranks: also return the 0-based ranks and the top-1 caption of every image.
        images2, captions2: a second model's embeddings for a two-model ensemble (the similarity
            matrices are averaged).
        captions_per_image: captions per image (5 in COCO and Flickr30K).
        block_bytes: memory bound for the score block held at once.
    Returns:
        (R@1, R@5, R@10, medr, meanr); with `return_ranks`, ``((r1, r5, r10, medr, meanr),
        (ranks [N] int64, top1 [N] int64))`` like the authors' function.
    """
    scores = _embedding_scores(images, captions, images2, captions2, captions_per_image)
    return _direction(scores, "i2t", return_ranks, block_bytes)


def t2i(images: Any, captions: Any, *, return_ranks: bool = False, images2: Any = None,
        captions2: Any = None, captions_per_image: int = CAPTIONS_PER_IMAGE,
        block_bytes: int = DEFAULT_BLOCK_BYTES) -> Any:
    """Text -> image retrieval (image search) with the authors' protocol.

    Args:
        images: [N, D] one row per image, or the authors' [5N, D] with each image repeated 5 times.
        captions: [5N, D]; captions 5i..5i+4 belong to image i.
        return_ranks: also return the 0-based ranks and the top-1 image of every caption.
        images2, captions2: a second model's embeddings for a two-model ensemble.
        captions_per_image: captions per image.
        block_bytes: memory bound for the score block held at once.
    Returns:
        (R@1, R@5, R@10, medr, meanr); with `return_ranks`, ``(metrics, (ranks [5N], top1 [5N]))``.
    """
    scores = _embedding_scores(images, captions, images2, captions2, captions_per_image)
    return _direction(scores, "t2i", return_ranks, block_bytes)


def i2t_from_sims(sims: Any, *, return_ranks: bool = False,
                  captions_per_image: int = CAPTIONS_PER_IMAGE,
                  block_bytes: int = DEFAULT_BLOCK_BYTES) -> Any:
    """`i2t` on a precomputed score matrix [N images, 5N captions] (may be a memmap).

    Args:
        sims: scores, image rows by caption columns (e.g. an average over models).
        return_ranks: also return ranks and top-1 indices.
        captions_per_image: captions per image.
        block_bytes: memory bound for the block held at once.
    Returns:
        As `i2t`.
    """
    scores = _scores_from_matrix(_prepare_sims(sims, captions_per_image), captions_per_image)
    return _direction(scores, "i2t", return_ranks, block_bytes)


def t2i_from_sims(sims: Any, *, return_ranks: bool = False,
                  captions_per_image: int = CAPTIONS_PER_IMAGE,
                  block_bytes: int = DEFAULT_BLOCK_BYTES) -> Any:
    """`t2i` on a precomputed score matrix [N images, 5N captions].

    Args:
        sims: scores, image rows by caption columns.
        return_ranks: also return ranks and top-1 indices.
        captions_per_image: captions per image.
        block_bytes: memory bound for the block held at once.
    Returns:
        As `t2i`.
    """
    scores = _scores_from_matrix(_prepare_sims(sims, captions_per_image), captions_per_image)
    return _direction(scores, "t2i", return_ranks, block_bytes)


def _report_from_scores(scores: _Scores, *, fold5: bool, n_models: int,
                        block_bytes: int) -> dict[str, Any]:
    n = scores.n_images
    if fold5:
        if n % 5:
            raise VsrnError(f"the 5-fold protocol needs a number of images divisible by 5 (got {n}); "
                            "COCO 1K uses the 5000 'testall' images in 5 folds of 1000")
        size = n // 5
        spans = [(f * size, (f + 1) * size) for f in range(5)]
    else:
        spans = [(0, n)]
    folds = []
    for a, b in spans:
        part = scores if (a, b) == (0, n) else scores.sub(a, b)
        ranks = _rank(part, do_i2t=True, do_t2i=True, top1=False, block_bytes=block_bytes)
        r = _metrics(ranks.i2t)
        ri = _metrics(ranks.t2i)
        row: dict[str, Any] = {f"i2t_{name}": v for name, v in zip(METRICS, r, strict=True)}
        row.update({f"t2i_{name}": v for name, v in zip(METRICS, ri, strict=True)})
        row["rsum"] = r[0] + r[1] + r[2] + ri[0] + ri[1] + ri[2]
        folds.append(row)
    report: dict[str, Any] = {}
    for key in folds[0]:
        # The authors average every column over the folds (medr included, so it may be fractional).
        report[key] = float(np.mean([fold[key] for fold in folds]))
    report.update({
        "protocol": "5-fold" if fold5 else "full",
        "n_images": n,
        "n_captions": scores.n_captions,
        "captions_per_image": scores.per_image,
        "images_per_fold": spans[0][1] - spans[0][0],
        "n_models": n_models,
        "ties": TIE_RULE,
    })
    if fold5:
        report["folds"] = folds
    return report


def recall_report(images: Any, captions: Any, *, fold5: bool = False, images2: Any = None,
                  captions2: Any = None, captions_per_image: int = CAPTIONS_PER_IMAGE,
                  block_bytes: int = DEFAULT_BLOCK_BYTES) -> dict[str, Any]:
    """Both directions, rsum and the protocol in one JSON-serialisable dict (one pass per fold).

    Args:
        images: [N, D] or the authors' [5N, D] layout.
        captions: [5N, D].
        fold5: COCO 1K: the mean of each metric over 5 folds of N/5 images (1000 for the 5000 COCO
            test images, exactly the authors' ``fold5``); otherwise all images at once (COCO 5K,
            Flickr30K).
        images2, captions2: a second model's embeddings (two-model ensemble).
        captions_per_image: captions per image.
        block_bytes: memory bound for the score block held at once.
    Returns:
        ``{"i2t_r1", "i2t_r5", "i2t_r10", "i2t_medr", "i2t_meanr", "t2i_r1", ..., "t2i_meanr",
        "rsum", "protocol", "n_images", "n_captions", "captions_per_image", "images_per_fold",
        "n_models", "ties"}`` plus ``"folds"`` (per-fold metrics) with `fold5`. ``rsum`` is the
        mean of the per-fold rsums (the authors' printed 5-fold "rsum" is mean(i2t average
        recall) * 6, an indexing slip; this is the real sum).
    """
    scores = _embedding_scores(images, captions, images2, captions2, captions_per_image)
    n_models = 1 if images2 is None else 2
    return _report_from_scores(scores, fold5=fold5, n_models=n_models, block_bytes=block_bytes)


def recall_report_from_sims(sims: Any, *, fold5: bool = False,
                            captions_per_image: int = CAPTIONS_PER_IMAGE, n_models: int = 1,
                            block_bytes: int = DEFAULT_BLOCK_BYTES) -> dict[str, Any]:
    """`recall_report` on a precomputed score matrix, e.g. the average of several models' scores.

    Args:
        sims: [N images, 5N captions] scores (array or memmap).
        fold5: the COCO 1K 5-fold protocol.
        captions_per_image: captions per image.
        n_models: how many models were averaged into `sims` (recorded in the report).
        block_bytes: memory bound for the block held at once.
    Returns:
        As `recall_report`.
    """
    scores = _scores_from_matrix(_prepare_sims(sims, captions_per_image), captions_per_image)
    return _report_from_scores(scores, fold5=fold5, n_models=n_models, block_bytes=block_bytes)


def format_table(report: dict[str, Any]) -> str:
    """A readable table of a `recall_report` dict.

    Args:
        report: the dict from `recall_report` (or its JSON).
    Returns:
        Lines with R@1/R@5/R@10/medr/meanr per direction, then rsum and the protocol.
    """
    header = f"{'':<14}{'R@1':>8}{'R@5':>8}{'R@10':>8}{'medr':>8}{'meanr':>9}"
    lines = [header]
    for key, label in (("i2t", "image->text"), ("t2i", "text->image")):
        vals = [report[f"{key}_{name}"] for name in METRICS]
        lines.append(f"{label:<14}{vals[0]:>8.2f}{vals[1]:>8.2f}{vals[2]:>8.2f}{vals[3]:>8.1f}"
                     f"{vals[4]:>9.2f}")
    lines.append(f"{'rsum':<14}{report['rsum']:>8.2f}")
    n_img, n_cap = report.get("n_images"), report.get("n_captions")
    if report.get("protocol") == "5-fold":
        what = f"mean of 5 folds of {report.get('images_per_fold')} images ({n_img} images, {n_cap} captions)"
    else:
        what = f"{n_img} images, {n_cap} captions"
    models = report.get("n_models", 1)
    if models and models > 1:
        what += f", ensemble of {models} models (averaged similarities)"
    lines.append(what)
    return "\n".join(lines)

