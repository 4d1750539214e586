"""Triton serving throughput vs direct ONNX Runtime, side by side in one run (CPU).

Exports a randomly initialised VSRN (paper sizes by default, `--tiny` for a quick look), writes a
`triton-repo --backend python --kind cpu` repository, starts the CPU tritonserver of the
nvidia-pytriton wheel (`bash .ci/setup` installs it) on 127.0.0.1, and measures, round after round
(each round: direct ONNX Runtime, then Triton, so that load from other processes hits both alike):

- images/s and captions/s at batch 1 (one request after another, HTTP binary tensors; captions as
  raw strings through `caption_encoder`, tokenised by the server) against ONNX Runtime called
  one item at a time in this process (captions tokenised here with vsrn_deploy's vocabulary);
- the same with dynamic batching: `--concurrency` batch-1 requests in flight (asynchronous gRPC),
  against ONNX Runtime on batches of the server's preferred size.

Both sides use ONNX Runtime's default intra-op threads (all visible cores); the server and this client
share the machine. Medians over rounds; the load average before and after is recorded.

With `--perf-analyzer`, Triton's own load generator (perf_analyzer of the tritonclient 2.51 wheel,
installed by `.ci/setup.d/32-perf-analyzer.sh` in .venv/perf-analyzer/) also drives `image_encoder`
and `caption_encoder` at `--concurrency` over gRPC: throughput and p50/p99 latency as it measures them.

    .venv/bin/python benchmarks/bench_triton.py --out benchmarks/results/triton_cpu
    .venv/bin/python benchmarks/bench_triton.py --tiny --perf-analyzer --out OUT
"""

from __future__ import annotations

import argparse
import csv
import json
import queue
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _export(root: Path, tiny: bool) -> Path:
    sys.path.insert(0, str(REPO / "tests" / "export"))
    from export_helpers import write_vocab

    from vsrn_deploy.bench.core import random_model
    from vsrn_deploy.data.vocab import load_vocab
    from vsrn_deploy.export import ExportConfig, export_loaded
    from vsrn_deploy.model.config import VSRNConfig

    cfg = VSRNConfig.tiny() if tiny else VSRNConfig()
    model = random_model(cfg)
    vocab = load_vocab(write_vocab(root / "vocab.json", cfg.vocab_size))
    out = root / "export"
    export_loaded(model, vocab, out, ExportConfig(precision="fp32", max_batch=8, retrieval_images=50))
    return out


def _rate(seconds: float, items: int) -> float:
    return items / seconds if seconds > 0 else float("nan")


def _timed(fn, min_seconds: float, items_per_call: int) -> float:
    """Items/s of `fn` called repeatedly for at least `min_seconds` (after one warm-up call)."""
    fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= min_seconds and n >= 3:
            return _rate(elapsed, n * items_per_call)


def _concurrent(client, make_request, total: int, in_flight: int) -> float:
    """Items/s with `in_flight` asynchronous gRPC batch-1 requests outstanding, `total` in all."""
    done: queue.Queue = queue.Queue()
    sent = 0
    t0 = time.perf_counter()
    while sent < min(in_flight, total):
        make_request(client, sent, done)
        sent += 1
    for _ in range(total):
        error = done.get(timeout=300)
        if error is not None:
            raise RuntimeError(error)
        if sent < total:
            make_request(client, sent, done)
            sent += 1
    return _rate(time.perf_counter() - t0, total)


def _stats(client, model: str) -> tuple[int, int]:
    s = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
    return int(s.get("inference_count", 0)), int(s.get("execution_count", 0))


PERF_ANALYZER = REPO / ".venv" / "perf-analyzer" / "perf_analyzer"


