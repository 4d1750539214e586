"""GPU + TensorRT end-to-end check (under 5 minutes on one data-centre GPU).

1. export: a checkpoint (or, without one, a randomly initialised model at the paper's COCO sizes)
   to FP32 + FP16 ONNX graphs (skipped when --onnx-dir already holds an export);
2. build-engine: FP16 plans for both encoders (and FP32 ones with --fp32-too), each inspected for
   its precision, with a timing cache;
3. validate: torch FP32 on the CPU (the reference) against ort (CPU) and trt, on synthetic images;
4. time: TensorRT vs torch-deploy FP16 on the same GPU, side by side, per encoder and batch
   (warm-up, then timed calls each followed by a stream sync; p50/p90/p99 and items/s).

Everything goes into one JSON file (--out, default $OUT/gpu_trt_check.json or ./gpu_trt_check.json),
with the GPU, driver, TensorRT, torch and onnxruntime versions beside every figure.

    python benchmarks/gpu_trt_check.py                        # random paper-size model
    python benchmarks/gpu_trt_check.py --checkpoint model_best.pth.tar --images 1000
    python benchmarks/gpu_trt_check.py --variant f30k         # the FP16-hard Flickr30K variant

Needs: an NVIDIA GPU with its driver, `pip install 'vsrn-deploy[trt]'` (tensorrt, cuda-python,
polygraphy) and a CUDA build of torch for the torch-deploy comparison (the script skips that row
without one).

Status: this script has NOT been run against a real GPU yet; no engine has been built or run by
this project. What has run (no GPU): `pytest -m trt_api`, which checks every TensorRT call of the
builder and of the runner (Polygraphy's TrtRunner included) against the real Python bindings of
TensorRT 10.13.3.9 and 11.4.0.106 with stub libraries. That proves names, arities and argument
types, not that TensorRT builds our graphs, picks FP16 kernels or computes the right numbers:
those are what this script measures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _machine() -> dict:
    import importlib.metadata as md

    info = {"python": platform.python_version(), "host": platform.node(), "cpu": platform.processor()}
    for pkg in ("tensorrt", "torch", "onnxruntime", "onnxruntime-gpu", "cuda-python", "numpy"):
        try:
            info[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    try:
        from vsrn_deploy.backend.cuda import cudart, gpu_info

        gpu = gpu_info()
        info["gpu"] = gpu.name
        info["compute_capability"] = gpu.compute_capability
        err, driver = cudart().cudaDriverGetVersion()
        info["cuda_driver"] = f"{driver // 1000}.{(driver % 1000) // 10}"
    except Exception as exc:  # report, do not hide: the timings below need a GPU anyway
        info["gpu_error"] = str(exc)
    return info


def _make_checkpoint(variant: str, folder: Path, tiny: bool = False, gcn_std: float = 0.0) -> Path:
    """A random paper-size model in the authors' checkpoint layout (no released weights needed)."""
    import torch

    from vsrn_deploy.data.vocab import Vocabulary, build_vocab
    from vsrn_deploy.model.checkpoint import save_authors_checkpoint
    from vsrn_deploy.model.config import VSRNConfig
    from vsrn_deploy.model.vsrn import VSRN

    torch.manual_seed(0)
    cfg = VSRNConfig.flickr30k() if variant == "f30k" else VSRNConfig()
    if tiny:  # plumbing smoke test on any machine
        cfg = VSRNConfig.tiny(fc_norm=cfg.fc_norm, final_bn=cfg.final_bn, data_name=cfg.data_name)
    words = [f"w{i}" for i in range(cfg.vocab_size - 4)]
    vocab: Vocabulary = build_vocab(words, threshold=1)
    model = VSRN(cfg.replace(vocab_size=len(vocab)), with_caption=False).eval()
    if gcn_std > 0:  # non-trivial GCN residual branches (the authors' init is zero: identity layers)
        with torch.no_grad():
            for gcn in model.img_enc.gcn_layers:
                gcn.W[1].weight.normal_(0, gcn_std)
    path = folder / "model_best.pth.tar"
    save_authors_checkpoint(path, model)
    vocab.save_json(folder / "vocab.json")
    return path


