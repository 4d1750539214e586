"""Index scale: build and query time, memory, recall@10 and queries/s of flat, ivfpq and hnsw.

Runs the index kinds exactly as `vsrn-deploy index` / `search` do (`vsrn_deploy.search.kinds`:
the same parameters, the same exact re-scoring of approximate candidates from the stored
embeddings), on synthetic l2-normalised embeddings: a mixture of 1,000 Gaussian clusters (real
embeddings cluster by content; uniform random vectors would be the worst case for any approximate
index), queries drawn from the same mixture. Exact search (flat) is the ground truth for recall@10;
at the two smaller sizes numpy brute force runs beside it and must give the same ids.

Dimension: 256 by default, not the paper's 2048. 10^6 x 2048 float32 is 8 GB of embeddings plus
8 GB for the flat index: on this shared 24 GB, 2-core machine that leaves nothing for the other
jobs, and building hnsw over it would take hours. Flat memory and flat query time scale linearly
with the dimension, so 2048-d costs about 8x the 256-d figures; ivfpq's codes are sized in bytes
per vector (here dim / 4) and its memory scales the same way.

Usage (10^4 and 10^5 take a minute or two; 10^6 about 10-20 minutes on 2 loaded cores):

    .venv/bin/python benchmarks/bench_index.py --sizes 10000,100000,1000000
    .venv/bin/python benchmarks/bench_index.py --sizes 10000 --no-save      # quick check
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

# OpenMP threads sleep when idle instead of spinning: on a shared, loaded machine spinning threads
# fight the other jobs for the cores (a 10^4 ivfpq build took 10x longer with spinning).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

from vsrn_deploy.bench.machine import load_average, machine_info  # noqa: E402
from vsrn_deploy.search.kinds import (  # noqa: E402
    default_params,
    exact_top_k,
    faiss_module,
    new_index,
    recall_at,
    rescored_top_k,
    train_and_fill,
)

RESULTS = Path(__file__).resolve().parent / "results"
K = 10


def rss_anon() -> int:
    """Anonymous resident memory of this process in bytes (heap: what an index allocates)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


def mixture(rng: np.random.Generator, centres: np.ndarray, n: int, spread: float = 0.5) -> np.ndarray:
    """Unit vectors around random centres: centre norm ~1, noise norm ~spread."""
    dim = centres.shape[1]
    x = centres[rng.integers(0, len(centres), n)] + spread / np.sqrt(dim) * rng.normal(size=(n, dim))
    x = x.astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def write_embeddings(path: Path, n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n embeddings into a .npy memory map (in chunks), and the cluster centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(1000, dim)) / np.sqrt(dim)
    emb = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    for start in range(0, n, 100_000):
        emb[start:start + 100_000] = mixture(rng, centres, min(100_000, n - start))
    emb.flush()
    return np.load(path, mmap_mode="r"), centres


def numpy_top_k(emb: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    scores = queries @ np.asarray(emb).T
    part = np.argpartition(-scores, k, axis=1)[:, :k]
    sub = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -sub), axis=1)
    return np.take_along_axis(part, order, axis=1)


