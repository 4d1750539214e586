"""The Milvus store of an index (`vsrn-deploy index --store milvus`): the vectors in a Milvus collection
(a server URL, or Milvus Lite in a local ``.db`` file), searched with the same results contract as
faiss (min(k, n) hits, score descending, ties by lower id).

Kinds map to Milvus index types, metric IP (inner product of the l2-normalised embeddings):
``flat`` -> FLAT (exact), ``hnsw`` -> HNSW (M, efConstruction; ef at search), ``ivfpq`` -> IVF_PQ
(nlist, m, nbits 8; nprobe at search), with the same parameters faiss would get (`kinds.default_params`).

`MilvusIndex` answers faiss's ``search(queries, k) -> (scores, ids)`` and ``ntotal``, so the search code
(`kinds.exact_top_k`: fetch k + 1, widen while the k-th score's tie group is cut, order by score
descending then id ascending; `kinds.rescored_top_k`: approximate kinds re-scored exactly from the
stored embeddings) runs unchanged on it. The index folder keeps ``image_embeddings.npy`` (and the
captions' files) for that, and index.json records the store: {"name": "milvus", "uri",
"collection", "caption_collection", "index_type"}.

Writing: each collection is built under a staging name, then the folder is committed, then the old
collection (only one the index at --out recorded) is dropped and the staging one renamed. A collection
of that name that the index at --out did not create is never touched: the build is refused.
pymilvus is imported on use (`pip install 'vsrn-deploy[milvus]'`).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any

import numpy as np

from vsrn_deploy.core.errors import VsrnError, import_optional
from vsrn_deploy.search.kinds import IVFPQ_MIN_VECTORS, KindParams

STORES = ("faiss", "milvus")
#: Milvus's largest top-k per search.
MAX_TOPK = 16384
INDEX_TYPES = {"flat": "FLAT", "hnsw": "HNSW", "ivfpq": "IVF_PQ"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,199}$")
_INSERT_BYTES = 8 << 20
#: how long `MilvusStore.fill` waits for a server to index the rows it flushed (a 10^8 build takes hours)
INDEX_WAIT_S = 12 * 3600.0
_POLL_S = 1.0  # seconds between two looks at the index's progress
_log = logging.getLogger(__name__)


def pymilvus() -> Any:
    return import_optional("pymilvus", "milvus", "a Milvus index (--store milvus)")


def normalise_uri(uri: str) -> str:
    """A server URL as given; a local Milvus Lite file made absolute (it must end in .db)."""
    if re.match(r"^[a-z][a-z0-9+.-]*://", uri):
        return uri
    if not uri.endswith(".db"):
        raise VsrnError(f"--milvus-uri {uri!r} is neither a server URL (http://host:19530) nor a Milvus Lite "
                        "file ending in .db (e.g. milvus.db)")
    return os.path.abspath(uri)


def default_collection(out: str | os.PathLike) -> str:
    """vsrn_<the index folder's name>, with characters Milvus does not allow as underscores."""
    return "vsrn_" + re.sub(r"[^A-Za-z0-9_]", "_", Path(os.path.abspath(out)).name)[:150]


def check_collection_name(name: str) -> str:
    if not _NAME.match(name):
        raise VsrnError(f"--collection {name!r} is not a Milvus collection name: letters, digits and "
                        "underscores, starting with a letter or underscore, at most 200 characters")
    return name


def connect(uri: str) -> Any:
    """A MilvusClient of `uri`; unreachable (or a Lite file that cannot be opened) is one line."""
    pm = pymilvus()
    try:
        return pm.MilvusClient(uri=uri, timeout=10)
    except Exception as exc:  # pymilvus raises MilvusException, gRPC and OS errors alike
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise VsrnError(f"cannot reach Milvus at {uri} ({first}); start the server, or give a Milvus Lite "
                        "file (--milvus-uri milvus.db)") from None


def _search_params(kind: str, params: KindParams, fetch: int) -> dict[str, Any]:
    if kind == "hnsw":
        return {"metric_type": "IP", "params": {"ef": max(params.ef_search, fetch)}}
    if kind == "ivfpq":
        return {"metric_type": "IP", "params": {"nprobe": params.nprobe}}
    return {"metric_type": "IP", "params": {}}


def _index_params(kind: str, params: KindParams) -> dict[str, Any]:
    if kind == "hnsw":
        return {"M": params.hnsw_m, "efConstruction": params.ef_construction}
    if kind == "ivfpq":
        return {"nlist": params.nlist, "m": params.m, "nbits": 8}
    return {}