def _time(runner, feed: dict, warmup: int, iters: int) -> dict:
    for _ in range(warmup):
        runner.infer(feed)
    runner.synchronize()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        runner.infer(feed)  # copies in, runs, copies out and synchronises
        runner.synchronize()
        times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1e3
    batch = len(next(iter(feed.values())))
    return {"p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
            "p99_ms": float(np.percentile(ms, 99)), "items_per_s": float(batch / np.median(ms) * 1e3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", help="checkpoint to export (default: random paper-size model)")
    ap.add_argument("--variant", choices=("coco", "f30k"), default="coco", help="random model variant")
    ap.add_argument("--onnx-dir", help="an existing export (skips the export step)")
    ap.add_argument("--work", help="working folder (default: a temporary one)")
    ap.add_argument("--images", type=int, default=500, help="synthetic validation images (x5 captions)")
    ap.add_argument("--batches", default="1,8,32,128", help="timed batch sizes")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--opt-level", type=int, default=3, help="TensorRT builder optimisation level")
    ap.add_argument("--fp32-too", action="store_true", help="also build and validate FP32 plans")
    ap.add_argument("--out", help="JSON report path")
    ap.add_argument("--tiny", action="store_true", help="tiny random model (checks the plumbing only)")
    ap.add_argument("--gcn-std", type=float, default=0.0,
                    help="random model: std of the GCN residual BN weights (0: the authors' init, "
                         "identity GCN layers; 0.5 stresses FP16)")
    args = ap.parse_args()
    # the library's progress lines (export, engine build, validation), stamped like _say's
    logging.basicConfig(level=logging.WARNING, format="[%(asctime)s] %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("vsrn_deploy").setLevel(logging.INFO)

    from vsrn_deploy.backend.registry import make_runner
    from vsrn_deploy.core.errors import CheckFailed, VsrnError
    from vsrn_deploy.data.synthetic_inputs import captions, image_feed, region_features, text_feed
    from vsrn_deploy.engine.builder import BuildSettings, build_engines
    from vsrn_deploy.engine.profiles import ProfileSpec
    from vsrn_deploy.jobs.validate import ValidateConfig, format_report, run_validation

    t_start = time.perf_counter()
    out_dir = Path(os.environ.get("OUT", "."))
    out = Path(args.out) if args.out else out_dir / "gpu_trt_check.json"
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="vsrn_trt_"))
    report: dict = {"machine": _machine(), "steps": {}, "passed": False}
    _say(f"machine: {report['machine']}")
    try:
        # 1. export
        if args.onnx_dir:
            export = Path(args.onnx_dir)
        else:
            from vsrn_deploy.export import ExportConfig, export_model

            ckpt = (Path(args.checkpoint) if args.checkpoint
                    else _make_checkpoint(args.variant, work, args.tiny, args.gcn_std))
            export = work / "export"
            vocab = None if args.checkpoint else str(work / "vocab.json")
            t0 = time.perf_counter()
            export_cfg = ExportConfig(precision="all", vocab=vocab, max_batch=32)
            export_model(ckpt, export, export_cfg)
            report["steps"]["export_s"] = time.perf_counter() - t0
        # 2. build
        engines = work / "engines"
        profiles = (ProfileSpec(batch=(1, 32, 128), tokens=(2, 16, 64)),)
        precisions = ["fp16", "fp32"] if args.fp32_too else ["fp16"]
        for precision in precisions:
            t0 = time.perf_counter()
            settings = BuildSettings(precision=precision, profiles=profiles, opt_level=args.opt_level,
                                     timing_cache=str(work / "timing.cache"))
            results = build_engines(export, engines, settings)
            report["steps"][f"build_{precision}_s"] = time.perf_counter() - t0
            report[f"engines_{precision}"] = {r.encoder: r.sidecar for r in results}
        # 3. validate (reference on the CPU in FP32; trt on the GPU)
        report["validation"] = {}
        all_passed = True
        for precision in precisions:
            cfg = ValidateConfig(checkpoint=None, onnx_dir=str(export), engine_dir=str(engines),
                                 backends=("ort", "trt") if precision == "fp16" else ("trt",),
                                 synthetic=args.images, batch_size=32, device="cpu")
            if precision == "fp32":  # validate the FP32 plans: hide the FP16 ones
                tmp = work / "engines_fp32"
                tmp.mkdir(exist_ok=True)
                for f in engines.glob("*.fp32.*"):
                    (tmp / f.name).write_bytes(f.read_bytes())
                cfg = dataclasses.replace(cfg, engine_dir=str(tmp))
            t0 = time.perf_counter()
            rep = run_validation(cfg)
            report["steps"][f"validate_{precision}_s"] = time.perf_counter() - t0
            print(format_report(rep))
            report["validation"][precision] = rep
            all_passed &= rep["passed"]
        # 4. time TensorRT against torch-deploy FP16 on the same GPU
        import torch

        from vsrn_deploy.model.checkpoint import load_model

        manifest = json.loads((export / "manifest.json").read_text())
        mcfg = manifest["config"]
        model = None
        if torch.cuda.is_available():
            model = load_model(manifest["source"]["path"])
        batches = [int(b) for b in args.batches.split(",")]
        rows = []
        for encoder in ("image", "text"):
            for b in batches:
                if encoder == "image":
                    feed = image_feed(region_features(b, mcfg["num_regions"], mcfg["img_dim"]))
                else:
                    feed = text_feed(captions(b, mcfg["vocab_size"], min_tokens=3, max_tokens=24))
                backends = [("trt", {"engine_dir": engines, "device": "cuda", "dtype": "fp16"})]
                if model is not None:
                    backends.append(("torch-deploy", {"model": model, "device": "cuda", "dtype": "fp16"}))
                for backend, kw in backends:
                    with make_runner(backend, encoder, **kw) as runner:
                        stats = _time(runner, feed, args.warmup, args.iters)
                    rows.append({"encoder": encoder, "backend": backend, "precision": "fp16", "batch": b,
                                 **stats})
                    _say(f"{encoder} {backend} b={b}: p50 {stats['p50_ms']:.3f} ms, "
                         f"{stats['items_per_s']:.0f} items/s")
        report["results"] = rows
        report["passed"] = bool(all_passed)
    except (VsrnError, CheckFailed) as exc:
        report["error"] = f"{type(exc).__name__}: {exc}"
        _say(report["error"])
    report["total_s"] = time.perf_counter() - t_start
    from vsrn_deploy.bench.report import write_atomic

    write_atomic(out, json.dumps(report, indent=2, default=str) + "\n")
    _say(f"wrote {out} ({report['total_s']:.0f} s, passed={report['passed']})")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
