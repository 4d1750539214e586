"""The faiss indexes behind `vsrn_deploy.search`, and exact top-k with a fixed tie order.

faiss is imported on use (`vsrn-deploy[search]`). Kinds:

- ``flat``: `IndexFlatIP`, exact inner products (the default). faiss does not fix the order of
  equal scores, so `exact_top_k` widens the search until the k-th score's tie group is complete and
  then orders by (score descending, id ascending): exactly brute force.
- ``ivfpq``: `IndexIVFPQ` (inverted lists + product quantisation, 8 bits per code): for large
  collections; candidates are re-scored exactly from the stored embeddings.
- ``hnsw``: `IndexHNSWFlat` (a proximity graph over the full vectors), re-scored likewise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from vsrn_deploy.core.errors import VsrnError, import_optional

KINDS = ("flat", "ivfpq", "hnsw")
#: ivfpq needs this many vectors to train its 256-centroid codebooks and coarse quantiser.
IVFPQ_MIN_VECTORS = 1000


def faiss_module() -> Any:
    return import_optional("faiss", "search", "the image index")


@dataclass(frozen=True)
class KindParams:
    """Parameters of an approximate kind (recorded in the index manifest).

    nlist, m, nprobe: ivfpq's inverted lists, PQ sub-quantisers (bytes per code) and lists probed.
    hnsw_m, ef_construction, ef_search: hnsw's links per node and beam widths.
    rerank: approximate kinds fetch rerank * k candidates and re-score them exactly.
    """

    nlist: int = 0
    m: int = 0
    nprobe: int = 0
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 128
    rerank: int = 4

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def default_params(kind: str, n: int, dim: int) -> KindParams:
    """Parameters sized to the collection: nlist ~ 4 sqrt(n), PQ codes of dim/4 bytes (4-dim
    sub-vectors keep recall high; memory per vector is still 16x below float32), nprobe = nlist / 8,
    and 16 k candidates re-scored (PQ distances blur the order inside a dense cluster: with 4 k,
    recall@10 fell to 0.76 at 10^6 vectors in benchmarks/bench_index.py)."""
    if kind != "ivfpq":
        return KindParams()
    nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))
    m = max(d for d in range(1, min(dim, max(1, dim // 4)) + 1) if dim % d == 0)
    return KindParams(nlist=nlist, m=m, nprobe=max(1, min(nlist, max(8, nlist // 8))), rerank=16)


def new_index(kind: str, dim: int, n: int, params: KindParams) -> Any:
    """An empty faiss index of `kind` for n vectors of `dim` (inner product)."""
    faiss = faiss_module()
    if kind == "flat":
        return faiss.IndexFlatIP(dim)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = params.ef_construction
        index.hnsw.efSearch = params.ef_search
        return index
    if kind == "ivfpq":
        if n < IVFPQ_MIN_VECTORS:
            raise VsrnError(f"ivfpq needs at least {IVFPQ_MIN_VECTORS} vectors to train (got {n}); "
                            "use --kind flat (exact) or hnsw for a collection this small")
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFPQ(quantizer, dim, params.nlist, params.m, 8, faiss.METRIC_INNER_PRODUCT)
        index.nprobe = params.nprobe
        # faiss prints a warning per codebook when fewer than 39 points per centroid train it (every
        # collection under ~10^4 vectors: dozens of lines); the build reports measured recall instead
        index.cp.min_points_per_centroid = 1
        index.pq.cp.min_points_per_centroid = 1
        return index
    raise VsrnError(f"index kind must be one of {', '.join(KINDS)}, got {kind!r}")


def train_and_fill(index: Any, embeddings: np.ndarray, *, chunk: int = 65536, seed: int = 0,
                   train_rows: int = 100_000, progress: Callable[[int], None] | None = None) -> Any:
    """Train `index` (when it needs it) on a sample of `embeddings` [n, D] and add them all in chunks.

    `embeddings` may be a memory map: only a chunk (and the training sample) is in memory at once.
    """
    n = embeddings.shape[0]
    if not index.is_trained:
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(n, size=min(n, train_rows), replace=False))
        index.train(np.ascontiguousarray(embeddings[sample], dtype=np.float32))
    for start in range(0, n, chunk):
        index.add(np.ascontiguousarray(embeddings[start:start + chunk], dtype=np.float32))
        if progress is not None:
            progress(min(n, start + chunk))
    return index


def order_hits(ids: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best of one query's candidates: score descending, then id ascending; -1 ids dropped."""
    keep = ids >= 0
    ids, scores = ids[keep], scores[keep]
    ids, first = np.unique(ids, return_index=True)  # a candidate fetched twice counts once
    scores = scores[first]
    order = np.lexsort((ids, -scores))[:k]
    return ids[order], scores[order]


