"""GPU comparison of the encoders at the paper's sizes, in one short run (under 4 minutes).

Variants, each timed with CUDA events on device-resident inputs (no host copies in the timed call):

- torch            the authors' formulation (nn.GRU, 1x1 convs) in eager FP32: what users run today
                   (torch's default TF32 settings, recorded in the JSON)
- torch-fp16       the same module cast to FP16
- torch-deploy-fp16-cudagraph
                   the deploy-form module (vsrn_deploy.model.deploy) in FP16, captured once per batch
                   size into a CUDA graph and replayed (inputs copied into the graph's static buffers
                   inside the timed call)
- torch-compile-fp16
                   torch.compile (inductor, default mode) of the deploy form in FP16; compiling stops
                   once an encoder has used half of --compile-budget seconds (later batch sizes are
                   recorded as skipped)

Batches 1/32/128; image features (B, 36, 2048); captions padded to 20 tokens with lengths 8..20 mixed.
Every variant's output is compared with the FP32 reference (max abs error, min cosine) so a wrong
capture cannot post a fast time. Writes benchmarks/results/gpu_encoders.{json,md} (and .png when
matplotlib is installed) with the GPU named.

    python benchmarks/gpu_bench.py                       # on a CUDA machine
    python benchmarks/gpu_bench.py --dry-run             # CPU, tiny sizes: every path but graph capture
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vsrn_deploy.backend.base import INPUT_NAMES
from vsrn_deploy.bench.core import SCHEMA, add_roofline, image_feed, latency_stats, random_model, text_feed
from vsrn_deploy.bench.machine import machine_info, measure_matmul_peak
from vsrn_deploy.bench.plot import plot_report
from vsrn_deploy.bench.report import speedups, to_markdown, write_atomic, write_json
from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.model.config import VSRNConfig
from vsrn_deploy.model.deploy import ImageEncoderDeploy, TextEncoderDeploy

BASELINE = "torch"
GRAPH = "torch-deploy-fp16-cudagraph"
TARGETS = {1: 10.0, 128: 5.0}  # batch -> minimum p50 speed-up of GRAPH over torch FP32 (image and text)

Fn = Callable[[tuple[torch.Tensor, ...]], Any]


def _timed(fn: Fn, inputs: tuple[torch.Tensor, ...], warmup: int, seconds: float, min_iters: int,
           cuda: bool) -> list[float]:
    """Latencies (ms) of fn(inputs): CUDA events around each call on a GPU, perf_counter on the CPU."""
    for _ in range(warmup):
        fn(inputs)
    if cuda:
        torch.cuda.synchronize()
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < min_iters or (time.perf_counter() - start < seconds and len(samples) < 5000):
        if cuda:
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            fn(inputs)
            end.record()
            end.synchronize()
            samples.append(float(begin.elapsed_time(end)))
        else:
            t0 = time.perf_counter()
            fn(inputs)
            samples.append((time.perf_counter() - t0) * 1e3)
    return samples


def _first(out: Any) -> torch.Tensor:
    """The embedding: image modules return (embedding, regions), text modules the embedding."""
    return out[0] if isinstance(out, tuple) else out


def _cuda_graph(module: torch.nn.Module, example: tuple[torch.Tensor, ...]) -> Fn:
    """Capture `module(*example)` into a CUDA graph; the returned function copies its inputs into the
    graph's static buffers and replays it."""
    static_in = tuple(t.clone() for t in example)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up on a side stream, as capture requires
        for _ in range(3):
            module(*static_in)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = module(*static_in)

    def replay(inputs: tuple[torch.Tensor, ...]) -> Any:
        for buf, value in zip(static_in, inputs, strict=True):
            buf.copy_(value)
        graph.replay()
        return static_out

    return replay


