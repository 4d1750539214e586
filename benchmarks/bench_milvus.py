"""faiss vs Milvus Lite, side by side in one run, through the project's own store code.

Both stores are driven exactly as `vsrn-deploy index` / `search` drive them: faiss through
`vsrn_deploy.search.kinds` (`new_index`, `train_and_fill`, `exact_top_k`, `rescored_top_k`), Milvus
through `vsrn_deploy.search.milvus.MilvusStore.fill` (staging collection, 8 MB inserts, flush, load)
and its `MilvusIndex`, searched by the same `exact_top_k` / `rescored_top_k`. The parameters of each
kind come from `kinds.default_params`, the same values the Milvus store maps onto HNSW / IVF_PQ.

Data: n l2-normalised float32 vectors around 256 Gaussian centres (centre norm ~1, noise norm ~0.5,
fixed seed; real embeddings cluster by content), queries drawn from the same mixture.

Measured per store: build (faiss add / Milvus insert + flush + index + load) seconds, queries/s of
the whole batch in one call, single-query latency (p50 and mean over every query, one call each);
flat: for each query whether faiss's and Milvus's top-10 ids are identical in order, identical as a
set, and the largest score difference; approximate kinds: recall@10 against exact (numpy brute
force), as searched (candidates re-scored exactly) and raw (the store's own top-10).

Milvus is Milvus Lite in a temporary .db file unless --milvus-uri names a server
(http://host:19530): then the same runs against that server, in collections named
bench_<kind>_<random hex> that the run creates and drops itself (a name the server already holds is
refused, nothing else on it is touched), and the results record the server's version.

Usage (10^5 x 2048 takes a few minutes on 2 cores; --kinds flat for the side-by-side only):

    .venv/bin/python benchmarks/bench_milvus.py --n 100000 --dim 2048
    .venv/bin/python benchmarks/bench_milvus.py --n 5000 --no-save      # quick check
    .venv/bin/python benchmarks/bench_milvus.py --n 20000 --milvus-uri http://127.0.0.1:19530
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
from bench_index import mixture as index_mixture  # noqa: E402  (one data generator for both)

from vsrn_deploy.bench.machine import machine_info  # noqa: E402
from vsrn_deploy.search.kinds import (  # noqa: E402
    brute_force_top_k,
    default_params,
    exact_top_k,
    faiss_module,
    new_index,
    recall_at,
    rescored_top_k,
    train_and_fill,
)
from vsrn_deploy.search.milvus import (  # noqa: E402
    INDEX_TYPES,
    MilvusStore,
    _index_params,
    _search_params,
    open_collection,
)

RESULTS = Path(__file__).resolve().parent / "results"
K = 10


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def mixture(rng: np.random.Generator, centres: np.ndarray, n: int, spread: float = 0.5) -> np.ndarray:
    """bench_index's mixture, drawn in blocks of 10^4 (float64 noise of 10^5 x 2048 would be 1.6 GB)."""
    return np.concatenate([index_mixture(rng, centres, min(10_000, n - start), spread)
                           for start in range(0, n, 10_000)])


