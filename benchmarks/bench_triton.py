"""Triton serving under load (perf_analyzer) vs direct ONNX Runtime at the batches Triton formed (CPU).

Exports a randomly initialised VSRN (paper sizes by default, `--tiny` for a quick look; `--precision
int8` adds the INT8 graphs and serves those), writes the repository `triton-repo --backend python
--kind cpu` ships (its default batching settings; max batch 8 from the export), starts the CPU
tritonserver of the nvidia-pytriton wheel (`bash .ci/setup` installs it) on 127.0.0.1 and, round after
round:

- perf_analyzer (tritonclient 2.51's load generator, `.ci/setup.d/32-perf-analyzer.sh` installs it in
  .venv/perf-analyzer/) drives `caption_encoder` (raw caption strings: tokenizer + text_encoder) at
  `--caption-concurrency` (16) batch-1 requests in flight over gRPC, then `image_encoder` at
  `--image-concurrency` (4); the server's statistics before and after each run give every model's
  inference and execution counts and its executions per batch size: the batches the dynamic batcher
  formed;
- right after each run, ONNX Runtime in this process runs the same graph, with the server's session
  settings (default intra-op threads, 1 inter-op thread), at each batch size the server ran (`--seconds`
  shared between them; captions tokenised here with vsrn_deploy's vocabulary), weighted by the server's
  executions at each size: the direct rate for the very batches Triton formed, so that neither a
  rounded mean batch nor load from other processes favours one side.

Reported: captions/s and images/s, Triton (perf_analyzer) against direct, their ratio, and the
execution/inference ratios (medians over rounds); where the cores went while perf_analyzer ran (CPU
seconds per second of the server's own threads, of each python model's process and of perf_analyzer,
read from Linux /proc) and the encoder's items per CPU-second against the direct client's, which
tells a gap of cores (the server's hops and the load generator take them) from a slower encoder; the
load average before and after, the command line, versions. The client never imports torch (the
export runs in a child process). Server, client and perf_analyzer share the machine's cores.

    .venv/bin/python benchmarks/bench_triton.py --precision fp32 --out benchmarks/results/triton_cpu
    .venv/bin/python benchmarks/bench_triton.py --precision int8 --out benchmarks/results/triton_cpu_int8
    .venv/bin/python benchmarks/bench_triton.py --tiny --perf-analyzer --precision int8 --out /tmp/triton_tiny
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import json
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PERF_ANALYZER = REPO / ".venv" / "perf-analyzer" / "perf_analyzer"
MAX_BATCH = 8
MIN_BATCH = 4  # the target: each caption model runs at most once per this many requests
MIN_RATIO = 0.8  # the target: Triton >= this x direct ONNX Runtime at the batches formed
TEXT_MODELS = ("tokenizer", "text_encoder")


def _export(root: str, tiny: bool, precision: str) -> str:
    """Export a random model (run in a child process: torch stays out of the measuring one)."""
    sys.path.insert(0, str(REPO / "tests" / "export"))
    from export_helpers import write_vocab

    from vsrn_deploy.bench.core import random_model
    from vsrn_deploy.data.vocab import load_vocab
    from vsrn_deploy.export import ExportConfig, export_loaded
    from vsrn_deploy.model.config import VSRNConfig

    cfg = VSRNConfig.tiny() if tiny else VSRNConfig()
    model = random_model(cfg)
    vocab = load_vocab(write_vocab(Path(root) / "vocab.json", cfg.vocab_size))
    out = Path(root) / "export"
    export_loaded(model, vocab, out,
                  ExportConfig(precision=precision, max_batch=MAX_BATCH, retrieval_images=50))
    return str(out)


def _stats(client) -> dict[str, tuple[int, int, dict[int, int]]]:
    """(inference_count, execution_count, {batch size: executions}) of every model, from the server's
    statistics."""
    rows = client.get_inference_statistics(as_json=True)["model_stats"]
    return {r["name"]: (int(r.get("inference_count", 0)), int(r.get("execution_count", 0)),
                        {int(b["batch_size"]): int(b["compute_infer"]["count"])
                         for b in r.get("batch_stats", [])})
            for r in rows}


def _perf_analyzer(binary: Path, server, model: str, concurrency: int, requests: int, work: Path,
                   input_data: Path | None) -> tuple[dict[str, float], list[str]]:
    """perf_analyzer's throughput and p50/p99 latency (ms) of `model` at `concurrency` batch-1 requests
    in flight over gRPC (random FP32 inputs, or `input_data`); count windows of `requests` requests,
    stable within 50 % (a shared machine), at most 10 windows. Returns the figures and the command."""
    report = work / f"{model}.csv"
    cmd = [str(binary), "-m", model, "-u", server.grpc_url, "-i", "grpc", "--concurrency-range",
           str(concurrency), "--measurement-mode", "count_windows", "--measurement-request-count",
           str(requests), "--stability-percentage", "50", "--max-trials", "10", "-f", str(report)]
    if input_data is not None:
        cmd += ["--input-data", str(input_data)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        raise SystemExit(f"error: perf_analyzer on {model} exited {done.returncode}: {' | '.join(tail)}")
    with open(report, newline="") as f:
        row = next(csv.DictReader(f))
    return ({"items_per_s": float(row["Inferences/Second"]), "p50_ms": float(row["p50 latency"]) / 1000,
             "p99_ms": float(row["p99 latency"]) / 1000}, cmd)


def _cpu_by_part(server_pid: int) -> dict[str, float]:
    """CPU seconds used so far by the server's own threads ("tritonserver") and by each python-backend
    model's stub process, named by its model (the stub runs <repository>/<model>/<version>/model.py);
    empty where the OS has no /proc."""
    from vsrn_deploy.bench.machine import process_cpu_seconds

    parts: dict[str, float] = {}
    for pid, (cmdline, seconds) in (process_cpu_seconds(server_pid) or {}).items():
        if pid == server_pid:
            name = "tritonserver"
        elif len(cmdline) > 1 and cmdline[1].endswith("model.py") and len(Path(cmdline[1]).parts) >= 3:
            name = Path(cmdline[1]).parts[-3]
        else:
            name = Path(cmdline[0]).name if cmdline else str(pid)
        parts[name] = parts.get(name, 0.0) + seconds
    return parts


def _cpu_of(who: int) -> float:
    """CPU seconds (user + system) of this process (RUSAGE_SELF, all its threads) or of its ended,
    waited-for children (RUSAGE_CHILDREN: perf_analyzer, once subprocess.run has returned)."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _direct_rate(fn, batch: int, seconds: float) -> float:
    """Items/s of `fn()` (one batch of `batch` items) called for at least `seconds` after one warm-up."""
    fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and n >= 3:
            return n * batch / elapsed


