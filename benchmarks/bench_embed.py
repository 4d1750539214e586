"""`vsrn-deploy embed` on a local Ray (2 actors x 1 thread) against single-process encoding (2 threads).

    .venv/bin/python benchmarks/bench_embed.py --work /tmp/bench_embed [--images 1600] [--shards 8]

A random VSRN at the paper's sizes (36 regions x 2048 features, a 2048-d joint space; --embed-size
512 for a quicker look) is exported in FP32; --images sparse synthetic feature rows are written as
--shards .npy shards. Timed, in this order, the same images each time:

1. single process: `ExportEncoders(threads=2)` over the shards, --batch images per call (what
   `vsrn-deploy index` does), with the opening of its ONNX Runtime session (index pays it too; the
   ratios are taken against this) and without it (encoding alone, also reported);
2. embed inside a Ray session started beforehand (`ray.init(num_cpus=2)`): the job as a cluster
   runs it (scan pass, actor start, encoding, parquet, manifest), Ray's own start excluded;
3. embed end to end as the command runs it on a laptop: Ray started and shut down by the job.

Images/s of each and the ratios to (1); the load average before and after (the machine may be
shared), and the largest difference between embed's embeddings and the single process's, read
back from embed's parquet shards (the issue's bound: 1e-6). Results:
benchmarks/results/embed_cpu.{json,md}.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def make_export(work: Path, embed_size: int) -> Path:
    import torch

    from vsrn_deploy.data.vocab import Vocabulary
    from vsrn_deploy.export import ExportConfig, export_model
    from vsrn_deploy.model import VSRN
    from vsrn_deploy.model.checkpoint import save_checkpoint
    from vsrn_deploy.model.config import VSRNConfig

    out = work / "export"
    if (out / "manifest.json").is_file():
        return out
    words = ["<pad>", "<start>", "<end>", "<unk>", "a", "dog", "cat", "red", "blue", "car"]
    vocab = Vocabulary()
    for w in words:
        vocab.add_word(w)
    torch.manual_seed(0)
    model = VSRN(VSRNConfig(vocab_size=len(vocab), embed_size=embed_size, word_dim=64),
                 with_caption=False).eval()
    ckpt = save_checkpoint(work / "model.pt", model, vocab=vocab)
    export_model(ckpt, out, ExportConfig(precision="fp32", max_batch=8, retrieval_images=50,
                                         polygraphy_lint=False))
    return out


def make_shards(work: Path, images: int, shards: int) -> Path:
    folder = work / "shards"
    if folder.is_dir() and len(list(folder.glob("*.npy"))) == shards:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, rows in enumerate(np.array_split(np.arange(images), shards)):
        feats = rng.random((len(rows), 36, 2048), dtype=np.float32) * 3
        feats[rng.random(feats.shape) < 0.77] = 0
        np.save(folder / f"part-{i:03d}.npy", feats)
    return folder


def single_process(export: Path, shards: Path, batch: int) -> tuple[float, float, np.ndarray, str]:
    """(seconds with the session's opening, as `index` pays it; seconds of encoding alone; the
    embeddings in id order; the export's manifest sha256)."""
    from vsrn_deploy.search.encoders import ExportEncoders, FeatureFile

    rows = []
    opened = time.perf_counter()
    with ExportEncoders(export, threads=2) as enc:
        enc.encode_images(np.zeros((1, 36, 2048), np.float32))  # opens the session
        clock = time.perf_counter()
        for path in sorted(glob.glob(str(shards / "*.npy"))):
            for _, block in FeatureFile(path, 36, 2048).batches(batch):
                rows.append(enc.encode_images(block)[0])
        end = time.perf_counter()
        return end - opened, end - clock, np.concatenate(rows), enc.manifest_sha256


def largest_difference(folder: Path, reference: np.ndarray, export: Path, export_sha256: str) -> float:
    """Largest |embed's embedding - the single process's| over every id, read back from embed's
    verified parquet shards (ids in order, every id once: EmbeddingShards checks both)."""
    from vsrn_deploy.artifacts.embeddings import open_embeddings

    shards = open_embeddings(folder, export_sha256, export, reference.shape[1])
    assert len(shards) == len(reference), (len(shards), len(reference))
    worst = 0.0
    for start, block in shards.batches():
        worst = max(worst, float(np.abs(block - reference[start : start + len(block)]).max()))
    return worst


def ray_job(export: Path, shards: Path, out: Path, batch: int) -> float:
    from vsrn_deploy.distributed import EmbedConfig, run_embed

    shutil.rmtree(out, ignore_errors=True)
    clock = time.perf_counter()
    run_embed(EmbedConfig(onnx_dir=str(export), images=str(shards / "*.npy"), out=str(out), workers=2,
                          threads=1, batch=batch))
    return time.perf_counter() - clock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_embed"))
    parser.add_argument("--images", type=int, default=1600)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--embed-size", type=int, default=2048)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "embed_cpu")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    export = make_export(args.work, args.embed_size)
    shards = make_shards(args.work, args.images, args.shards)

    single_s, steady_s, reference, export_sha256 = single_process(export, shards, args.batch)
    n = len(reference)
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        in_session_s = ray_job(export, shards, args.work / "emb_session", args.batch)
    finally:
        ray.shutdown()
    end_to_end_s = ray_job(export, shards, args.work / "emb_cold", args.batch)
    load_after = os.getloadavg()
    differences = {name: largest_difference(args.work / name, reference, export, export_sha256)
                   for name in ("emb_session", "emb_cold")}

    rows = [("single process, ExportEncoders, 2 threads (opening the session included, as index does)",
             single_s),
            ("single process, encoding alone (session opened before the clock)", steady_s),
            ("embed, Ray session already up, 2 actors x 1 thread", in_session_s),
            ("embed end to end (Ray started and stopped by the job), 2 x 1", end_to_end_s)]
    result = {
        "images": n, "shards": args.shards, "batch": args.batch, "embed_size": args.embed_size,
        "regions": 36, "feature_dim": 2048,
        "runs": [{"what": what, "seconds": round(s, 3), "images_per_s": round(n / s, 2),
                  "x_single": round(single_s / s, 3)} for what, s in rows],
        "max_abs_difference_to_single_process": {k: float(f"{v:.3g}") for k, v in differences.items()},
        "equal_within_1e-6": all(v <= 1e-6 for v in differences.values()),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "python": sys.version.split()[0]},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# embed on a local Ray vs one process ({n} images, {args.shards} shards, 36 x 2048 features, "
             f"{args.embed_size}-d, batch {args.batch})", "",
             "| run | seconds | images/s | x single process |", "|---|---:|---:|---:|"]
    lines += [f"| {r['what']} | {r['seconds']:.2f} | {r['images_per_s']:.1f} | {r['x_single']:.2f}x |"
              for r in result["runs"]]
    lines += ["", "Embeddings: the largest |embed - single process| over all "
              f"{n} x {args.embed_size} values, read back from embed's parquet shards: "
              + ", ".join(f"{k} {v:.3g}" for k, v in differences.items())
              + f" ({'within' if result['equal_within_1e-6'] else 'NOT within'} 1e-6; same backend, "
              "ONNX Runtime FP32, 2 threads against 1 per actor)."]
    lines += ["", f"Load average (1, 5, 15 min) before: {result['load_average_before']}, after: "
              f"{result['load_average_after']}; {os.cpu_count()} CPUs; "
              "command: .venv/bin/python benchmarks/bench_embed.py"]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