def _perf_analyzer(binary: Path, server, model: str, concurrency: int, work: Path,
                   captions: list[str] | None = None) -> dict[str, float]:
    """perf_analyzer's throughput and latency (ms) of `model` at `concurrency` requests in flight (gRPC;
    random FP32 inputs, or `captions` for a string input); count windows of 100 requests, stable
    within 50 % on this shared machine."""
    cmd = [str(binary), "-m", model, "-u", server.grpc_url, "-i", "grpc", "--concurrency-range",
           str(concurrency), "--measurement-mode", "count_windows", "--measurement-request-count", "100",
           "--stability-percentage", "50", "--max-trials", "6", "-f", str(work / f"{model}.csv")]
    if captions is not None:
        data = {"data": [{"captions": {"content": [c], "shape": [1]}} for c in captions]}
        (work / "captions.json").write_text(json.dumps(data))
        cmd += ["--input-data", str(work / "captions.json")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"perf_analyzer failed on {model}: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    with open(work / f"{model}.csv", newline="") as f:
        row = next(csv.DictReader(f))
    return {"items_per_s": round(float(row["Inferences/Second"]), 1),
            "p50_ms": round(float(row["p50 latency"]) / 1000, 2),
            "p99_ms": round(float(row["p99 latency"]) / 1000, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/triton_cpu", help="writes OUT.json and OUT.md")
    parser.add_argument("--tiny", action="store_true", help="tiny model (a quick look, not the figures)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0, help="per measurement and round")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (dynamic batching)")
    parser.add_argument("--perf-analyzer", nargs="?", const=str(PERF_ANALYZER), default=None, metavar="PATH",
                        help="also measure with perf_analyzer (default path: the set-up's "
                             ".venv/perf-analyzer/perf_analyzer)")
    args = parser.parse_args()
    if args.perf_analyzer and not Path(args.perf_analyzer).is_file():
        parser.error(f"no perf_analyzer at {args.perf_analyzer}; run bash .ci/setup (32-perf-analyzer.sh)")

    import onnxruntime as ort
    import tritonclient.grpc as tg
    import tritonclient.http as th

    from vsrn_deploy.bench.machine import load_average, machine_info
    from vsrn_deploy.bench.report import write_atomic, write_json
    from vsrn_deploy.core.tokens import unusable_query
    from vsrn_deploy.data.vocab import load_vocab
    from vsrn_deploy.export.test_vectors import read_test_vectors
    from vsrn_deploy.serving.triton_repo import (
        CAPTION_ENCODER,
        CAPTIONS,
        TritonRepoConfig,
        build_model_repository,
    )
    from vsrn_deploy.serving.triton_server import start_server

    load_before = load_average()
    tmp = Path(tempfile.mkdtemp(prefix="bench_triton."))
    t0 = time.perf_counter()
    export = _export(tmp, args.tiny)
    export_s = time.perf_counter() - t0
    preferred = 8
    repo = build_model_repository(TritonRepoConfig(
        onnx_dir=export, out=tmp / "repo", backend="python", kind="cpu", max_batch=8,
        preferred_batch=(preferred,)))  # the default max queue delay (100 us)
    vectors = read_test_vectors(export)
    vocab = load_vocab(export / "vocab.json")
    feats1 = vectors["region_features"][:1]
    reps = preferred // len(vectors["region_features"]) + 1
    feats8 = np.repeat(vectors["region_features"], reps, 0)[:preferred]
    # the server refuses a caption without a known word (as search does): only usable ones are timed
    captions = [c for c in vectors["captions"] if not unusable_query(vocab.encode(c), c)][:preferred]
    sessions = {g: ort.InferenceSession(str(export / f"{g}.onnx"), providers=["CPUExecutionProvider"])
                for g in ("image_encoder", "text_encoder")}

    def ort_images(feats):
        return lambda: sessions["image_encoder"].run(None, {"region_features": feats})

    def ort_captions(batch):
        def run():
            ids, lengths = vocab.encode_batch(batch)
            sessions["text_encoder"].run(None, {"token_ids": ids, "lengths": lengths})
        return run

    server = start_server(repo, timeout=300)
    http = th.InferenceServerClient(server.http_url, network_timeout=300)
    grpc = tg.InferenceServerClient(server.grpc_url)

    def http_image():
        x = th.InferInput("region_features", list(feats1.shape), "FP32")
        x.set_data_from_numpy(feats1)
        http.infer("image_encoder", [x], outputs=[th.InferRequestedOutput("image_embedding")])

    def http_caption():
        x = th.InferInput(CAPTIONS, [1, 1], "BYTES")
        x.set_data_from_numpy(np.array([[captions[0].encode()]], dtype=object))
        http.infer(CAPTION_ENCODER, [x])

    def grpc_image(client, i, done):
        x = tg.InferInput("region_features", list(feats1.shape), "FP32")
        x.set_data_from_numpy(feats8[i % preferred : i % preferred + 1])
        client.async_infer("image_encoder", [x], lambda result, error: done.put(error),
                           outputs=[tg.InferRequestedOutput("image_embedding")])

    def grpc_caption(client, i, done):
        x = tg.InferInput(CAPTIONS, [1, 1], "BYTES")
        x.set_data_from_numpy(np.array([[captions[i % len(captions)].encode()]], dtype=object))
        client.async_infer(CAPTION_ENCODER, [x], lambda result, error: done.put(error))

    rows: dict[str, list[float]] = {}
    batching: dict[str, list[float]] = {"image_encoder": [], "tokenizer": [], "text_encoder": []}
    perf: dict[str, dict[str, float]] = {}
    total = max(args.concurrency * 4, 32) if not args.tiny else 400
    try:
        for _ in range(args.rounds):
            for key, value in (
                ("image b1 ort", _timed(ort_images(feats1), args.seconds, 1)),
                ("image b1 triton", _timed(http_image, args.seconds, 1)),
                (f"image b{preferred} ort", _timed(ort_images(feats8), args.seconds, preferred)),
                ("image dyn triton", None),
                ("caption b1 ort", _timed(ort_captions(captions[:1]), args.seconds, 1)),
                ("caption b1 triton", _timed(http_caption, args.seconds, 1)),
                (f"caption b{preferred} ort", _timed(ort_captions(captions), args.seconds, preferred)),
                ("caption dyn triton", None),
            ):
                if value is None:
                    models, maker = ((["image_encoder"], grpc_image) if key.startswith("image")
                                     else (["tokenizer", "text_encoder"], grpc_caption))
                    _concurrent(grpc, maker, args.concurrency, args.concurrency)  # warm-up
                    before = {m: _stats(grpc, m) for m in models}
                    value = _concurrent(grpc, maker, total, args.concurrency)
                    after = {m: _stats(grpc, m) for m in models}
                    for m in models:
                        batching[m].append((after[m][0] - before[m][0]) / max(1, after[m][1] - before[m][1]))
                rows.setdefault(key, []).append(value)
                print(f"{key}: {value:.1f} items/s", file=sys.stderr)
        if args.perf_analyzer:
            for model, inputs in (("image_encoder", None), (CAPTION_ENCODER, captions)):
                perf[model] = _perf_analyzer(Path(args.perf_analyzer), server, model, args.concurrency, tmp,
                                             inputs)
                print(f"perf_analyzer {model}: {perf[model]}", file=sys.stderr)
    finally:
        http.close()
        grpc.close()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    load_after = load_average()

    med = {k: float(np.median(v)) for k, v in rows.items()}
    result = {
        "machine": machine_info(),
        "load_average": {"before": load_before, "after": load_after},
        "note": "2 CPU cores shared with other agents' jobs; server and client on the same cores",
        "model": "tiny" if args.tiny else "paper sizes (random weights), FP32",
        "export_seconds": round(export_s, 1),
        "server": "tritonserver 2.51 (nvidia-pytriton 0.7.0), python backend + ONNX Runtime, 1 CPU instance",
        "concurrency": args.concurrency,
        "preferred_batch": preferred,
        "rounds": {k: [round(x, 2) for x in v] for k, v in rows.items()},
        "median_items_per_s": {k: round(v, 2) for k, v in med.items()},
        "mean_batch_per_execution": {k: round(float(np.median(v)), 2) for k, v in batching.items()},
        "perf_analyzer": perf or None,
    }
    out = Path(args.out)
    write_json(result, out.with_suffix(".json"))
    lines = [
        f"# Triton (CPU, python backend) vs direct ONNX Runtime: {result['model']}",
        "",
        f"CPU: {result['machine']['cpu']} ({result['machine']['logical_cpus']} cores, shared with other "
        f"agents' jobs; load average before {load_before:.2f}, after {load_after:.2f}). Server and client "
        "share the cores. Medians of "
        f"{args.rounds} rounds, {args.seconds:.0f} s each; rounds alternate ONNX Runtime and Triton.",
        "",
        "| what | ONNX Runtime direct | Triton | Triton / direct |",
        "|---|---|---|---|",
    ]
    for kind, unit in (("image", "images/s"), ("caption", "captions/s")):
        for mode, direct_key, triton_key in (
            ("batch 1, one request at a time", f"{kind} b1 ort", f"{kind} b1 triton"),
            (f"dynamic batching ({args.concurrency} batch-1 requests in flight) vs batch {preferred}",
             f"{kind} b{preferred} ort", f"{kind} dyn triton"),
        ):
            d, t = med[direct_key], med[triton_key]
            lines.append(f"| {unit}, {mode} | {d:.1f} | {t:.1f} | {t / d:.2f}x |")
    lines += [
        "",
        "Mean requests per model execution under dynamic batching: "
        + ", ".join(f"{k} {v}" for k, v in result["mean_batch_per_execution"].items()) + ".",
    ]
    if perf:
        lines += [
            "",
            f"perf_analyzer (tritonclient 2.51), {args.concurrency} requests in flight over gRPC, count "
            "windows of 100 requests:",
            "",
            "| model | items/s | p50 latency (ms) | p99 latency (ms) |",
            "|---|---|---|---|",
            *(f"| {m} | {r['items_per_s']} | {r['p50_ms']} | {r['p99_ms']} |" for m, r in perf.items()),
        ]
    lines += [
        "",
        f"Captions: Triton receives raw strings (`{CAPTION_ENCODER}`: tokenizer + text_encoder); the "
        "direct side tokenises with vsrn_deploy's vocabulary in the same process.",
        "",
        f"versions: {json.dumps(result['machine']['versions'])}",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_triton.py --out {args.out}"
        + (" --tiny" if args.tiny else "") + (" --perf-analyzer" if perf else "") + "`",
    ]
    write_atomic(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
