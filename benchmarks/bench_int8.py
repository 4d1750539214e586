"""INT8 on the CPU at the paper's sizes: ort-int8 vs ort FP32 vs eager torch vs OpenVINO, side by side.

Exports a randomly initialised COCO-size model with `--precision int8` (its checks included: the
accuracy figures come from them), then times at 2 threads, all candidates in one run: per round, a
block of consecutive calls of each candidate in turn. The steady state (p50, from the third call of
a block: weights warm, as a serving process sees it) and the cold call (the first of each block,
right after the other candidates pushed its weights out of the caches) are both reported.

- image, batch 1 and 32: torch (eager), ort (FP32 graph), ort-int8, the same FP32 graph in OpenVINO
  (FP32 inference precision), and INT8 forms within reach: the ort-int8 graph and a static QDQ graph
  in OpenVINO, a static (calibrated activation) QOperator graph in ONNX Runtime, and the ort-int8
  graph with its recurrent matrix in 4 bits (MatMulNBits; a comparison row, not made by the export);
- text, batch 1 and 32: torch, ort (the GRU node), the Loop form in FP32, ort-int8 (Loop, INT8).

Also the roofline: weight bytes read per call (the recurrent matrices re-read at every step) and the
achieved GB/s at batch 1; GOP/s at batch 32 against an INT8 GEMM (ONNX Runtime MatMulInteger) and an
FP32 GEMM measured in the same run; and the batch-1 floor: every weight MatMul timed as an INT8
MatMul at its shape, the recurrence's steps one after another. Load average is recorded around every
block. OpenVINO is not a dependency: `.venv/bin/pip install openvino` first (its rows are skipped,
with the reason, without it).

    .venv/bin/python benchmarks/bench_int8.py                     # the full run (several minutes)
    .venv/bin/python benchmarks/bench_int8.py --work /tmp/int8 --reuse   # time the same export again
    .venv/bin/python benchmarks/bench_int8.py --tiny --rounds 1 --block 3 --out-dir /tmp/int8   # smoke
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from vsrn_deploy.backend.onnxrt import cpu_session
from vsrn_deploy.bench import flops as _flops
from vsrn_deploy.bench.core import image_feed, random_model, text_feed
from vsrn_deploy.bench.machine import (
    load_average,
    machine_info,
    measure_int8_gemv,
    measure_int8_matmul_peak,
    measure_matmul_peak,
    measure_read_bandwidth,
)
from vsrn_deploy.bench.report import write_atomic
from vsrn_deploy.model.config import VSRNConfig

TARGETS = [  # (encoder, batch, candidate, baseline, minimum ratio of p50)
    ("image", 1, "ort-int8", "ort", 4.0),
    ("image", 1, "ort-int8", "torch", 10.0),
    ("image", 1, "ort-int8", "openvino", 3.0),
    ("image", 32, "ort-int8", "ort", 2.5),
    ("text", 1, "ort-int8", "ort", 1.0),
    ("text", 1, "ort-int8", "ort", 2.0),  # the goal
]


def _weight_bytes_per_call(model: onnx.ModelProto, steps: int = 1) -> int:
    """Bytes of weight initializers the matmuls read in one call (a Loop body's read `steps` times)."""
    def walk(graph: onnx.GraphProto, inits: dict[str, int], repeat: int) -> int:
        inits = {**inits, **{i.name: int(np.prod(i.dims)) * onnx.helper.tensor_dtype_to_np_dtype(
            i.data_type).itemsize for i in graph.initializer}}
        total = 0
        for node in graph.node:
            if node.op_type in ("MatMul", "MatMulInteger", "Gemm", "GRU"):
                total += repeat * sum(inits.get(name, 0) for name in node.input
                                      if inits.get(name, 0) > 4096)
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    total += walk(attr.g, inits, repeat * steps)
        return total

    return walk(model.graph, {}, 1)


def _static_qoperator(fp32_path: Path, nodes: list[str], calib: np.ndarray, out: Path, fmt: str) -> Path:
    """quantize_static of the same MatMuls (per channel QInt8 weights, calibrated QUInt8 activations)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"region_features": calib[i : i + 4]} for i in range(0, len(calib), 4)])

        def get_next(self):
            return next(self.items, None)

    quantize_static(str(fp32_path), str(out), Reader(), quant_format=getattr(QuantFormat, fmt),
                    op_types_to_quantize=["MatMul"], nodes_to_quantize=nodes, per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
    return out


def _int4_recurrent(fp32_path: Path, int8_groups: list[str], out: Path) -> Path:
    """The ort-int8 image graph with the recurrent matrix in 4 bits (MatMulNBits, blocks of 32): a
    comparison row for "fewer bits than INT8" (the export does not make it)."""
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    from vsrn_deploy.export import int8 as q

    merged = q.merge_recurrent(onnx.load(str(fp32_path)))
    groups, _ = q.weight_groups(merged)
    model = q.quantize_nodes(merged, [n for g in int8_groups if g != q.MERGED_WH for n in groups[g]])
    config = DefaultWeightOnlyQuantConfig(block_size=32, is_symmetric=True, accuracy_level=4, bits=4)
    with q.quiet_quantizer():
        quantizer = MatMulNBitsQuantizer(model, bits=4, block_size=32, is_symmetric=True, accuracy_level=4,
                                         nodes_to_include=groups[q.MERGED_WH], algo_config=config)
        quantizer.process()
    onnx.save(quantizer.model.model, str(out))
    return out


def _timed(cands: dict[str, Any], feed: dict[str, np.ndarray], rounds: int, block: int,
           settle: int = 2) -> dict:
    """Latency (ms) of each candidate, side by side: per round, `block` consecutive calls of each in turn.

    Steady state (p50/p90/min): the calls from the `settle`-th of each block on, the candidate's
    weights warm in the caches, as in a server that runs one model (and as trtexec or perf_analyzer
    time after their warm-up). Cold (cold_p50_ms): the first call of each block, right after the other
    candidates ran and pushed this one's weights out of the caches.
    """
    for fn in cands.values():
        fn(feed)
    steady: dict[str, list[float]] = {name: [] for name in cands}
    cold: dict[str, list[float]] = {name: [] for name in cands}
    for _ in range(rounds):
        for name, fn in cands.items():
            for i in range(block):
                t0 = time.perf_counter()
                fn(feed)
                ms = (time.perf_counter() - t0) * 1e3
                if i == 0:
                    cold[name].append(ms)
                elif i >= settle:
                    steady[name].append(ms)
    return {name: {"p50_ms": float(np.percentile(s, 50)), "p90_ms": float(np.percentile(s, 90)),
                   "min_ms": float(np.min(s)), "iters": len(s),
                   "cold_p50_ms": float(np.percentile(cold[name], 50)), "cold_iters": len(cold[name])}
            for name, s in steady.items()}


def _int8_floor(cfg: VSRNConfig, threads: int, text_steps: int, seconds: float = 1.5) -> dict[str, Any]:
    """The least time the batch-1 graphs can take with ONNX Runtime's INT8 MatMuls on this machine.

    The recurrence: each GRU step is one GEMV of the (D, 3D) INT8 recurrent matrix that needs the
    previous step's state, k - 1 steps for the image (h0 = 0 needs none), one per token for the text;
    the measured GEMV (weights warm) times the steps, beside the rate plain reads of a buffer that
    size reach. The image graph: every weight MatMul of a batch-1 call timed as an INT8 MatMul at its
    shape (fc, the GCN projections, the GRU input projection over the k regions, the recurrence), as
    if every weight were INT8 and nothing else in the graph cost anything.
    """
    d, k, f = cfg.embed_size, cfg.num_regions, cfg.img_dim
    gemv = measure_int8_gemv(d, 3 * d, threads, seconds=seconds)
    read = measure_read_bandwidth(d * 3 * d, threads, seconds=seconds)
    steps = k - 1 if cfg.img_pool == "gru" else 0
    shapes = {"fc": (k, f, d, 1), "gcn projections": (k, d, 3 * d, cfg.gcn_layers)}
    if cfg.img_pool == "gru":
        shapes["gru input projection"] = (k, d, 3 * d, 1)
    parts = {name: n * measure_int8_gemv(kk, nn, threads, seconds=seconds / 3, m=m)["ms"]
             for name, (m, kk, nn, n) in shapes.items() if n}
    parts["gru recurrence"] = steps * gemv["ms"]
    return {"gemv": gemv, "read": read, "matrix_bytes": d * 3 * d, "image_steps": steps,
            "text_steps": text_steps, "image_recurrence_ms": steps * gemv["ms"],
            "text_floor_ms": text_steps * gemv["ms"], "image_parts_ms": parts,
            "image_floor_ms": sum(parts.values())}


def _openvino(threads: int) -> tuple[Any, str | None]:
    try:
        import openvino as ov
    except ImportError as exc:
        return None, f"openvino not installed ({exc}); .venv/bin/pip install openvino"
    return ov, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=8,
                        help="rounds at batch 1 (batch 32: /2); each candidate runs --block calls per round")
    parser.add_argument("--block", type=int, default=8, help="consecutive calls per candidate per round "
                        "(batch 32: /2); the first is the cold call, the steady state starts at the third")
    parser.add_argument("--out-dir", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--work", default=None, help="folder for the export (default: a temporary one)")
    parser.add_argument("--reuse", action="store_true",
                        help="time the export already in --work (same sizes, same seed) instead of exporting")
    args = parser.parse_args(argv)
    import torch

    from vsrn_deploy.backend.registry import make_runner
    from vsrn_deploy.export import ExportConfig, export_loaded
    from vsrn_deploy.export.int8 import build_text_loop

    torch.set_num_threads(args.threads)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    logging.basicConfig(level=logging.WARNING, format="%(message)s")  # the exporter's progress lines
    logging.getLogger("vsrn_deploy").setLevel(logging.INFO)
    cfg = VSRNConfig.tiny() if args.tiny else VSRNConfig()
    work = Path(args.work or tempfile.mkdtemp(prefix="vsrn-int8-bench-"))
    export_dir = work / "export"
    model = random_model(cfg, 0)
    model.caption = None
    report: dict[str, Any] = {"schema": "vsrn-deploy.bench-int8/1",
                              "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                              "machine": machine_info(args.threads), "model": {"source": "random init",
                              "sizes": "tiny" if args.tiny else "paper (COCO)", "config": cfg.to_dict()},
                              "load_average": {"start": load_average()}, "results": [], "skipped": []}
    info_path = work / "export_info.json"
    if args.reuse and info_path.is_file() and (export_dir / "manifest.json").is_file():
        report["export"] = {**json.loads(info_path.read_text()), "reused": True}
        log(f"reusing the export in {export_dir} (made in {report['export']['seconds']:.0f} s)")
    else:
        t0 = time.perf_counter()
        options = ExportConfig(precision="int8", max_batch=4, calibration_samples=16,
                               retrieval_images=500 if args.tiny else 100)
        result = export_loaded(model, None, export_dir, options)
        report["export"] = {"seconds": time.perf_counter() - t0, "int8": result.manifest["int8"],
                            "parity": result.manifest["parity"], "load_average_end": load_average()}
        write_atomic(info_path, json.dumps(report["export"], indent=2, default=float) + "\n")
    log(f"exported in {report['export']['seconds']:.0f} s")

    peak = {"float32": measure_matmul_peak(args.threads, seconds=2.0),
            "int8": measure_int8_matmul_peak(args.threads, seconds=2.0)}
    report["machine"]["peaks"] = peak
    log(f"peaks: fp32 {peak['float32']['gflops']:.0f} GFLOP/s, int8 {peak['int8']['gops']:.0f} GOP/s")

    # candidates ---------------------------------------------------------------------------------
    fp32_image, int8_image = export_dir / "image_encoder.onnx", export_dir / "image_encoder.int8.onnx"
    fp32_text = export_dir / "text_encoder.onnx"
    runners = {(enc, b): make_runner(b, enc, model=model, onnx_dir=export_dir, threads=args.threads)
               for enc in ("image", "text") for b in ("torch", "ort", "ort-int8")}
    for r in runners.values():
        r.activate()
    calib = np.maximum(np.random.default_rng(5).standard_normal((16, cfg.num_regions, cfg.img_dim),
                                                                  dtype=np.float32), 0)
    int8_nodes = [n for n in (x.name for x in onnx.load(str(fp32_image), load_external_data=False).graph.node)
                  if n not in report["export"]["int8"]["graphs"]["image_encoder"]["fp32_nodes"]
                  and n.endswith("MatMul")]
    static_q = _static_qoperator(fp32_image, int8_nodes, calib, work / "image_static_qop.onnx", "QOperator")
    static_qdq = _static_qoperator(fp32_image, int8_nodes, calib, work / "image_static_qdq.onnx", "QDQ")
    sess_static = cpu_session(static_q, args.threads)
    try:
        chosen = report["export"]["int8"]["graphs"]["image_encoder"]["int8_weights"]
        int4 = _int4_recurrent(fp32_image, chosen, work / "image_int4_recurrent.onnx")
        sess_int4 = cpu_session(int4, args.threads)
    except ImportError as exc:  # onnxruntime's MatMulNBits quantizer needs onnx-ir (the dev extra)
        sess_int4 = None
        report["skipped"].append({"backend": "ort-int4-recurrent",
                                  "reason": f"{exc}; .venv/bin/pip install -e '.[dev]'"})
    loop32 = work / "text_loop_fp32.onnx"
    onnx.save(build_text_loop(onnx.load(str(fp32_text))), str(loop32))
    sess_loop32 = cpu_session(loop32, args.threads)

    def ort_fn(runner):
        return lambda feed: runner.infer(feed)

    def sess_fn(sess):
        return lambda feed: sess.run(None, feed)

    image_cands: dict[str, Any] = {"torch": ort_fn(runners[("image", "torch")]),
                                   "ort": ort_fn(runners[("image", "ort")]),
                                   "ort-int8": ort_fn(runners[("image", "ort-int8")]),
                                   "ort-int8-static": sess_fn(sess_static)}
    if sess_int4 is not None:
        image_cands["ort-int4-recurrent"] = sess_fn(sess_int4)
    ov, why = _openvino(args.threads)
    if ov is None:
        report["skipped"].append({"backend": "openvino", "reason": why})
    else:
        core = ov.Core()
        props = {"INFERENCE_NUM_THREADS": args.threads, "PERFORMANCE_HINT": "LATENCY"}
        for name, path, extra in (("openvino", fp32_image, {"INFERENCE_PRECISION_HINT": "f32"}),
                                  ("openvino-int8-static", static_qdq, {"INFERENCE_PRECISION_HINT": "f32"}),
                                  ("openvino-int8-dynamic", int8_image, {"INFERENCE_PRECISION_HINT": "f32"})):
            try:
                compiled = core.compile_model(str(path), "CPU", {**props, **extra})
                request = compiled.create_infer_request()
                image_cands[name] = (lambda req: lambda feed: req.infer(dict(feed)))(request)
            except Exception as exc:  # noqa: BLE001 - a form OpenVINO cannot read is reported
                reason = f"{type(exc).__name__}: {str(exc)[:300]}"
                report["skipped"].append({"backend": name, "reason": reason})
        report["machine"]["versions"]["openvino"] = ov.__version__
    text_cands = {"torch": ort_fn(runners[("text", "torch")]), "ort": ort_fn(runners[("text", "ort")]),
                  "ort-loop-fp32": sess_fn(sess_loop32), "ort-int8": ort_fn(runners[("text", "ort-int8")])}

    # accuracy of every image form on held-out inputs, against eager torch ------------------------
    x = np.maximum(np.random.default_rng(9).standard_normal((8, cfg.num_regions, cfg.img_dim),
                                                             dtype=np.float32), 0)
    ref = image_cands["torch"]({"region_features": x})["image_embedding"]
    accuracy = {}
    for name, fn in image_cands.items():
        out = fn({"region_features": x})
        got = out["image_embedding"] if isinstance(out, dict) and "image_embedding" in out else (
            out[0] if isinstance(out, list) else next(iter(out.values())))
        got = np.asarray(got).reshape(ref.shape)
        cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
        accuracy[name] = float(cos.min())
    report["image_min_cosine_vs_torch"] = accuracy
    log(f"image min row cosine vs torch (8 images): {accuracy}")

    # timing -----------------------------------------------------------------------------------
    for encoder, cands in (("image", image_cands), ("text", text_cands)):
        for batch in (1, 32):
            feed = image_feed(cfg, batch, 0) if encoder == "image" else text_feed(cfg, batch, 0)
            chosen = {k: v for k, v in cands.items() if not (batch == 32 and k == "torch")}
            rounds = args.rounds if batch == 1 else max(3, args.rounds // 2)
            block = args.block if batch == 1 else max(3, args.block // 2)
            load0 = load_average()
            stats = _timed(chosen, feed, rounds, block)
            load1 = load_average()
            for name, s in stats.items():
                row = {"encoder": encoder, "batch": batch, "backend": name, **s,
                       "items_per_s": batch / (s["p50_ms"] / 1e3), "load_average": [load0, load1]}
                report["results"].append(row)
                log(f"{encoder} b{batch} {name:22s} p50 {s['p50_ms']:9.2f} ms  "
                    f"cold {s['cold_p50_ms']:9.2f} ms  (load {load0:.1f}->{load1:.1f})")
    report["load_average"]["end"] = load_average()

    # roofline --------------------------------------------------------------------------------------
    width = int(text_feed(cfg, 1, 0)["token_ids"].shape[1])
    graphs = {("image", "ort"): (fp32_image, 1), ("image", "ort-int8"): (int8_image, 1),
              ("text", "ort"): (fp32_text, 1),
              ("text", "ort-int8"): (export_dir / "text_encoder.int8.onnx", width),
              ("text", "ort-loop-fp32"): (loop32, width)}
    roof = {}
    for (encoder, name), (path, steps) in graphs.items():
        m = onnx.load(str(path))
        per_call = _weight_bytes_per_call(m, steps)
        if encoder == "text" and name == "ort":  # the GRU node reads R at every token
            r = next(i for i in m.graph.initializer if i.name == "rnn/l0.R")
            per_call += (width - 1) * int(np.prod(r.dims)) * 4
        p50_1, p50_32 = _p50(report, encoder, name, 1), _p50(report, encoder, name, 32)
        per_item = (_flops.image_encoder_flops(cfg, "deploy") if encoder == "image"
                    else _flops.text_encoder_flops(cfg, int(text_feed(cfg, 32, 0)["token_ids"].shape[1])))
        gops32 = per_item * 32 / (p50_32 / 1e3) / 1e9
        roof[f"{encoder}/{name}"] = {
            "weight_bytes_per_call_b1": per_call, "gb_per_s_b1": per_call / (p50_1 / 1e3) / 1e9,
            "gop_per_s_b32": gops32, "pct_int8_peak_b32": 100 * gops32 / peak["int8"]["gops"],
            "pct_fp32_peak_b32": 100 * gops32 / peak["float32"]["gflops"]}
    report["roofline"] = roof
    report["floor"] = _int8_floor(cfg, args.threads, width, seconds=0.2 if args.tiny else 1.5)
    fl = report["floor"]
    log(f"INT8 floor: GEMV {fl['gemv']['ms']:.3f} ms, image recurrence {fl['image_recurrence_ms']:.1f} ms, "
        f"image MatMuls {fl['image_floor_ms']:.1f} ms, text {fl['text_floor_ms']:.1f} ms")

    out_dir = Path(args.out_dir)
    stem = "int8_cpu" + ("_tiny" if args.tiny else "")
    write_atomic(out_dir / f"{stem}.json", json.dumps(report, indent=2, default=float) + "\n")
    write_atomic(out_dir / f"{stem}.md", to_markdown(report))
    for r in runners.values():
        r.deactivate()
    print(to_markdown(report))
    return 0


def _p50(report: dict, encoder: str, backend: str, batch: int, key: str = "p50_ms") -> float | None:
    for r in report["results"]:
        if (r["encoder"], r["backend"], r["batch"]) == (encoder, backend, batch):
            return r.get(key)
    return None


def to_markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    peaks = m.get("peaks", {})
    la = report["load_average"]
    lines = ["## INT8 on the CPU (benchmarks/bench_int8.py)", "",
             f"Machine: {m['cpu']} ({m['physical_cores']} cores), threads {m['threads']}, SIMD "
             f"{', '.join(m['cpu_flags'])}; load average {la['start']:.1f} at start, {la['end']:.1f} at end "
             f"(other agents share this machine); measured GEMM peaks: fp32 "
             f"{peaks['float32']['gflops']:.0f} GFLOP/s (torch, n=2048), int8 {peaks['int8']['gops']:.0f} "
             f"GOP/s (onnxruntime MatMulInteger, n=2048); "
             + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if k != "vsrn-deploy"), "",
             f"Model: {report['model']['source']}, {report['model']['sizes']} sizes. All candidates timed "
             "side by side in one run on the same inputs: per round, a block of consecutive calls of each "
             "in turn. **p50** is the steady state (from the third call of each block on: the candidate's "
             "weights warm in the caches, as in a server that runs one model, and as trtexec and "
             "perf_analyzer time); "
             "**cold** is the first call of each block, right after the other candidates pushed its weights "
             "out of the caches.", ""]
    for encoder in ("image", "text"):
        rows = [r for r in report["results"] if r["encoder"] == encoder]
        lines += [f"### {encoder} encoder", "", "| backend | batch | p50 ms | p90 ms | items/s | x ort (p50) "
                  "| x torch (p50) | cold p50 ms | x ort (cold) | load avg |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in sorted(rows, key=lambda r: r["batch"]):
            ort_p50 = _p50(report, encoder, "ort", r["batch"])
            torch_p50 = _p50(report, encoder, "torch", r["batch"])
            ort_cold = _p50(report, encoder, "ort", r["batch"], "cold_p50_ms")
            lines.append(f"| {r['backend']} | {r['batch']} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | "
                         f"{r['items_per_s']:.1f} | {ort_p50 / r['p50_ms']:.2f}x | "
                         + (f"{torch_p50 / r['p50_ms']:.2f}x" if torch_p50 else "-")
                         + f" | {r['cold_p50_ms']:.2f} | {ort_cold / r['cold_p50_ms']:.2f}x"
                         + f" | {r['load_average'][0]:.1f}-{r['load_average'][1]:.1f} |")
        lines.append("")
    floor = report.get("floor")
    lines += ["### Targets (ratios measured side by side in this run; met: steady-state p50)", "",
              "| target | steady p50 | cold | met | at best (floor) |", "|---|---:|---:|---|---:|"]
    for encoder, batch, cand, base, want in TARGETS:
        a, b = _p50(report, encoder, cand, batch), _p50(report, encoder, base, batch)
        ac, bc = (_p50(report, encoder, cand, batch, "cold_p50_ms"),
                  _p50(report, encoder, base, batch, "cold_p50_ms"))
        got = None if a is None or b is None else b / a
        cold = None if ac is None or bc is None else bc / ac
        best = "-"
        if floor and batch == 1 and b is not None and floor[f"{encoder}_floor_ms"] > 0:
            best = f"{b / floor[f'{encoder}_floor_ms']:.2f}x"
        lines.append(f"| {encoder} batch {batch}: {cand} >= {want}x {base} | "
                     f"{'-' if got is None else f'{got:.2f}x'} | {'-' if cold is None else f'{cold:.2f}x'} | "
                     f"{'not measured' if got is None else ('yes' if got >= want else 'no')} | {best} |")
    if floor:
        g, rd = floor["gemv"], floor["read"]
        parts = ", ".join(f"{name} {ms:.1f}" for name, ms in floor["image_parts_ms"].items())
        lines += ["", "### The batch-1 floor", "",
                  "Each GRU step is one GEMV of the INT8 recurrent matrix "
                  f"({floor['matrix_bytes'] / 1e6:.1f} MB), and it needs the previous step's state, so the "
                  f"steps run one after another: {floor['image_steps']} for the image (h0 = 0 needs none), "
                  f"one per token for the text ({floor['text_steps']} here). Measured in this run, weights "
                  f"warm: that GEMV (DynamicQuantizeMatMul, {g['threads']} threads) takes {g['ms']:.3f} ms "
                  f"({g['gb_per_s']:.1f} GB/s of weights), and plain reads of a buffer that size run at "
                  f"{rd['gb_per_s']:.1f} GB/s (the GEMV streams its weights at "
                  f"{100 * g['gb_per_s'] / rd['gb_per_s']:.0f} % of that rate). So the image recurrence "
                  f"alone takes at least {floor['image_recurrence_ms']:.1f} ms and the text one "
                  f"{floor['text_floor_ms']:.1f} ms in INT8 here. Every weight MatMul of a batch-1 image "
                  f"call timed as an INT8 MatMul at its shape (ms: {parts}) sums to "
                  f"{floor['image_floor_ms']:.1f} ms, as if every weight were INT8 and nothing else in the "
                  "graph cost anything. \"at best\" above is the baseline's p50 over that floor (text: "
                  "over the recurrence): no graph built from ONNX Runtime's INT8 MatMuls reaches a ratio "
                  "above it on this machine."]
    lines += ["", "### Roofline", "", "| graph | weight bytes per call (b1) | GB/s (b1) | GOP/s (b32) | "
              "% int8 GEMM peak | % fp32 GEMM peak |", "|---|---:|---:|---:|---:|---:|"]
    for name, r in report["roofline"].items():
        lines.append(f"| {name} | {r['weight_bytes_per_call_b1'] / 1e6:,.0f} MB | {r['gb_per_s_b1']:.1f} | "
                     f"{r['gop_per_s_b32']:.0f} | {r['pct_int8_peak_b32']:.0f} | "
                     f"{r['pct_fp32_peak_b32']:.0f} |")
    ex = report["export"]
    lines += ["", "### Accuracy", "",
              f"Export (`--precision int8`, its checks passed) took {ex['seconds']:.0f} s. "
              "Image min row cosine vs eager torch on 8 held-out images: "
              + ", ".join(f"{k} {v:.6f}" for k, v in report["image_min_cosine_vs_torch"].items()), ""]
    for graph, g in ex["int8"]["graphs"].items():
        lines.append(f"- {graph}: INT8 weights {g['int8_weights']}; FP32 by data: "
                     + (", ".join(f"{w} ({d['loss']:.2g})" for w, d in g["groups"].items() if not d["int8"])
                        or "none")
                     + f"; calibration loss {g['calibration_loss']:.3g} "
                     f"(all INT8: {g['calibration_loss_all_int8']})")
    res = ex["parity"]["results"]
    for key, outs in res.items():
        if "int8.onnx" in key:
            lines.append(f"- {key}: " + ", ".join(f"{o} min cosine {v['min_cosine']:.6f}"
                                                  for o, v in outs.items()))
    ret = (ex["parity"].get("retrieval") or {}).get("ort-int8")
    if ret:
        lines.append(f"- retrieval set: top-1 agreement {ret['top1_agreement']:.4f} "
                     f"(raw {ret['top1_agreement_raw']:.4f}), "
                     + ", ".join(f"{k} {v['eager']:.1f} -> {v['graph']:.1f}" for k, v in ret.items()
                                 if isinstance(v, dict)))
    if report["skipped"]:
        lines += ["", "Skipped: " + "; ".join(f"{s['backend']}: {s['reason']}" for s in report["skipped"])]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
