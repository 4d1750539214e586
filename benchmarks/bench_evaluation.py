"""Recall evaluation: the authors' per-query loop vs `vsrn_deploy.evaluation.recall`, side by side in one run.

The reference below is written the way VSE++/VSRN's ``evaluation.py`` computes i2t and t2i: one
``numpy.argsort`` per query over float64 embeddings in the authors' layout (each image repeated 5
times). The vectorised `recall_report` computes both directions in one blocked pass. The script
asserts that every rank, top-1 index and metric is identical, then writes JSON and Markdown.

Usage (about 1.5-2 minutes on 2 cores, almost all of it the reference loop):

    .venv/bin/python benchmarks/bench_evaluation.py            # 5,000 images x 25,000 captions, 64-d
    .venv/bin/python benchmarks/bench_evaluation.py --images 1000 --no-save   # quick check
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

from vsrn_deploy.bench.report import write_atomic, write_json
from vsrn_deploy.evaluation import recall as ev

RESULTS = Path(__file__).resolve().parent / "results"


# ---- reference: the authors' loops (default, unstable argsort, exactly as they call it) ----------

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "evaluation"))
from authors_evaluation import naive_i2t, naive_t2i  # noqa: E402  (one copy, shared with the tests)


def reference_i2t(images: np.ndarray, captions: np.ndarray) -> tuple:
    return naive_i2t(images, captions, kind=None)


def reference_t2i(images: np.ndarray, captions: np.ndarray) -> tuple:
    return naive_t2i(images, captions, kind=None)


# ---- setup -----------------------------------------------------------------------------------


def make_embeddings(n_images: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm float32 embeddings, captions near their image (noise set so recalls land near the
    paper's COCO 5K range), stored in float64 in the authors' layout (their encode_data fills
    np.zeros float64 arrays, each image repeated per caption)."""
    rng = np.random.default_rng(seed)
    # the same caption-image cosine relative to the distractors' spread (~1/sqrt(dim)) at any dim
    noise = float(np.sqrt((1 + 2.2**2) * dim / 64 - 1))
    ims = rng.standard_normal((n_images, dim)).astype(np.float32)
    caps = np.repeat(ims, 5, axis=0) + noise * rng.standard_normal((5 * n_images, dim)).astype(np.float32)
    ims /= np.linalg.norm(ims, axis=1, keepdims=True)
    caps /= np.linalg.norm(caps, axis=1, keepdims=True)
    return np.repeat(ims, 5, axis=0).astype(np.float64), caps.astype(np.float64)