class MilvusIndex:
    """One collection, searched like a faiss index (`search`, `ntotal`)."""

    def __init__(self, client: Any, collection: str, kind: str, params: KindParams, ntotal: int) -> None:
        self.client, self.collection, self.kind, self.params = client, collection, kind, params
        self.ntotal = ntotal

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores [q, k], ids [q, k]) best first; missing results are -inf / -1, as faiss pads."""
        k = min(int(k), self.ntotal)
        if k > MAX_TOPK:
            raise VsrnError(f"Milvus returns at most {MAX_TOPK} results per query; ask for fewer (--k)")
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        try:
            found = self.client.search(self.collection, data=[q.tolist() for q in queries], limit=k,
                                       anns_field="embedding", output_fields=["id"],
                                       search_params=_search_params(self.kind, self.params, k))
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise VsrnError(f"Milvus search in collection {self.collection} failed ({first}); check the "
                            "server, or rebuild the index") from None
        for row, hits in enumerate(found):
            for col, hit in enumerate(list(hits)[:k]):
                ids[row, col] = int(hit["id"])
                scores[row, col] = float(hit["distance"])
        return scores, ids


class MilvusStore:
    """Collections of one index in one Milvus: built under staging names, then put in place.

    Args:
        uri: a server URL or a Milvus Lite .db path (`normalise_uri`).
        collection: the image collection; captions go to `<collection>_captions`.
        owned: collection names the index at --out recorded (they may be replaced).
    """

    def __init__(self, uri: str, collection: str, owned: set[str] | None = None) -> None:
        self.uri = normalise_uri(uri)
        self.collection = check_collection_name(collection)
        self.client = connect(self.uri)
        self.owned = owned or set()
        self.staged: dict[str, str] = {}  # final name -> staging name
        self._check_free(self.collection)

    def target_name(self, target: str) -> str:
        return self.collection if target == "images" else f"{self.collection}_captions"

    def _check_free(self, name: str) -> None:
        if name in self.owned:
            return
        try:
            exists = self.client.has_collection(name)
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise VsrnError(f"cannot reach Milvus at {self.uri} ({first}); start the server") from None
        if exists:
            raise VsrnError(f"Milvus at {self.uri} already holds a collection {name} that the index at --out "
                            "did not create; choose another --collection (or drop it yourself)")

    def fill(self, target: str, kind: str, embeddings: np.ndarray, params: KindParams) -> MilvusIndex:
        """A staging collection of `embeddings` [n, D] (ids 0..n-1) with the kind's index, loaded."""
        pm = pymilvus()
        final = self.target_name(target)
        check_collection_name(final)
        self._check_free(final)
        n, dim = embeddings.shape
        if kind == "ivfpq" and n < IVFPQ_MIN_VECTORS:
            raise VsrnError(f"ivfpq needs at least {IVFPQ_MIN_VECTORS} vectors to train (got {n}); "
                            "use --kind flat (exact) or hnsw for a collection this small")
        staging = f"{final}__staging_{secrets.token_hex(4)}"
        self.staged[final] = staging
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", pm.DataType.INT64, is_primary=True)
        schema.add_field("embedding", pm.DataType.FLOAT_VECTOR, dim=int(dim))
        index = self.client.prepare_index_params()
        index.add_index(field_name="embedding", index_type=INDEX_TYPES[kind], metric_type="IP",
                        params=_index_params(kind, params))
        try:
            self.client.create_collection(staging, schema=schema, index_params=index)
            rows = max(1, _INSERT_BYTES // (4 * dim))
            for start in range(0, n, rows):
                block = np.asarray(embeddings[start:start + rows], dtype=np.float32)
                self.client.insert(staging, [{"id": start + i, "embedding": vec.tolist()}
                                             for i, vec in enumerate(block)])
            self.client.flush(staging)
            self._wait_for_index(staging, final)
            # Created with its index, the collection was loaded empty: what it holds is served from the
            # inserted rows, by brute force, until it is loaded again (Milvus Lite 3.2.2: an HNSW of
            # M 4 answered with recall 1.0 before, 0.27 after). Reload, so that the build's recall
            # and its first searches are those of the index, as a later process gets them.
            self.client.release_collection(staging)
            self.client.load_collection(staging)
        except VsrnError:
            raise
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise VsrnError(f"Milvus at {self.uri} refused the collection {final} ({first})") from None
        return MilvusIndex(self.client, staging, kind, params, n)

    def _wait_for_index(self, staging: str, final: str, timeout: float | None = None) -> None:
        """Until the Milvus has indexed every flushed row. A server builds indexes in the background
        after a flush, and until then it searches the rows by brute force: measured on a Milvus 2.3.5
        standalone, 2x10^4 2048-d vectors right after the flush: 0 indexed, 20,000 pending, state
        already "Finished", IVF_PQ answering with a scan's recall; its build took 218 s more. So the
        wait lasts while `pending_index_rows` is above 0 and fewer rows than the collection holds are
        indexed (Milvus Lite builds as it inserts and reports 0 pending at once).
        A Milvus that reports no progress is not waited for."""
        timeout = INDEX_WAIT_S if timeout is None else timeout
        deadline = time.monotonic() + timeout
        said = 0.0
        while True:
            info = self.client.describe_index(staging, "embedding") or {}
            if str(info.get("state", "")).lower() == "failed":
                reason = info.get("index_state_fail_reason") or info.get("fail_reason") or "no reason given"
                raise VsrnError(f"Milvus at {self.uri} failed to build the index of {final}: {reason}")
            pending = info.get("pending_index_rows")
            indexed, total = info.get("indexed_rows"), info.get("total_rows")
            if not isinstance(pending, int) or pending <= 0:
                return
            if isinstance(indexed, int) and isinstance(total, int) and 0 < total <= indexed:
                return  # every row indexed; what is pending is a compaction's re-index (the server
                # keeps serving the indexed segments until the merged one has its index: 2.3.5 said
                # 100,000 indexed and 100,000 pending for a further 20 minutes at 10^5 rows)
            now = time.monotonic()
            if now > deadline:
                raise VsrnError(f"Milvus at {self.uri} still had {pending} of {info.get('total_rows')} rows "
                                f"of {final} to index after {timeout:.0f} s; the server may be overloaded: "
                                "build again later, or on a larger Milvus")
            if now - said >= 30:
                _log.info(f"Milvus at {self.uri} is indexing {final}: {info.get('indexed_rows')} of "
                          f"{info.get('total_rows')} rows indexed, {pending} pending")
                said = now
            time.sleep(_POLL_S)

    def finish(self) -> None:
        """Put each staging collection in place (dropping the old one of that name: ours), loaded; then
        drop the collections the replaced index recorded that this build did not write again (an
        index rebuilt without --captions, or under another --collection): nothing refers to them any
        more, and a later build would find them in its way as if they were someone else's."""
        for final, staging in self.staged.items():
            if self.client.has_collection(final):
                self.client.drop_collection(final)
            self.client.rename_collection(staging, final)
            self.client.load_collection(final)
        for name in sorted(self.owned - set(self.staged)):
            if self.client.has_collection(name):
                self.client.drop_collection(name)
        self.staged.clear()

    def abort(self) -> None:
        """Drop the staging collections of a build that failed."""
        for staging in self.staged.values():
            try:
                self.client.drop_collection(staging)
            except Exception:  # best effort: the build's own error is what the user sees
                pass
        self.staged.clear()

    def record(self, kind: str, captions: bool) -> dict[str, Any]:
        """What index.json records under "store"."""
        return {"name": "milvus", "uri": self.uri, "collection": self.collection,
                "caption_collection": self.target_name("captions") if captions else None,
                "index_type": INDEX_TYPES[kind], "metric": "IP"}

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:
            pass


def open_store(store: str, uri: str | None, collection: str | None,
               out: str | os.PathLike, kind: str | None = None) -> MilvusStore | None:
    """The store an index build writes to: None for faiss (files in the folder), else a connected
    `MilvusStore` (Milvus is reached, and the kind checked against it, before anything is encoded)."""
    if store not in STORES:
        raise VsrnError(f"--store must be one of {', '.join(STORES)}, got {store!r}")
    if store == "faiss":
        if uri is not None or collection is not None:
            raise VsrnError("--milvus-uri and --collection go with --store milvus")
        return None
    if not uri:
        raise VsrnError("--store milvus needs --milvus-uri: a server URL (http://host:19530) or a Milvus "
                        "Lite file (milvus.db)")
    if kind == "ivfpq" and not re.match(r"^[a-z][a-z0-9+.-]*://", uri):
        # measured with milvus-lite 3.2.2: the index builds, then loading the collection fails with
        # "index_type='IVF_PQ' is reserved for a future phase" (after the index folder was written)
        raise VsrnError("Milvus Lite (a .db file) cannot load IVF_PQ collections; use --kind flat or hnsw "
                        "with Milvus Lite, or --kind ivfpq with a Milvus server (--milvus-uri http://host:19530)")
    return MilvusStore(uri, collection or default_collection(out), owned_collections(out, uri))


def owned_collections(out: str | os.PathLike, uri: str) -> set[str]:
    """The collections the index at `out` (if any) recorded in the same Milvus."""
    from vsrn_deploy.artifacts.base import load_manifest
    from vsrn_deploy.artifacts.index import is_index_folder

    if not is_index_folder(out):
        return set()
    try:
        store = load_manifest(Path(out) / "index.json", what="", fix="").get("store") or {}
    except VsrnError:
        return set()
    if store.get("name") != "milvus" or store.get("uri") != normalise_uri(uri):
        return set()
    return {name for name in (store.get("collection"), store.get("caption_collection")) if name}


def open_collection(store: dict[str, Any], target: str, kind: str, params: KindParams,
                    count: int, clients: dict[str, Any]) -> MilvusIndex:
    """The collection of `target` ("images" or "captions") of an index's store record, checked to hold
    `count` vectors (a collection changed since the build is refused)."""
    uri = store["uri"]
    if uri not in clients:
        clients[uri] = connect(uri)
    client = clients[uri]
    name = store["collection"] if target == "images" else store.get("caption_collection")
    try:
        if not name or not client.has_collection(name):
            raise VsrnError(f"Milvus at {uri} has no collection {name} (the index's {target}); rebuild the "
                            "index")
        client.load_collection(name)
        rows = int(client.get_collection_stats(name).get("row_count", -1))
    except VsrnError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise VsrnError(f"cannot use the collection {name} in Milvus at {uri} ({first})") from None
    if rows != count:
        raise VsrnError(f"the collection {name} in Milvus at {uri} holds {rows} vectors, the index {count}: "
                        "it changed since the index was built; rebuild the index")
    return MilvusIndex(client, name, kind, params, count)
