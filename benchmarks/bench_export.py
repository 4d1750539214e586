"""Full-size (paper sizes) export benchmark: the authors' eager torch encoders vs the exported FP32
graphs in ONNX Runtime, side by side in one run, plus the export time.

Both runtimes use the same number of threads (default 2, the whole of the reference machine).
Measurements alternate eager / ORT call by call so that load from other processes on a shared CPU
hits both alike. Reports p50/p90/p99 latency and items/s; writes JSON and Markdown.

    .venv/bin/python benchmarks/bench_export.py --out benchmarks/results/export_bench
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _stats(samples: list[float], items: int) -> dict:
    ms = np.array(samples) * 1e3
    p50 = float(np.percentile(ms, 50))
    return {
        "p50_ms": p50,
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "items_per_s": items / (p50 / 1e3),
        "runs": len(samples),
    }


def _side_by_side(eager, ort_fn, runs: int, warmup: int = 2) -> tuple[list[float], list[float]]:
    for _ in range(warmup):
        eager()
        ort_fn()
    e, o = [], []
    for _ in range(runs):
        t = time.perf_counter()
        eager()
        e.append(time.perf_counter() - t)
        t = time.perf_counter()
        ort_fn()
        o.append(time.perf_counter() - t)
    return e, o


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks/results/export_bench", help="output stem (.json, .md)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs-b1", type=int, default=20)
    parser.add_argument("--runs-b32", type=int, default=5)
    parser.add_argument("--variant", choices=["coco", "f30k"], default="coco")
    args = parser.parse_args()

    import onnxruntime as ort

    from vsrn_deploy.bench.report import write_atomic, write_json
    from vsrn_deploy.data.synthetic_inputs import captions, text_feed
    from vsrn_deploy.data.synthetic_inputs import region_features as synthetic_region_features
    from vsrn_deploy.export.exporter import ExportConfig, export_loaded
    from vsrn_deploy.model import VSRN
    from vsrn_deploy.model.config import VSRNConfig

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = VSRNConfig() if args.variant == "coco" else VSRNConfig.flickr30k()
    model = VSRN(cfg, with_caption=False).eval()
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = export_loaded(
            model, None, Path(tmp) / "export", ExportConfig(precision="fp32", max_batch=32)
        )
        export_s = time.perf_counter() - t0
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        image = ort.InferenceSession(
            str(Path(tmp) / "export" / "image_encoder.onnx"), opts, providers=["CPUExecutionProvider"]
        )
        text = ort.InferenceSession(
            str(Path(tmp) / "export" / "text_encoder.onnx"), opts, providers=["CPUExecutionProvider"]
        )
        sizes = {name: entry["bytes"] for name, entry in result.files.items()}

        rows = []
        with torch.no_grad():
            for batch, runs in ((1, args.runs_b1), (32, args.runs_b32)):
                x = synthetic_region_features(batch, cfg.num_regions, cfg.img_dim, seed=batch)
                xt = torch.from_numpy(x)
                e, o = _side_by_side(
                    lambda xt=xt: model.img_enc(xt), lambda x=x: image.run(None, {"region_features": x}), runs
                )
                rows.append(
                    {"encoder": "image", "batch": batch, "torch": _stats(e, batch), "ort": _stats(o, batch)}
                )
            ids, lengths = text_feed(captions(1, cfg.vocab_size, max_tokens=12, seed=1)).values()
            ids_t, len_t = torch.from_numpy(ids), torch.from_numpy(lengths)
            e, o = _side_by_side(
                lambda: model.txt_enc(ids_t, len_t),
                lambda: text.run(None, {"token_ids": ids, "lengths": lengths}),
                args.runs_b1 * 2,
            )
            rows.append(
                {
                    "encoder": "text",
                    "batch": 1,
                    "tokens": int(lengths[0]),
                    "torch": _stats(e, 1),
                    "ort": _stats(o, 1),
                }
            )
    for row in rows:
        row["speedup_p50"] = row["torch"]["p50_ms"] / row["ort"]["p50_ms"]

    import onnx
    import onnxruntime

    report = {
        "machine": {
            "cpu": _cpu_name(),
            "cores": os.cpu_count(),
            "threads": args.threads,
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
            "note": "shared CPU (other processes running); eager and ORT alternate call by call",
        },
        "versions": {
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
            "onnx": onnx.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "model": {
            "variant": args.variant,
            "embed_size": cfg.embed_size,
            "img_dim": cfg.img_dim,
            "regions": cfg.num_regions,
            "gcn_layers": cfg.gcn_layers,
        },
        "precision": "fp32",
        "export": {
            "seconds": export_s,
            "includes": "graph build, checks, TRT lint, write, validation at batch 1/3/5/32",
            "file_bytes": sizes,
        },
        "targets": {"image_b1": 1.6, "image_b32": 1.3, "text_b1": 1.5},
        "results": rows,
    }
    out = Path(args.out)
    write_json(report, out.with_suffix(".json"))
    lines = [
        f"# Export benchmark ({args.variant}, paper sizes, FP32, {args.threads} threads)",
        "",
        f"CPU: {report['machine']['cpu']} ({os.cpu_count()} cores, shared; load average before "
        f"{load_before[0]:.2f}, after {report['machine']['loadavg_after'][0]:.2f})",
        "",
        f"Export time (build + checks + validation at batch 1/3/5/32): {export_s:.1f} s; "
        f"image_encoder.onnx {sizes['image_encoder.onnx'] / 1e6:.0f} MB, "
        f"text_encoder.onnx {sizes['text_encoder.onnx'] / 1e6:.0f} MB",
        "",
        "| encoder | batch | torch eager p50 / p90 / p99 ms | ORT FP32 p50 / p90 / p99 ms "
        "| speedup (p50) | target |",
        "|---|---|---|---|---|---|",
    ]
    targets = {("image", 1): 1.6, ("image", 32): 1.3, ("text", 1): 1.5}
    for r in rows:
        t, o = r["torch"], r["ort"]
        lines.append(
            f"| {r['encoder']} | {r['batch']} | {t['p50_ms']:.1f} / {t['p90_ms']:.1f} / {t['p99_ms']:.1f} | "
            f"{o['p50_ms']:.1f} / {o['p90_ms']:.1f} / {o['p99_ms']:.1f} | {r['speedup_p50']:.2f}x | "
            f">= {targets[(r['encoder'], r['batch'])]}x |"
        )
    lines += [
        "",
        f"versions: torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, "
        f"onnx {onnx.__version__}",
        "",
        "Command: `.venv/bin/python benchmarks/bench_export.py --out benchmarks/results/export_bench`",
    ]
    write_atomic(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