class FailedIndexBuilds(logging.Handler):
    """Counts Milvus Lite's log records of an index build that failed (it then scans unindexed)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "index build failed" in text:
            exc = record.exc_info[1] if record.exc_info else None
            self.messages.append(f"{text}: {type(exc).__name__}: {exc}" if exc else text)


def timed_search(search: Any, queries: np.ndarray) -> dict[str, Any]:
    """The batch in one call (after a warm-up), then every query alone."""
    search(queries[:2])
    t0 = time.perf_counter()
    found = search(queries)
    batch_s = time.perf_counter() - t0
    single = []
    for q in queries:
        t1 = time.perf_counter()
        search(q[None])
        single.append(time.perf_counter() - t1)
    return {"found": found, "batch_s": round(batch_s, 3), "queries_per_s": round(len(queries) / batch_s, 1),
            "single_p50_ms": round(1000 * float(np.median(single)), 2),
            "single_mean_ms": round(1000 * float(np.mean(single)), 2)}


def strip(res: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in res.items() if k != "found"}


def milvus_fill(db: Path | str, collection: str, kind: str, emb: np.ndarray,
                params: Any) -> tuple[Any, Any, float]:
    """The collection as `index --store milvus` leaves it and `search` opens it: `MilvusStore.fill`
    (staging collection: create, insert, flush, load), `finish` (renamed into place and loaded),
    then `milvus.open_collection` of the store's record. Searching the staging collection straight
    after `fill` is not the same: Milvus Lite 3.2.2 had built no HNSW index on it yet and scanned it
    exactly (raw recall 1.0 with M 4 / efConstruction 8 / ef 10, where faiss gives 0.03 and the
    finished collection 0.27, on 20,000 uniform 64-d vectors)."""
    store = MilvusStore(str(db), collection)
    t0 = time.perf_counter()
    if isinstance(db, Path):  # Milvus Lite: the temporary folder goes with everything in it
        store.fill("images", kind, emb, params)
        store.finish()
        index = open_collection(store.record(kind, False), "images", kind, params, len(emb), {})
        return store, index, time.perf_counter() - t0
    try:  # a server: a build that fails drops what it created (the staging or the renamed collection)
        store.fill("images", kind, emb, params)
        store.finish()
        index = open_collection(store.record(kind, False), "images", kind, params, len(emb), {})
    except BaseException:
        store.abort()
        try:
            if store.client.has_collection(collection):  # refused up front if it existed: ours
                store.client.drop_collection(collection)
        except Exception:
            pass
        store.close()
        raise
    return store, index, time.perf_counter() - t0


def milvus_target(server: str | None, tmp: Path, kind: str) -> tuple[Path | str, str]:
    """Where a kind's collection goes: a fresh .db in `tmp` (Lite), or the server under a name of
    this run's own."""
    if server is None:
        return tmp / f"{kind}.db", f"bench_{kind}"
    return server, f"bench_{kind}_{secrets.token_hex(4)}"


def server_info(uri: str) -> dict[str, Any]:
    """The server's version as its client reports it."""
    from vsrn_deploy.search.milvus import connect

    client = connect(uri)
    try:
        return {"uri": uri, "server_version": str(client.get_server_version())}
    finally:
        client.close()