def machine() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    blas = {}
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
    except Exception:  # noqa: BLE001 - older numpy: no dict mode
        pass
    return {
        "cpu": model,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "load_average_at_start": list(os.getloadavg()),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "blas": {k: blas.get(k) for k in ("name", "version", "openblas configuration") if k in blas},
    }


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7, help="timed runs of the vectorised version")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-save", action="store_true", help="print only; write nothing")
    parser.add_argument("--no-reference", action="store_true",
                        help="time only the vectorised version (e.g. --dim 2048: memory and time at "
                             "full embedding size, where the loop would take far too long)")
    args = parser.parse_args()

    images, captions = make_embeddings(args.images, args.dim, args.seed)
    info = machine()
    print(f"{args.images} images x {5 * args.images} captions, {args.dim}-d, on {info['cpu']} "
          f"({info['usable_cpus']} usable CPUs, load {info['load_average_at_start'][0]:.2f})")

    # vectorised: both directions together (what `evaluate` runs); the first run also measures the
    # memory it allocates beyond its inputs, and is the warm-up unless --no-reference
    tracemalloc.start()
    t0, c0 = time.perf_counter(), time.process_time()
    report = ev.recall_report(images, captions)
    first_s, first_cpu = time.perf_counter() - t0, time.process_time() - c0
    eval_peak_mib = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    times, cpu_times = ([first_s], [first_cpu]) if args.no_reference else ([], [])
    for _ in range(args.repeats - len(times)):
        t0, c0 = time.perf_counter(), time.process_time()
        report = ev.recall_report(images, captions)
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    vec_i2t_s = vec_t2i_s = None
    if not args.no_reference:
        t0 = time.perf_counter()
        vec_i2t = ev.i2t(images, captions, return_ranks=True)
        vec_i2t_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        vec_t2i = ev.t2i(images, captions, return_ranks=True)
        vec_t2i_s = time.perf_counter() - t0
    print(f"vectorised recall_report: p50 {pct(times, 50):.3f} s over {len(times)} runs; it allocated "
          f"at most {eval_peak_mib:.0f} MiB beyond its inputs")

    default = (args.images, args.dim) == (5000, 64)
    if args.no_reference:
        ref_i2t_s = ref_t2i_s = ref_total = ref_cpu = None
    else:
        # the authors' loops, once each (they take over a minute together)
        t0, c0 = time.perf_counter(), time.process_time()
        ref_i2t = reference_i2t(images, captions)
        ref_i2t_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ref_t2i = reference_t2i(images, captions)
        ref_t2i_s = time.perf_counter() - t0
        ref_total = ref_i2t_s + ref_t2i_s
        ref_cpu = time.process_time() - c0
        print(f"reference loops: i2t {ref_i2t_s:.1f} s + t2i {ref_t2i_s:.1f} s = {ref_total:.1f} s")

        # identical numbers, not just close ones
        for name, vec, ref in (("i2t", vec_i2t, ref_i2t), ("t2i", vec_t2i, ref_t2i)):
            (v_metrics, (v_ranks, v_top1)), (r_metrics, (r_ranks, r_top1)) = vec, ref
            assert np.array_equal(v_ranks, r_ranks.astype(np.int64)), f"{name}: ranks differ"
            assert np.array_equal(v_top1, r_top1.astype(np.int64)), f"{name}: top-1 differs"
            assert v_metrics == tuple(float(x) for x in r_metrics), f"{name}: {v_metrics} != {r_metrics}"
            assert tuple(report[f"{name}_{k}"] for k in ev.METRICS) == v_metrics, f"{name}: report differs"
        print("identical: every rank, top-1 index and metric of both directions")

    p50 = pct(times, 50)
    command = "python benchmarks/bench_evaluation.py"
    if not default:
        command += f" --images {args.images} --dim {args.dim}"
    if args.no_reference:
        command += f" --no-reference --repeats {args.repeats}"
    info["load_average_at_end"] = list(os.getloadavg())
    result = {
        "benchmark": "recall evaluation, authors' per-query loop vs vectorised",
        "command": command,
        "machine": info,
        "workload": {"images": args.images, "captions": 5 * args.images, "dim": args.dim,
                     "score_dtype": "float64", "seed": args.seed},
        "reference": {"i2t_s": ref_i2t_s, "t2i_s": ref_t2i_s, "total_s": ref_total, "cpu_s": ref_cpu},
        "vectorised": {
            "recall_report_s": {"p50": p50, "p90": pct(times, 90), "p99": pct(times, 99),
                                "min": min(times), "runs": len(times)},
            "allocated_peak_mib": eval_peak_mib,
            "cpu_s_p50": pct(cpu_times, 50),
            "i2t_with_ranks_s": vec_i2t_s, "t2i_with_ranks_s": vec_t2i_s,
            "block_bytes": ev.DEFAULT_BLOCK_BYTES,
        },
        "speedup_p50": None if ref_total is None else ref_total / p50,
        # CPU seconds (all threads) are less sensitive to other jobs on a shared machine
        "speedup_cpu": None if ref_cpu is None else ref_cpu / pct(cpu_times, 50),
        "process_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "inputs_mib": (images.nbytes + captions.nbytes) / 2**20,
        "identical": None if args.no_reference else True,
        "metrics": {k: report[k] for k in report if k.startswith(("i2t_", "t2i_")) or k == "rsum"},
    }
    if ref_total is not None:
        print(f"speed-up (reference total / vectorised p50): {result['speedup_p50']:.0f}x wall, "
              f"{result['speedup_cpu']:.0f}x CPU time")
    print(f"process peak RSS {result['process_peak_rss_mib']:.0f} MiB (inputs "
          f"{result['inputs_mib']:.0f} MiB)")
    print(ev.format_table(report))
    if args.no_save:
        return

    stem = RESULTS / ("evaluation_cpu" if default else f"evaluation_cpu_{args.images}x{args.dim}d")
    write_json(result, stem.with_suffix(".json"))
    vec = result["vectorised"]["recall_report_s"]
    md = [
        "# Recall evaluation: authors' per-query loop vs vectorised" if ref_total is not None else
        "# Recall evaluation: vectorised `recall_report` (authors' loop not run)",
        "",
        f"Command: `{result['command']}`",
        "",
        f"Machine: {info['cpu']}, {info['usable_cpus']} usable of {info['logical_cpus']} logical CPUs "
        f"(1-min load average {info['load_average_at_start'][0]:.2f} at start, "
        f"{info['load_average_at_end'][0]:.2f} at the end: a shared machine), "
        f"Python {info['python']}, numpy {info['numpy']}, BLAS {info['blas'].get('name', '?')} "
        f"{info['blas'].get('version', '')}.",
        "",
        f"Workload: {args.images} images x {5 * args.images} captions, {args.dim}-d unit-norm "
        "embeddings (float32 values, float64 scores as in the authors' code), both directions.",
        "",
        "| implementation | i2t (s) | t2i (s) | both (s) |",
        "|---|---:|---:|---:|",
        *([] if ref_total is None else [
            f"| authors' loop (one argsort per query) | {ref_i2t_s:.2f} | {ref_t2i_s:.2f} | "
            f"{ref_total:.2f} |"]),
        f"| `recall_report` (p50 / p90 / p99 of {vec['runs']}) | - | - | "
        f"{vec['p50']:.3f} / {vec['p90']:.3f} / {vec['p99']:.3f} |",
        *([] if vec_i2t_s is None else [
            f"| `i2t` / `t2i` separately, with ranks (1 run) | {vec_i2t_s:.3f} | {vec_t2i_s:.3f} | "
            f"{vec_i2t_s + vec_t2i_s:.3f} |"]),
        "",
        (f"Speed-up (loop total / `recall_report` p50): **{result['speedup_p50']:.0f}x**. Every rank, "
         f"top-1 index and metric was asserted identical. In CPU seconds (all threads; less "
         f"sensitive to other jobs): loop {ref_cpu:.1f} s vs {pct(cpu_times, 50):.2f} s, "
         f"**{result['speedup_cpu']:.0f}x**." if ref_total is not None else
         "The authors' loop was not run (--no-reference)."),
        "",
        f"Memory: `recall_report` allocated at most {eval_peak_mib:.0f} MiB beyond its inputs "
        f"({result['inputs_mib']:.0f} MiB of float64 embeddings in the authors' layout; score blocks "
        f"of at most {ev.DEFAULT_BLOCK_BYTES >> 20} MiB, never the "
        f"{args.images * 5 * args.images * 8 / 2**20:.0f} MiB score matrix); the whole process peaked "
        f"at {result['process_peak_rss_mib']:.0f} MiB resident.",
        "",
        "```",
        ev.format_table(report),
        "```",
        "",
    ]
    write_atomic(stem.with_suffix(".md"), "\n".join(md))
    print(f"wrote {stem.with_suffix('.json')} and {stem.with_suffix('.md')}")


if __name__ == "__main__":
    main()
