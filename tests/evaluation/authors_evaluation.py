"""The authors' ranking loops (VSE++ / VSRN ``evaluation.py``: one argsort per query) over their
[5N, D] layout, as the naive reference `vsrn_deploy.evaluation.recall` is checked and timed against.

Shared by tests/evaluation/test_evaluation.py and benchmarks/bench_evaluation.py. ``kind="stable"`` is the
deterministic form of their default argsort (see `vsrn_deploy.evaluation.recall`); ``kind=None`` is their
call exactly (numpy's default, unstable sort).
"""

from __future__ import annotations

import numpy as np


def _metrics(ranks):
    r1 = 100.0 * len(np.where(ranks < 1)[0]) / len(ranks)
    r5 = 100.0 * len(np.where(ranks < 5)[0]) / len(ranks)
    r10 = 100.0 * len(np.where(ranks < 10)[0]) / len(ranks)
    medr = np.floor(np.median(ranks)) + 1
    meanr = ranks.mean() + 1
    return (r1, r5, r10, medr, meanr)


def naive_i2t(images, captions, images2=None, captions2=None, kind="stable"):
    npts = images.shape[0] // 5
    ranks = np.zeros(npts)
    top1 = np.zeros(npts)
    for index in range(npts):
        im = images[5 * index].reshape(1, images.shape[1])
        d = np.dot(im, captions.T).flatten()
        if images2 is not None:
            d2 = np.dot(images2[5 * index].reshape(1, images2.shape[1]), captions2.T).flatten()
            d = (d + d2) / 2
        inds = np.argsort(d, kind=kind)[::-1]
        rank = 1e20
        for i in range(5 * index, 5 * index + 5, 1):
            tmp = np.where(inds == i)[0][0]
            if tmp < rank:
                rank = tmp
        ranks[index] = rank
        top1[index] = inds[0]
    return _metrics(ranks), (ranks, top1)


def naive_t2i(images, captions, images2=None, captions2=None, kind="stable"):
    npts = images.shape[0] // 5
    ims = np.array([images[i] for i in range(0, len(images), 5)])
    ims2 = None if images2 is None else np.array([images2[i] for i in range(0, len(images2), 5)])
    ranks = np.zeros(5 * npts)
    top1 = np.zeros(5 * npts)
    for index in range(npts):
        d = np.dot(captions[5 * index:5 * index + 5], ims.T)
        if ims2 is not None:
            d = (d + np.dot(captions2[5 * index:5 * index + 5], ims2.T)) / 2
        for i in range(len(d)):
            inds = np.argsort(d[i], kind=kind)[::-1]
            ranks[5 * index + i] = np.where(inds == index)[0][0]
            top1[5 * index + i] = inds[0]
    return _metrics(ranks), (ranks, top1)