def staging_check(args: argparse.Namespace) -> None:
    from vsrn_deploy.search.kinds import KindParams
    from vsrn_deploy.search.milvus import MilvusIndex

    before = loadavg()
    rng = np.random.default_rng(args.seed + 1)
    n, dim, k = 20_000, 64, 10
    x = rng.normal(size=(n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = rng.normal(size=(50, dim)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    exact = brute_force_top_k(x, q, k)
    params = KindParams(hnsw_m=4, ef_construction=8, ef_search=1)  # ef at search = max(1, k) = 10
    faiss = faiss_module()
    fidx = faiss.IndexHNSWFlat(dim, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    fidx.hnsw.efConstruction = params.ef_construction
    fidx.add(x)
    fidx.hnsw.efSearch = k
    out = {"command": "python benchmarks/bench_milvus.py " + " ".join(sys.argv[1:]),
           "what": "raw recall@10 of an HNSW with M 4, efConstruction 8, ef 10 on 20,000 uniform 64-d unit "
                   "vectors, 50 queries: a graph search this weak misses most neighbours, an exact scan "
                   "finds all",
           "faiss_IndexHNSWFlat": round(recall_at(list(fidx.search(q, k)[1]), exact, k), 4)}
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        store = MilvusStore(str(Path(tmp) / "check.db"), "check")
        staged = store.fill("images", "hnsw", x, params)
        out["milvus_lite_after_fill_staging"] = round(recall_at(list(staged.search(q, k)[1]), exact, k), 4)
        store.finish()
        final = MilvusIndex(store.client, "check", "hnsw", params, n)
        out["milvus_lite_after_finish"] = round(recall_at(list(final.search(q, k)[1]), exact, k), 4)
        store.client.drop_collection("check")
        store.close()
    out["load_average_before"], out["load_average_after"] = before, loadavg()
    print(json.dumps(out), flush=True)
    if not args.no_save:
        from vsrn_deploy.bench.report import write_json

        write_json(out, args.out + ".json")


def index_progress(described: dict[str, Any]) -> dict[str, Any]:
    return {k: described.get(k) for k in ("total_rows", "indexed_rows", "pending_index_rows", "state")}


def indexed_row(first: dict[str, Any], midx: Any, emb: np.ndarray, queries: np.ndarray, exact: np.ndarray,
                params: Any, build: float, limit_s: float) -> dict[str, Any]:
    """A server builds a collection's index in the background, after `MilvusStore.fill` has loaded it
    (until then the rows are searched without it): wait until describe_index counts every row
    indexed, release and load the collection again, and measure it once more."""
    t0 = time.perf_counter()
    while True:
        progress = index_progress(midx.client.describe_index(midx.collection, "embedding"))
        done = (progress["pending_index_rows"] == 0 and progress["total_rows"]
                and progress["indexed_rows"] == progress["total_rows"])
        if done or time.perf_counter() - t0 > limit_s:
            break
        time.sleep(2)
    waited = time.perf_counter() - t0
    midx.client.release_collection(midx.collection)
    midx.client.load_collection(midx.collection)
    reload_s = time.perf_counter() - t0 - waited
    res = timed_search(lambda q: rescored_top_k(midx, q, K, emb, params.rerank), queries)
    _, raw = midx.search(queries, K)
    return {**{k: first[k] for k in ("kind", "milvus_index_type", "index_params", "search_params", "rerank")},
            "phase": "index built (describe_index: every row indexed), then released and loaded again"
                     if done else f"index not built after {limit_s:.0f} s (measured anyway)",
            "build_s": round(build + waited + reload_s, 2), "index_wait_s": round(waited, 2),
            "reload_s": round(reload_s, 2), **strip(res),
            "recall_at_10_rescored": round(recall_at([ids for ids, _ in res["found"]], exact, K), 4),
            "recall_at_10_raw": round(recall_at(list(raw), exact, K), 4),
            "describe_index_state": progress["state"], "index_build_failures": [],
            "load_average_after": loadavg(), "collection": midx.collection,
            "describe_index": index_progress(midx.client.describe_index(midx.collection, "embedding"))}


def milvus_drop(store: Any, index: Any) -> None:
    index.client.drop_collection(store.collection)
    index.client.close()
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--centres", type=int, default=256)
    parser.add_argument("--kinds", default="flat,hnsw,ivfpq",
                        help="flat: faiss vs Milvus side by side; hnsw, ivfpq: Milvus recall")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS / "milvus_cpu"))
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument("--index-wait", type=float, default=3600.0,
                        help="with --milvus-uri: seconds to wait for the server to finish an index")
    parser.add_argument("--milvus-uri", default=None,
                        help="a Milvus server URL (http://host:19530) to measure instead of Milvus Lite in a "
                             "temporary .db file; the run creates, and drops, collections of its own there")
    parser.add_argument("--staging-check", action="store_true",
                        help="only: is a Milvus Lite HNSW collection searched through its graph right after "
                             "MilvusStore.fill, and after finish? (a deliberately weak graph on 20,000 "
                             "uniform 64-d vectors: an exact scan shows as recall 1.0)")
    args = parser.parse_args()
    server = args.milvus_uri
    if server is not None and not server.startswith(("http://", "https://", "tcp://", "grpc://")):
        parser.error("--milvus-uri takes a server URL (http://host:19530); without it Milvus Lite is used")
    if args.staging_check:
        staging_check(args)
        return
    import milvus_lite
    import pymilvus

    faiss = faiss_module()
    watch = FailedIndexBuilds()
    logging.getLogger().addHandler(watch)
    n, dim = args.n, args.dim
    report: dict[str, Any] = {
        "command": "python benchmarks/bench_milvus.py " + " ".join(sys.argv[1:]),
        "n": n, "dim": dim, "queries": args.queries, "k": K, "centres": args.centres, "seed": args.seed,
        "load_average_before": loadavg(), "logical_cpus": os.cpu_count(),
        "versions": {"faiss": faiss.__version__, "pymilvus": pymilvus.__version__,
                     "milvus_lite": getattr(milvus_lite, "__version__", "?"), "numpy": np.__version__},
        "faiss_threads": faiss.omp_get_max_threads(),
        "machine": machine_info(threads=faiss.omp_get_max_threads()),
        "store": "Milvus Lite (a local .db file, in this process), one machine",
    }
    if server is not None:
        report["milvus_server"] = server_info(server)
        report["store"] = (f"a Milvus server ({report['milvus_server']['server_version']} at {server}), "
                           "on the same machine, reached over gRPC")
    rng = np.random.default_rng(args.seed)
    centres = rng.normal(size=(args.centres, dim)) / np.sqrt(dim)
    t0 = time.perf_counter()
    emb = mixture(rng, centres, n)
    queries = mixture(np.random.default_rng(args.seed + 7), centres, args.queries)
    report["data_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    exact = brute_force_top_k(emb, queries, K)
    report["numpy_exact_s"] = round(time.perf_counter() - t0, 2)
    print(json.dumps({"data": report["data_s"], "exact": report["numpy_exact_s"], "load": loadavg()}),
          flush=True)

    kinds = args.kinds.split(",")
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        if "flat" in kinds:
            run_flat(report, emb, queries, exact, Path(tmp), server)
        # --- approximate kinds in Milvus: recall@10 against exact -------------------------------------
        report["approximate"] = []
        for kind in [k for k in kinds if k in ("hnsw", "ivfpq")]:
            params = default_params(kind, n, dim)
            before = len(watch.messages)
            try:
                store, midx, build = milvus_fill(*milvus_target(server, Path(tmp), kind), kind, emb, params)
            except Exception as exc:  # Milvus Lite 3.2.2 refuses to load an IVF_PQ collection
                row = {"kind": kind, "milvus_index_type": INDEX_TYPES[kind],
                       "index_params": _index_params(kind, params),
                       "error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}",
                       "index_build_failures": watch.messages[before:][:1], "load_average_after": loadavg()}
                report["approximate"].append(row)
                print(json.dumps(row), flush=True)
                continue
            res = timed_search(lambda q, midx=midx, params=params:
                               rescored_top_k(midx, q, K, emb, params.rerank), queries)
            _, raw = midx.search(queries, K)
            described = store.client.describe_index(midx.collection, "embedding")
            row = {"kind": kind, "milvus_index_type": INDEX_TYPES[kind],
                   "index_params": _index_params(kind, params),
                   "search_params": _search_params(kind, params, params.rerank * K)["params"],
                   "rerank": params.rerank, "build_s": round(build, 2), **strip(res),
                   "recall_at_10_rescored": round(recall_at([ids for ids, _ in res["found"]], exact, K), 4),
                   "recall_at_10_raw": round(recall_at(list(raw), exact, K), 4),
                   "describe_index_state": described.get("state"),
                   "index_build_failures": watch.messages[before:][:1],
                   "load_average_after": loadavg()}
            if server is not None:
                row["phase"] = "as MilvusStore.fill + finish + open_collection leave it"
                row["collection"] = midx.collection
                row["describe_index"] = index_progress(described)
            report["approximate"].append(row)
            print(json.dumps(row), flush=True)
            if server is not None:  # the server builds the index after the load: again once it is built
                try:
                    row = indexed_row(row, midx, emb, queries, exact, params, build, args.index_wait)
                finally:
                    milvus_drop(store, midx)
                report["approximate"].append(row)
                print(json.dumps(row), flush=True)
                continue
    report["load_average_after"] = loadavg()
    text = to_markdown(report)
    print(text)
    if not args.no_save:
        from vsrn_deploy.bench.report import write_atomic, write_json

        write_json(report, args.out + ".json")
        write_atomic(args.out + ".md", text)


def run_flat(report: dict[str, Any], emb: np.ndarray, queries: np.ndarray, exact: np.ndarray,
             tmp: Path, server: str | None = None) -> None:
    """faiss IndexFlatIP vs Milvus FLAT, both searched by kinds.exact_top_k; into report["flat"]."""
    n, dim = emb.shape
    params = default_params("flat", n, dim)
    t0 = time.perf_counter()
    fidx = train_and_fill(new_index("flat", dim, n, params), emb)
    faiss_build = time.perf_counter() - t0
    fres = timed_search(lambda q: exact_top_k(fidx, q, K), queries)
    fidx.reset()  # frees its n x dim floats before Milvus holds its own copy
    store, midx, milvus_build = milvus_fill(*milvus_target(server, tmp, "flat"), "flat", emb, params)
    mres = timed_search(lambda q: exact_top_k(midx, q, K), queries)
    milvus_drop(store, midx)
    f_ids = [ids for ids, _ in fres["found"]]
    m_ids = [ids for ids, _ in mres["found"]]
    same_order = sum(bool(np.array_equal(a, b)) for a, b in zip(f_ids, m_ids, strict=True))
    same_set = sum(set(a.tolist()) == set(b.tolist()) for a, b in zip(f_ids, m_ids, strict=True))
    score_diff = max(float(np.max(np.abs(fs - ms))) for (_, fs), (_, ms) in
                     zip(fres["found"], mres["found"], strict=True))
    faiss_vs_numpy = sum(bool(np.array_equal(a, b)) for a, b in zip(f_ids, exact, strict=True))
    report["flat"] = {
        "faiss": {"what": "IndexFlatIP via kinds.new_index / train_and_fill, searched by kinds.exact_top_k",
                  "build_s": round(faiss_build, 2), **strip(fres)},
        "milvus": {"what": "FLAT, metric IP via milvus.MilvusStore.fill + finish, opened by "
                           "milvus.open_collection, searched by kinds.exact_top_k",
                   "build_s": round(milvus_build, 2), **strip(mres)},
        "top10_identical_in_order": same_order, "top10_identical_as_set": same_set,
        "max_abs_score_diff": score_diff, "faiss_equals_numpy_exact_in_order": faiss_vs_numpy,
        "load_average_after": loadavg(),
    }
    print(json.dumps(report["flat"]), flush=True)


def to_markdown(r: dict[str, Any]) -> str:
    f = r.get("flat")
    srv = r.get("milvus_server")
    lines = [
        f"# faiss vs {'Milvus server ' + srv['server_version'] if srv else 'Milvus Lite'} "
        f"({r['n']:,} x {r['dim']}-d clustered unit vectors, {r['queries']} queries, k = {K})",
        "",
        f"Store: {r['store']}. Versions: faiss {r['versions']['faiss']}, "
        f"pymilvus {r['versions']['pymilvus']}, "
        + (f"Milvus server {srv['server_version']} (as its client reports it), " if srv else
           f"milvus-lite {r['versions']['milvus_lite']}, ")
        + f"numpy {r['versions']['numpy']}; "
        f"{r['machine']['cpu']}, {r['logical_cpus']} logical CPUs (shared with other jobs). "
        f"Command: `{r['command']}`.",
        "",
        f"Load average (1, 5, 15 min) before: {r['load_average_before']}, "
        + (f"after the flat part: {f['load_average_after']}, " if f else "")
        + f"at the end: {r['load_average_after']}.",
    ]
    if f:
        lines += flat_markdown(r, f)
    if r.get("approximate"):
        lines += ["", "## Approximate kinds in Milvus: recall@10 against exact (numpy brute force)", "",
                  "| kind | Milvus index | index params | search params | build s | queries/s "
                  "| 1 query p50 ms | recall@10 re-scored | recall@10 raw | index build |",
                  "|---|---|---|---|---:|---:|---:|---:|---:|---|"]
        for a in r["approximate"]:
            if "error" in a:
                lines.append(f"| {a['kind']} | {a['milvus_index_type']} | {a['index_params']} | | | | | | "
                             "| not searchable: " + ("building it" if srv else "loading it")
                             + f" (in `MilvusStore.fill` or `finish`) raised {a['error']} |")
                continue
            built = "failed: " + a["index_build_failures"][0] if a["index_build_failures"] else "ok"
            kind = a["kind"]
            if "phase" in a:
                when = "index built, reloaded" if a["phase"].startswith("index built") else "as left"
                kind += (f" ({when}; indexed {a['describe_index']['indexed_rows']} of "
                         f"{a['describe_index']['total_rows']})")
            lines.append(f"| {kind} | {a['milvus_index_type']} | {a['index_params']} "
                         f"| {a['search_params']} "
                         f"| {a['build_s']:.1f} | {a['queries_per_s']:.1f} | {a['single_p50_ms']:.2f} | "
                         f"{a['recall_at_10_rescored']:.4f} | {a['recall_at_10_raw']:.4f} | {built} |")
        lines += ["", "Re-scored: as `search` does (rerank x k candidates re-scored exactly from the "
                  "embeddings); raw: the store's own top-10."]
        if srv:
            lines += ["", "As left: searched straight after `MilvusStore.fill` + `finish` + "
                      "`open_collection`, as a first `search` would be; the server builds the index in "
                      "the background after that load, and describe_index's indexed count (taken after "
                      "the searches) shows how much of the collection had it. Index built, reloaded: "
                      "once describe_index counted every row indexed, the collection was released and "
                      "loaded again and searched once more; its build s = the as-left build + the wait "
                      "+ the reload."]
    return "\n".join(lines) + "\n"


def flat_markdown(r: dict[str, Any], f: dict[str, Any]) -> list[str]:
    lines = ["", "## Flat (exact): faiss IndexFlatIP vs Milvus FLAT, both searched by `kinds.exact_top_k`",
             "",
             "| store | build s | queries/s (batch of all) | 1 query p50 ms | 1 query mean ms |",
             "|---|---:|---:|---:|---:|"]
    for name in ("faiss", "milvus"):
        s = f[name]
        lines.append(f"| {name} | {s['build_s']:.2f} | {s['queries_per_s']:.1f} | {s['single_p50_ms']:.2f} | "
                     f"{s['single_mean_ms']:.2f} |")
    return lines + [
        "",
        f"Top-10 ids identical in order: {f['top10_identical_in_order']} of {r['queries']} queries; "
        f"identical as sets: {f['top10_identical_as_set']} of {r['queries']}; largest score difference "
        f"{f['max_abs_score_diff']:.2e}. faiss vs numpy brute force, identical in order: "
        f"{f['faiss_equals_numpy_exact_in_order']} of {r['queries']}.",
        "",
        "Build: faiss = add to IndexFlatIP; Milvus = `MilvusStore.fill` (create the collection, insert "
        "in 8 MB batches, flush, load), `finish` (rename into place, load"
        + ("" if r.get("milvus_server") else ": Lite builds the index here")
        + ") and `open_collection`, as `index --store milvus` then `search` do.",
    ]


if __name__ == "__main__":
    main()