def exact_top_k(index: Any, queries: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Brute-force top-k of an exact (flat) index with ties by lower id, per query.

    Searches k + 1 results; a query whose last result still ties with its k-th score is searched
    again with twice as many, until the tie group ends inside the results (or all n are fetched).
    """
    n = index.ntotal
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    results: list[tuple[np.ndarray, np.ndarray]] = [None] * len(queries)  # type: ignore[list-item]
    pending = np.arange(len(queries))
    fetch = k + 1
    while pending.size:
        fetch = min(fetch, n)
        scores, ids = index.search(queries[pending], fetch)
        again = []
        for row, q in enumerate(pending):
            if fetch < n and scores[row, -1] == scores[row, k - 1]:
                again.append(q)
            else:
                results[q] = order_hits(ids[row], scores[row], k)
        pending = np.asarray(again, dtype=np.int64)
        fetch *= 2
    return results


def rescored_top_k(index: Any, queries: np.ndarray, k: int, embeddings: np.ndarray,
                   rerank: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Approximate kinds: fetch rerank * k candidates, score them exactly from `embeddings`, keep k.

    Always min(k, n) hits: a graph or inverted-list search may return fewer candidates than asked
    (hnsw returns at most efSearch-reachable nodes, ivfpq only the probed lists' members), so a query
    left short is scored exactly against the whole collection instead (chunked; a memory map stays
    on disk). Large k is where that happens, and there an exact pass costs about what the search did.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    n = index.ntotal
    want = min(k, n)
    fetch = min(n, max(k, rerank * k))
    _, ids = index.search(queries, fetch)
    out: list[tuple[np.ndarray, np.ndarray]] = []
    short = []
    for row, q in enumerate(queries):
        cand = np.unique(ids[row][ids[row] >= 0])
        if len(cand) < want:
            short.append(row)
            out.append(None)  # type: ignore[arg-type]
            continue
        scores = np.asarray(embeddings[cand], dtype=np.float32) @ q
        out.append(order_hits(cand, scores, k))
    if short:
        exact_ids = brute_force_top_k(embeddings, queries[short], want)
        for row, found in zip(short, exact_ids, strict=True):
            scores = np.asarray(embeddings[np.sort(found)], dtype=np.float32) @ queries[row]
            out[row] = order_hits(np.sort(found), scores, k)
    return out


def brute_force_top_k(embeddings: np.ndarray, queries: np.ndarray, k: int,
                      chunk: int = 65536) -> np.ndarray:
    """Exact top-k ids [q, k] by numpy, over `embeddings` in chunks (a memory map stays on disk).

    Used for the recall of the approximate kinds at build time; ties by lower id.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    best_ids = np.zeros((len(queries), 0), dtype=np.int64)
    best_scores = np.zeros((len(queries), 0), dtype=np.float32)
    for start in range(0, embeddings.shape[0], chunk):
        block = np.asarray(embeddings[start:start + chunk], dtype=np.float32)
        scores = queries @ block.T  # (q, b)
        ids = np.broadcast_to(np.arange(start, start + block.shape[0]), scores.shape)
        all_scores = np.concatenate([best_scores, scores], axis=1)
        all_ids = np.concatenate([best_ids, ids], axis=1)
        order = np.lexsort((all_ids, -all_scores), axis=1)[:, :k]
        best_scores = np.take_along_axis(all_scores, order, axis=1)
        best_ids = np.take_along_axis(all_ids, order, axis=1)
    return best_ids


def recall_at(approx: list[np.ndarray], exact: np.ndarray, k: int = 10) -> float:
    """Mean share of the exact top-k found in the approximate top-k."""
    found = [len(set(a[:k].tolist()) & set(e[:k].tolist())) / min(k, len(e)) for a, e in
             zip(approx, exact, strict=True)]
    return float(np.mean(found)) if found else float("nan")
