"""CPU comparison of the encoders at the paper's sizes: torch vs torch-deploy vs ort vs ort-fp16.

Runs `vsrn_deploy.bench.run_benchmark` on a randomly initialised COCO-size model (timings do not
depend on the weights' values), exporting it to ONNX first, and writes
`benchmarks/results/cpu_encoders.{json,md,png}` with the machine named. The markdown ends with the
speed targets (ratios of p50 measured side by side in this run).

    python benchmarks/bench_encoders.py                    # the full run (2 threads, batches 1,8,32)
    python benchmarks/bench_encoders.py --tiny --seconds 0.2 --out-dir /tmp/smoke   # a smoke run
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from vsrn_deploy.bench import BenchConfig, plot_report, run_benchmark, to_markdown, write_json
from vsrn_deploy.bench.report import speedups, write_atomic

# ratio targets: (encoder, backend, batch) -> minimum p50 speed-up over torch
RATIO_TARGETS = {("image", "ort", 1): 1.6, ("image", "ort", 32): 1.3, ("text", "ort", 1): 1.5}
PEAK_SHARE_TARGET = 0.85  # of the theoretical FP32 peak, image encoder at batch 32


def targets_markdown(report: dict[str, Any], theoretical_peak: float) -> str:
    """The speed targets, each with the measured value and whether it is met."""
    ratio = speedups(report, "torch")
    lines = ["### Targets (p50 ratios measured side by side in this run)", "",
             "| target | measured | met |", "|---|---:|---|"]
    for (encoder, backend, batch), want in RATIO_TARGETS.items():
        got = ratio.get((encoder, backend, batch))
        lines.append(f"| {backend} {encoder} >= {want}x torch at batch {batch} | "
                     f"{'-' if got is None else f'{got:.2f}x'} | "
                     f"{'-' if got is None else ('yes' if got >= want else 'no')} |")
    best = [r for r in report["results"] if r["encoder"] == "image" and r["batch"] == 32]
    if best:
        top = max(best, key=lambda r: r["gflops"])
        share = top["gflops"] / theoretical_peak
        lines.append(f"| image batch 32 >= {PEAK_SHARE_TARGET:.0%} of the {theoretical_peak:.0f} GFLOP/s "
                     f"theoretical FP32 peak | {top['gflops']:.1f} GFLOP/s = {share:.0%} ({top['backend']}) "
                     f"| {'yes' if share >= PEAK_SHARE_TARGET else 'no'} |")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="torch,torch-deploy,ort,ort-fp16")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--encoders", default="image,text")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="time budget per backend and batch")
    parser.add_argument("--min-iters", type=int, default=5)
    parser.add_argument("--onnx-dir", default=None,
                        help="an export of the same sizes to reuse (a missing or empty folder: export there)")
    parser.add_argument("--peak-seconds", type=float, default=2.0, help="time budget of the matmul peak")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (smoke run)")
    parser.add_argument("--theoretical-peak", type=float, default=157.0,
                        help="GFLOP/s: 2 cores x 2.45 GHz x 32 FP32 FLOP/cycle (two 8-wide FMA pipes)")
    parser.add_argument("--out-dir", default=str(Path(__file__).resolve().parent / "results"))
    parser.add_argument("--prefix", default="cpu_encoders")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)

    cfg = BenchConfig(encoders=tuple(args.encoders.split(",")), backends=tuple(args.backends.split(",")),
                      batches=tuple(int(b) for b in args.batches.split(",")), warmup=args.warmup,
                      iters=None, seconds=args.seconds, min_iters=args.min_iters, threads=args.threads,
                      onnx_dir=args.onnx_dir, tiny=args.tiny, peak_seconds=args.peak_seconds,
                      extra={"script": "benchmarks/bench_encoders.py",
                             "argv": sys.argv[1:] if argv is None else list(argv)})
    report = run_benchmark(cfg)
    report["theoretical_peak_gflops"] = args.theoretical_peak
    out = Path(args.out_dir)
    text = to_markdown(report, title="CPU encoders: torch vs torch-deploy vs ONNX Runtime")
    text += "\n" + targets_markdown(report, args.theoretical_peak)
    write_json(report, out / f"{args.prefix}.json")
    write_atomic(out / f"{args.prefix}.md", text)
    if not args.no_plot:
        plot_report(report, out / f"{args.prefix}.png")
    print(text)
    print(f"wrote {out / args.prefix}.{{json,md{'' if args.no_plot else ',png'}}}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