def run_size(n: int, dim: int, queries_n: int, kinds: list[str], workdir: Path, seed: int,
             hnsw_max: int) -> list[dict]:
    emb, centres = write_embeddings(workdir / f"emb_{n}.npy", n, dim, seed)
    queries = mixture(np.random.default_rng(seed + 7), centres, queries_n)
    rows = []
    exact_ids = None
    for kind in kinds:
        if kind == "hnsw" and n > hnsw_max:
            rows.append({"n": n, "kind": kind, "skipped": f"n > --hnsw-max {hnsw_max}"})
            continue
        params = default_params(kind, n, dim)
        before = rss_anon()
        t0 = time.perf_counter()
        index = train_and_fill(new_index(kind, dim, n, params), emb)
        build_s = time.perf_counter() - t0
        grown = rss_anon() - before
        size = len(faiss_module().serialize_index(index)) if n <= 200_000 or kind != "flat" else n * dim * 4
        search = (lambda q, index=index: exact_top_k(index, q, K)) if kind == "flat" else \
            (lambda q, index=index, params=params: rescored_top_k(index, q, K, emb, params.rerank))
        search(queries[:10])  # warm-up
        t0 = time.perf_counter()
        found = search(queries)
        query_s = time.perf_counter() - t0
        single = []
        for q in queries[:50]:  # one query per call, as a server answers them
            t1 = time.perf_counter()
            search(q[None])
            single.append(time.perf_counter() - t1)
        ids = [f[0] for f in found]
        row = {"n": n, "dim": dim, "kind": kind, "params": params.to_dict() if kind != "flat" else {},
               "build_s": round(build_s, 2), "index_bytes": int(size), "rss_anon_growth_bytes": int(grown),
               "queries": queries_n, "query_s": round(query_s, 3),
               "queries_per_s": round(queries_n / query_s, 1),
               "ms_per_query": round(1000 * query_s / queries_n, 3),
               "single_query_p50_ms": round(1000 * float(np.median(single)), 3),
               "load_average": load_average()}
        if kind == "flat":
            exact_ids = np.stack(ids)
            row["recall_at_10"] = 1.0
            if n <= 100_000:  # numpy brute force beside faiss: same ids, and its time
                t0 = time.perf_counter()
                ref = numpy_top_k(emb, queries, K)
                row["numpy_query_s"] = round(time.perf_counter() - t0, 3)
                row["numpy_same_ids"] = bool((ref == exact_ids).all())
        else:
            row["recall_at_10"] = round(recall_at(ids, exact_ids, K), 4)
        rows.append(row)
        print(json.dumps(row), flush=True)
        del index
    return rows


def to_markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        f"# Index scale ({report['dim']}-d synthetic embeddings, {report['queries']} queries, k = {K})",
        "",
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, faiss {report['faiss']} "
        f"(threads: {report['threads']}); load average at start {report['load_start']}. "
        "Command: `" + report["command"] + "`.",
        "",
        "| images | kind | build s | index MiB | heap growth MiB | queries/s (batch) | 1 query p50 ms "
        "| recall@10 |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        if "skipped" in r:
            lines.append(f"| {r['n']:,} | {r['kind']} | skipped: {r['skipped']} | | | | | |")
            continue
        lines.append(f"| {r['n']:,} | {r['kind']} | {r['build_s']:.1f} | {r['index_bytes'] / 2**20:.1f} | "
                     f"{r['rss_anon_growth_bytes'] / 2**20:.1f} | {r['queries_per_s']:.0f} | "
                     f"{r['single_query_p50_ms']:.2f} | {r['recall_at_10']:.4f} |")
    checks = [r for r in report["rows"] if "numpy_query_s" in r]
    if checks:
        lines += ["", "Exact search of the whole query batch, faiss IndexFlatIP vs numpy brute force "
                  "(one matmul + argpartition), side by side:", ""]
        for r in checks:
            lines.append(f"- {r['n']:,} images: faiss {r['query_s']:.2f} s, numpy {r['numpy_query_s']:.2f} s "
                         f"({r['numpy_query_s'] / r['query_s']:.1f}x), same ids: {r['numpy_same_ids']}")
    params = [f"{r['kind']} at {r['n']:,}: {r['params']}" for r in report["rows"] if r.get("params")]
    lines += ["", "Parameters: " + "; ".join(params)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--kinds", default="flat,ivfpq,hnsw")
    parser.add_argument("--hnsw-max", type=int, default=1_000_000, help="skip hnsw above this size")
    parser.add_argument("--threads", type=int, default=None, help="faiss OpenMP threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS / "index_scale"))
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    faiss = faiss_module()
    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    report = {"dim": args.dim, "queries": args.queries, "faiss": faiss.__version__,
              "threads": faiss.omp_get_max_threads(), "load_start": load_average(),
              "machine": machine_info(threads=faiss.omp_get_max_threads()),
              "command": "python benchmarks/bench_index.py " + " ".join(
                  f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                  if k in ("sizes", "dim", "queries", "kinds", "hnsw_max") and v is not None),
              "rows": []}
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            report["rows"] += run_size(n, args.dim, args.queries, args.kinds.split(","), Path(tmp), args.seed,
                                       args.hnsw_max)
    report["load_end"] = load_average()
    text = to_markdown(report)
    print(text)
    if not args.no_save:
        from vsrn_deploy.bench.report import write_atomic, write_json

        write_json(report, args.out + ".json")
        write_atomic(args.out + ".md", text)


if __name__ == "__main__":
    main()