def _inputs(encoder: str, cfg: VSRNConfig, batch: int, device: torch.device, seed: int,
            max_tokens: int) -> tuple[torch.Tensor, ...]:
    if encoder == "image":
        feed = image_feed(cfg, batch, seed)
        return (torch.from_numpy(feed["region_features"]).to(device),)  # (B, k, F)
    feed = text_feed(cfg, batch, seed, min_tokens=min(8, max_tokens), max_tokens=max_tokens)
    ids = np.zeros((batch, max_tokens), dtype=np.int64)  # fixed width: one graph serves every batch
    ids[:, : feed["token_ids"].shape[1]] = feed["token_ids"]
    return torch.from_numpy(ids).to(device), torch.from_numpy(feed["lengths"]).to(device)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build the model, time every variant, return the report (the JSON written)."""
    cuda = not args.dry_run
    device = torch.device("cuda" if cuda else "cpu")
    half = torch.float16 if cuda else torch.bfloat16  # CPU dry-run: bf16 kernels exist there
    t_start = time.perf_counter()
    cfg = VSRNConfig.tiny() if args.dry_run else VSRNConfig()
    model = random_model(cfg, seed=0)
    model.caption = None
    peak_s = 0.5 if cuda else 0.01
    peak = {"float32": measure_matmul_peak(None, n=4096 if cuda else 256, seconds=peak_s, device=device.type)}
    peak["float16"] = measure_matmul_peak(None, n=8192 if cuda else 256, seconds=peak_s, device=device.type,
                                          dtype="float16" if cuda else "bfloat16")
    machine = machine_info(None, device.type)
    machine["matmul_peak"] = peak
    machine["tf32"] = {"matmul": torch.backends.cuda.matmul.allow_tf32,
                       "cudnn": torch.backends.cudnn.allow_tf32}
    report: dict[str, Any] = {"schema": SCHEMA, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              "machine": machine,
                              "model": {"source": "random init", "sizes": "tiny (dry run)" if args.dry_run
                                        else "paper (COCO)", "config": cfg.to_dict()},
                              "settings": {"script": "benchmarks/gpu_bench.py", "argv": sys.argv[1:],
                                           "batches": args.batches, "seconds": args.seconds,
                                           "warmup": args.warmup, "text_width": args.max_tokens,
                                           "dry_run": args.dry_run},
                              "results": [], "skipped": []}
    for encoder in ("image", "text"):
        eager = (model.img_enc if encoder == "image" else model.txt_enc).to(device).eval()
        eager_half = copy.deepcopy(eager).to(half)
        deploy_cls = ImageEncoderDeploy if encoder == "image" else TextEncoderDeploy
        deploy_half = deploy_cls.from_encoder(eager).to(device, half).eval()
        # default dynamic shapes: batch 1 compiles specialised, the next batch size once more with a
        # symbolic batch that then serves every larger one (two compiles per encoder, not three)
        backend = "inductor" if cuda else "eager"
        compiled = None if args.no_compile else torch.compile(deploy_half, backend=backend)
        compile_left = args.compile_budget / 2  # each encoder gets half, so text is not starved
        for batch in args.batches:
            inputs = _inputs(encoder, cfg, batch, device, seed=batch, max_tokens=args.max_tokens)
            names = INPUT_NAMES[encoder]
            half_inputs = tuple(t.to(half) if t.is_floating_point() else t for t in inputs)
            variants: list[tuple[str, str, Fn | None, tuple[torch.Tensor, ...], str | None]] = [
                (BASELINE, "fp32", lambda x, m=eager: m(*x), inputs, None),
                ("torch-fp16", "fp16" if cuda else "bf16", lambda x, m=eager_half: m(*x), half_inputs, None)]
            # no_grad rather than inference_mode: CUDA-graph capture and torch.compile both accept it
            with torch.no_grad():
                reference = _first(eager(*inputs)).float()
                if cuda:
                    try:
                        graph_fn: Fn | None = _cuda_graph(deploy_half, half_inputs)
                        note = None
                    except Exception as exc:  # noqa: BLE001 - recorded, the other variants still run
                        graph_fn, note = None, f"CUDA graph capture failed: {type(exc).__name__}: {exc}"
                else:
                    graph_fn, note = (lambda x, m=deploy_half: m(*x)), "dry run: eager, not captured"
                variants.append((GRAPH, "fp16" if cuda else "bf16", graph_fn, half_inputs, note))
                if compiled is not None:
                    if compile_left <= 0:
                        variants.append(("torch-compile-fp16", "fp16", None, half_inputs,
                                         f"skipped: this encoder's half of --compile-budget "
                                         f"({args.compile_budget:.0f} s) is spent"))
                    else:
                        t0 = time.perf_counter()
                        try:
                            compiled(*half_inputs)  # compiles for this batch size
                            variants.append(("torch-compile-fp16", "fp16" if cuda else "bf16",
                                             lambda x, m=compiled: m(*x), half_inputs, None))
                        except Exception as exc:  # noqa: BLE001 - a compile failure is recorded
                            variants.append(("torch-compile-fp16", "fp16", None, half_inputs,
                                             f"torch.compile failed: {type(exc).__name__}: "
                                             f"{str(exc).splitlines()[0] if str(exc) else ''}"[:300]))
                        compile_left -= time.perf_counter() - t0
                for name, precision, fn, x, note in variants:
                    if fn is None:
                        report["skipped"].append({"encoder": encoder, "backend": name, "batch": batch,
                                                  "reason": note})
                        print(f"skipped {name} ({encoder}, batch {batch}): {note}", flush=True)
                        continue
                    try:
                        got = _first(fn(x)).float()
                        samples = _timed(fn, x, args.warmup, args.seconds, args.min_iters, cuda)
                    except Exception as exc:  # noqa: BLE001 - one failing variant must not lose the rest
                        if name == BASELINE:
                            raise
                        first_line = str(exc).splitlines()[0] if str(exc) else ""
                        reason = f"failed: {type(exc).__name__}: {first_line}"
                        report["skipped"].append({"encoder": encoder, "backend": name, "batch": batch,
                                                  "reason": reason[:300]})
                        print(f"skipped {name} ({encoder}, batch {batch}): {reason[:300]}", flush=True)
                        continue
                    row: dict[str, Any] = {"encoder": encoder, "backend": name, "precision": precision,
                                           "batch": batch, "device": device.type,
                                           "form": "authors" if name in (BASELINE, "torch-fp16")
                                           else "deploy"}
                    row.update(latency_stats(samples))
                    row["items_per_s"] = batch / (row["p50_ms"] / 1e3)
                    add_roofline(row, cfg, {n: t.cpu().numpy() for n, t in zip(names, inputs, strict=True)},
                                 peak)
                    row["max_abs_err"] = float((got - reference).abs().max())
                    row["min_cosine"] = float(torch.nn.functional.cosine_similarity(got, reference).min())
                    if note:
                        row["note"] = note
                    report["results"].append(row)
                    print(f"{encoder:5s} {name:28s} batch {batch:4d}: p50 {row['p50_ms']:8.3f} ms  "
                          f"{row['items_per_s']:10.1f} items/s  err {row['max_abs_err']:.1e}", flush=True)
        del eager_half, deploy_half, compiled
    report["wall_s"] = time.perf_counter() - t_start
    return report


def targets_markdown(report: dict[str, Any]) -> str:
    """Speed-ups of the CUDA-graph deploy variant over torch FP32 against the targets."""
    ratio = speedups(report, BASELINE)
    lines = ["### Targets (p50 ratios measured side by side in this run)", "",
             "| target | image | text |", "|---|---:|---:|"]
    for batch, want in TARGETS.items():
        cells = []
        for encoder in ("image", "text"):
            got = ratio.get((encoder, GRAPH, batch))
            cells.append("-" if got is None else f"{got:.1f}x ({'met' if got >= want else 'missed'})")
        lines.append(f"| {GRAPH} >= {want:.0f}x torch FP32 at batch {batch} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=lambda s: [int(b) for b in s.split(",")], default=[1, 32, 128])
    parser.add_argument("--seconds", type=float, default=1.0, help="time budget per variant and batch")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--min-iters", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=20, help="text width (lengths 8..this)")
    parser.add_argument("--compile-budget", type=float, default=100.0,
                        help="seconds of torch.compile allowed in total (half per encoder); batch sizes "
                        "after it is spent are recorded as skipped")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--dry-run", action="store_true",
                        help="CPU, tiny sizes: every path except CUDA-graph capture (for CI)")
    parser.add_argument("--out-dir", default=str(Path(__file__).resolve().parent / "results"))
    parser.add_argument("--prefix", default="gpu_encoders")
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("error: gpu_bench.py needs a CUDA GPU (torch sees none); use --dry-run to test it on the CPU",
              file=sys.stderr)
        return 2
    report = run(args)
    name = report["machine"]["gpu"]["name"] if report["machine"].get("gpu") else "CPU (dry run)"
    text = to_markdown(report, baseline=BASELINE, title=f"GPU encoders on {name}",
                       note="Device-resident inputs and outputs; CUDA events around each call "
                       f"(perf_counter in a dry run); total script time {report['wall_s']:.0f} s.")
    text += "\n" + targets_markdown(report)
    out = Path(args.out_dir)
    write_json(report, out / f"{args.prefix}.json")
    write_atomic(out / f"{args.prefix}.md", text)
    print(text)
    written = "json,md"
    try:
        plot_report(report, out / f"{args.prefix}.png")
        written += ",png"
    except VsrnError as exc:  # matplotlib missing: the JSON and markdown are the results
        print(f"no plot: {exc}", file=sys.stderr)
    print(f"wrote {out / args.prefix}.{{{written}}}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