def _direct_mix(direct, executions: dict[int, int], seconds: float) -> tuple[float, dict[int, float]]:
    """Items/s of ONNX Runtime called directly over the batches the server formed: each batch size is
    timed alone (`direct(size)` makes its call), then weighted by the executions the server ran at that
    size (their items over the time those batches take directly). The sizes share `seconds` by their
    executions, at least 0.5 s each. Returns the rate and each size's own."""
    total = sum(executions.values())
    rates = {b: _direct_rate(direct(b), b, max(0.5, seconds * n / total))
             for b, n in sorted(executions.items())}
    items = sum(b * n for b, n in executions.items())
    return items / sum(n * b / rates[b] for b, n in executions.items()), rates


def _sizes(sizes: list[int]) -> str:
    """Batch sizes for a table cell: "8", "2, 4" or, for a run of three or more, "1-8"."""
    if len(sizes) >= 3 and sizes == list(range(sizes[0], sizes[-1] + 1)):
        return f"{sizes[0]}-{sizes[-1]}"
    return ", ".join(map(str, sizes))


def _median(values: list[float]) -> float:
    return float(np.median(values))


def _usage(message: str) -> None:
    """Bad input: one `error:` line, exit 2."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _cores_lines(summary: dict, cpus: int, models: dict[str, str]) -> list[str]:
    """The report's table of where the cores went while perf_analyzer ran, and the encoders' items per
    CPU-second against the direct client's; one line saying so where /proc was not there."""
    if not all(s["cores"] for s in summary.values()):
        return ["Where the cores went: not measured (it reads Linux /proc).", ""]
    first = ["tritonserver", "tokenizer"]
    names = [n for n in first if any(n in s["cores"] for s in summary.values())]
    names += sorted({n for s in summary.values() for n in s["cores"]} - {*first, "perf_analyzer"})
    names.append("perf_analyzer")
    lines = [f"Where the {cpus} cores went while perf_analyzer ran (CPU-seconds per second of each process, "
             "median of rounds; tritonserver is the server's own threads: gRPC, the ensemble, the batchers; "
             "each python model runs in a process of its own):", "",
             "| run | " + " | ".join(names) + " | left (idle, other work) |",
             "|---|" + "---:|" * (len(names) + 1)]
    for kind, s in summary.items():
        used = [s["cores"].get(n, 0.0) for n in names]
        lines.append(f"| {models[kind]} | " + " | ".join(f"{c:.2f}" for c in used)
                     + f" | {max(0.0, cpus - sum(used)):.2f} |")
    lines += ["", "Items per CPU-second, the encoder's python model process under perf_analyzer against ONNX "
              "Runtime called directly (this process, all its threads; for captions tokenising included):"
              + "".join(f" {kind} {s['items_per_cpu_s']['triton_encoder'] or 0:.0f} against "
                        f"{s['items_per_cpu_s']['direct']:.0f} (direct used {s['direct_cores']:.2f} cores);"
                        for kind, s in summary.items()).rstrip(";") + ".", ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/triton_cpu", help="writes OUT.json and OUT.md")
    parser.add_argument("--tiny", action="store_true", help="tiny model (a quick look, not the figures)")
    parser.add_argument("--precision", default="fp32", help="fp32 or int8: the graphs the server runs")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0, help="direct ONNX Runtime: per model and round")
    parser.add_argument("--caption-concurrency", type=int, default=16, help="requests in flight, captions")
    parser.add_argument("--image-concurrency", type=int, default=4, help="requests in flight, images")
    parser.add_argument("--requests", type=int, default=None,
                        help="perf_analyzer count window (requests); default 200 tiny, 64 paper sizes")
    parser.add_argument("--perf-analyzer", nargs="?", const=str(PERF_ANALYZER), default=str(PERF_ANALYZER),
                        metavar="PATH", help="perf_analyzer to run (default: the set-up's "
                                             ".venv/perf-analyzer/perf_analyzer)")
    args = parser.parse_args()
    if args.precision not in ("fp32", "int8"):
        _usage(f"--precision must be fp32 or int8 (got {args.precision!r})")
    for name in ("rounds", "caption_concurrency", "image_concurrency", "requests"):
        value = getattr(args, name)
        if value is not None and value < 1:
            _usage(f"--{name.replace('_', '-')} must be >= 1 (got {value})")
    if not args.seconds > 0:
        _usage(f"--seconds must be > 0 (got {args.seconds})")
    binary = Path(args.perf_analyzer)
    if not binary.is_file():
        _usage(f"no perf_analyzer at {binary}; install it with: bash .ci/setup (32-perf-analyzer.sh)")
    requests = args.requests or (200 if args.tiny else 64)
    command = shlex.join([".venv/bin/python", "benchmarks/bench_triton.py", *sys.argv[1:]])

    import onnxruntime as ort
    import tritonclient.grpc as tg

    from vsrn_deploy.bench.machine import load_average, machine_info
    from vsrn_deploy.bench.report import write_atomic, write_json
    from vsrn_deploy.core.contract import IMAGE, TEXT, UNK_ID, onnx_name
    from vsrn_deploy.core.errors import VsrnError
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
    server = client = None
    try:
        t0 = time.perf_counter()
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            export = Path(pool.submit(_export, str(tmp), args.tiny, args.precision).result())
        export_s = time.perf_counter() - t0
        # the shipped defaults: preferred sizes and queue delay as triton-repo writes them
        repo = build_model_repository(TritonRepoConfig(
            onnx_dir=export, out=tmp / "repo", backend="python", kind="cpu", precision=args.precision))
        config = (repo / TEXT.graph / "config.pbtxt").read_text()
        found = re.search(r"dynamic_batching \{.*?\}", config, re.S)
        batching = " ".join(found.group(0).split()) if found else None

        vectors = read_test_vectors(export)
        vocab = load_vocab(export / "vocab.json")
        # the server refuses a caption without a known word (as search does): only usable ones are sent
        captions = [c for c in vectors["captions"] if not unusable_query(vocab.encode(c), c, UNK_ID)]
        if not captions:
            raise SystemExit("error: no test-vector caption has a known word; re-export")
        caption_data = tmp / "captions.json"
        caption_data.write_text(json.dumps({"data": [{CAPTIONS: {"content": [c], "shape": [1]}}
                                                     for c in captions]}))
        feats = vectors["region_features"]
        options = ort.SessionOptions()  # as the server's python model: default intra-op threads, 1 inter-op
        options.intra_op_num_threads = 0
        options.inter_op_num_threads = 1
        sessions = {g: ort.InferenceSession(str(export / onnx_name(g, args.precision)), options,
                                            providers=["CPUExecutionProvider"])
                    for g in (IMAGE.graph, TEXT.graph)}

        def direct_images(batch: int):
            x = np.ascontiguousarray(np.resize(feats, (batch, *feats.shape[1:])))
            return lambda: sessions[IMAGE.graph].run(None, {"region_features": x})

        def direct_captions(batch: int):
            state = {"i": 0}

            def run():  # tokenise here, as the server's tokenizer does, then the text encoder
                i = state["i"]
                state["i"] = (i + batch) % len(captions)
                ids, lengths = vocab.encode_batch([captions[(i + k) % len(captions)] for k in range(batch)])
                sessions[TEXT.graph].run(None, {"token_ids": ids, "lengths": lengths})
            return run

        server = start_server(repo, timeout=600)
        client = tg.InferenceServerClient(server.grpc_url)
        server_version = client.get_server_metadata(as_json=True).get("version")
        plan = (("captions", CAPTION_ENCODER, args.caption_concurrency, caption_data, TEXT_MODELS,
                 TEXT.graph, direct_captions),
                ("images", IMAGE.graph, args.image_concurrency, None, (IMAGE.graph,), IMAGE.graph,
                 direct_images))
        rounds: dict[str, list[dict]] = {kind: [] for kind, *_ in plan}
        commands: dict[str, list[str]] = {}
        for r in range(args.rounds):
            for kind, model, concurrency, data, counted, batch_model, direct in plan:
                before, cpu_before = _stats(client), _cpu_by_part(server.pid)
                children_before, started = _cpu_of(resource.RUSAGE_CHILDREN), time.perf_counter()
                figures, commands[model] = _perf_analyzer(binary, server, model, concurrency, requests, tmp,
                                                          data)
                wall = time.perf_counter() - started
                cpu_after, after = _cpu_by_part(server.pid), _stats(client)
                # CPU-seconds per second of each process while perf_analyzer ran: where the cores went
                cores = {name: (cpu_after[name] - cpu_before.get(name, 0.0)) / wall for name in cpu_after}
                if cores:
                    cores["perf_analyzer"] = (_cpu_of(resource.RUSAGE_CHILDREN) - children_before) / wall
                counts = {m: {"inferences": after[m][0] - before[m][0],
                              "executions": after[m][1] - before[m][1]} for m in counted}
                for c in counts.values():
                    c["executions_per_inference"] = c["executions"] / max(1, c["inferences"])
                formed = counts[batch_model]["inferences"] / max(1, counts[batch_model]["executions"])
                # the executions at each batch size during the run (a server without batch statistics:
                # the mean batch, rounded)
                was, now = before[batch_model][2], after[batch_model][2]
                batches = ({b: n - was.get(b, 0) for b, n in now.items() if n > was.get(b, 0)}
                           or {max(1, min(MAX_BATCH, round(formed))): 1})
                self_before, started = _cpu_of(resource.RUSAGE_SELF), time.perf_counter()
                rate, by_batch = _direct_mix(direct, batches, args.seconds)
                direct_cores = (_cpu_of(resource.RUSAGE_SELF) - self_before) / (time.perf_counter() - started)
                rounds[kind].append({"triton": figures, "counts": counts, "formed_batch": formed,
                                     "batches": batches, "direct_items_per_s_by_batch": by_batch,
                                     "direct_items_per_s": rate,
                                     "ratio": figures["items_per_s"] / rate, "cores": cores,
                                     "direct_cores": direct_cores})
                print(f"round {r + 1} {kind}: triton {figures['items_per_s']:.1f}/s, batch formed "
                      f"{formed:.2f} {batches}, direct at those batches {rate:.1f}/s", file=sys.stderr)
    except VsrnError as exc:  # the server is not installed, or does not load the repository
        raise SystemExit(f"error: {exc}") from None
    finally:
        if client is not None:
            client.close()
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    load_after = load_average()

    summary = {}
    encoder_of = {kind: batch_model for kind, _, _, _, _, batch_model, _ in plan}
    for kind, rows in rounds.items():
        counts = {m: {"executions_per_inference": _median([x["counts"][m]["executions_per_inference"]
                                                           for x in rows]),
                      "inferences": sum(x["counts"][m]["inferences"] for x in rows),
                      "executions": sum(x["counts"][m]["executions"] for x in rows)}
                  for m in rows[0]["counts"]}
        names = sorted({n for x in rows for n in x["cores"]})
        cores = {n: _median([x["cores"].get(n, 0.0) for x in rows]) for n in names}
        encoder = encoder_of[kind]
        # executions per batch size of the encoder, all rounds together
        batches = {b: sum(x["batches"].get(b, 0) for x in rows)
                   for b in sorted({b for x in rows for b in x["batches"]})}
        summary[kind] = {
            "triton_items_per_s": _median([x["triton"]["items_per_s"] for x in rows]),
            "triton_p50_ms": _median([x["triton"]["p50_ms"] for x in rows]),
            "triton_p99_ms": _median([x["triton"]["p99_ms"] for x in rows]),
            "formed_batch": _median([x["formed_batch"] for x in rows]),
            "direct_batches": list(batches),
            "batches": batches,
            "direct_items_per_s": _median([x["direct_items_per_s"] for x in rows]),
            "ratio": _median([x["ratio"] for x in rows]),
            "counts": counts,
            # CPU-seconds per second while perf_analyzer ran, by process (median of rounds; {} without /proc)
            "cores": cores,
            "direct_cores": _median([x["direct_cores"] for x in rows]),
            # items per CPU-second: the encoder's python model process against the direct client (all
            # its threads, tokenising included for captions); equal means the gap is cores, not speed
            "items_per_cpu_s": {
                "triton_encoder": (_median([x["triton"]["items_per_s"] / x["cores"][encoder] for x in rows])
                                   if all(x["cores"].get(encoder) for x in rows) else None),
                "direct": _median([x["direct_items_per_s"] / x["direct_cores"] for x in rows]),
            },
        }
    text_ok = all(summary["captions"]["counts"][m]["executions_per_inference"] <= 1 / MIN_BATCH
                  for m in TEXT_MODELS)
    result = {
        "command": command,
        "machine": machine_info(),
        "load_average": {"before": load_before, "after": load_after},
        "note": "server, perf_analyzer and the direct ONNX Runtime client share the machine's cores",
        "model": ("tiny" if args.tiny else "paper sizes (random weights)") + f", {args.precision.upper()}",
        "export_seconds": round(export_s, 1),
        "server": f"tritonserver {server_version} (nvidia-pytriton wheel), python backend + ONNX Runtime, "
                  "1 CPU instance per model",
        "repository_batching": {"max_batch": MAX_BATCH, "dynamic_batching": batching},
        "perf_analyzer": {"binary": "tritonclient 2.51.0 wheel", "requests_per_window": requests,
                          "commands": {m: shlex.join([Path(c[0]).name, *c[1:]])
                                       for m, c in commands.items()}},
        "tritonclient": importlib.metadata.version("tritonclient"),
        "client_imported_torch": "torch" in sys.modules,
        "rounds_per_kind": rounds,
        "summary": summary,
        "targets": {
            "text executions <= inferences / 4 (tokenizer, text_encoder)": text_ok,
            "captions/s >= 0.8x direct at the batches formed": summary["captions"]["ratio"] >= MIN_RATIO,
            "images/s >= 0.8x direct at the batches formed": summary["images"]["ratio"] >= MIN_RATIO,
        },
    }
    out = Path(args.out)
    write_json(result, out.with_suffix(".json"))
    cap, img = summary["captions"], summary["images"]
    lines = [
        f"# Triton (CPU, python backend) under perf_analyzer vs direct ONNX Runtime: {result['model']}",
        "",
        f"CPU: {result['machine']['cpu']} ({result['machine']['logical_cpus']} cores; load average before "
        f"{load_before:.2f}, after {load_after:.2f}). Server, perf_analyzer and the direct client share the "
        f"cores. Medians of {args.rounds} rounds; each round runs perf_analyzer on a model, then ONNX "
        f"Runtime directly ({args.seconds:g} s) at each batch size the server ran in that run, weighted by "
        "the server's executions at that size. "
        f"{result['server']}; max batch {MAX_BATCH}, `{batching}`.",
        "",
        "| model | in flight | Triton items/s | p50 / p99 ms | batch formed | direct items/s (batches) "
        "| Triton / direct |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| {CAPTION_ENCODER} (captions) | {args.caption_concurrency} | {cap['triton_items_per_s']:.1f} | "
        f"{cap['triton_p50_ms']:.1f} / {cap['triton_p99_ms']:.1f} | {cap['formed_batch']:.2f} | "
        f"{cap['direct_items_per_s']:.1f} ({_sizes(cap['direct_batches'])}) | "
        f"{cap['ratio']:.3f}x |",
        f"| {IMAGE.graph} (images) | {args.image_concurrency} | {img['triton_items_per_s']:.1f} | "
        f"{img['triton_p50_ms']:.1f} / {img['triton_p99_ms']:.1f} | {img['formed_batch']:.2f} | "
        f"{img['direct_items_per_s']:.1f} ({_sizes(img['direct_batches'])}) | "
        f"{img['ratio']:.3f}x |",
        "",
        "Executions per inference over the perf_analyzer runs (server statistics; median of rounds, "
        "totals over all rounds):",
        "",
        "| model | inferences | executions | executions / inferences |",
        "|---|---:|---:|---:|",
        *(f"| {m} | {c['inferences']} | {c['executions']} | {c['executions_per_inference']:.3f} |"
          for s in (cap, img) for m, c in s["counts"].items()),
        "",
        "Batches the encoders ran (executions per batch size, all rounds): " + "; ".join(
            f"{model} " + ", ".join(f"{n} x {b}" for b, n in s["batches"].items())
            for model, s in ((TEXT.graph, cap), (IMAGE.graph, img))) + ".",
        "",
        *_cores_lines(summary, result["machine"]["logical_cpus"], {"captions": CAPTION_ENCODER,
                                                                    "images": IMAGE.graph}),
        "Targets: " + "; ".join(f"{k}: {'met' if v else 'NOT met'}"
                                for k, v in result["targets"].items()) + ".",
        "",
        f"Captions: perf_analyzer sends raw strings to `{CAPTION_ENCODER}` (tokenizer + text_encoder); the "
        "direct side tokenises with vsrn_deploy's vocabulary in its own process, then runs the text encoder.",
        "",
        "perf_analyzer: " + "; ".join(f"`{c}`" for c in result["perf_analyzer"]["commands"].values()),
        "",
        f"versions: {json.dumps(result['machine']['versions'])}",
        "",
        f"Command: `{command}`",
    ]
    write_atomic(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
