"""Ablation on synthetic data: mean-pooling vs GRU vs GCN + GRU image encoders, same data, same recipe.

The paper's ablation (COCO 1K, R@1 caption/image retrieval): mean-pool 64.3/49.2, GRU only (GSR)
72.3/59.6, 4 GCN layers + GRU 76.2/62.8. This script trains the three image encoders on the
synthetic relational dataset (`vsrn_deploy.data.synthetic`: the colour of each noun is resolvable
only by pairing regions) and reports test recalls of each run's best-dev snapshot, so one can see
whether region relationship reasoning helps where relations are needed by construction.

    .venv/bin/python benchmarks/ablation.py                 # ~8 min on a shared 2-core machine
    .venv/bin/python benchmarks/ablation.py --epochs 2 --train-images 400   # a smoke run

Writes benchmarks/results/ablation.md (and .json) with the machine, versions and exact command.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from vsrn_deploy.bench.report import write_atomic, write_json
from vsrn_deploy.data.precomp import PrecompSplit
from vsrn_deploy.data.synthetic import generate_dataset
from vsrn_deploy.evaluation.recall import recall_report
from vsrn_deploy.model.checkpoint import load_checkpoint
from vsrn_deploy.model.encode import encode_split
from vsrn_deploy.training import TrainConfig, train

VARIANTS = {  # name -> (gcn_layers, img_pool)
    "mean-pool": (0, "mean"),
    "GRU": (0, "gru"),
    "GCN + GRU": (None, "gru"),  # None: --gcn-layers
}


def lookalike_diagnosis(checkpoint: str | Path, data: str | Path, split: str) -> dict[str, float]:
    """How well a trained model tells an image from its 3 look-alike siblings (chance: 0.25).

    Args:
        checkpoint: a run's model_best.pt.
        data: the synthetic dataset folder (holds ``{split}_groups.npy``).
        split: ``train`` or ``test``.
    Returns:
        ``lookalike_acc`` (share of captions whose own image scores highest among the 4 images of
        its group), mean cosines ``img_sibling_cos`` (image vs sibling images),
        ``cap_same_cos`` (caption vs the other captions of its image) and ``cap_sibling_cos``
        (caption vs the captions of sibling images): equal caption cosines mean the text encoder
        does not separate the siblings' captions.
    """
    loaded = load_checkpoint(checkpoint)
    images, captions = encode_split(loaded.model, PrecompSplit(data, split), vocab=loaded.vocab)
    images = images[::5] if images.shape[0] == captions.shape[0] else images  # (n, D)
    groups = np.load(Path(data) / f"{split}_groups.npy")
    n = images.shape[0]
    members = [np.flatnonzero(groups == groups[i]) for i in range(n)]
    own = np.arange(captions.shape[0]) // 5
    acc = np.mean([members[own[c]][np.argmax(captions[c] @ images[members[own[c]]].T)] == own[c]
                   for c in range(captions.shape[0])])
    sib = [[j for j in members[i] if j != i] for i in range(n)]
    img_cos = np.mean([float(images[i] @ images[j]) for i in range(n) for j in sib[i]])
    same = np.mean([float(captions[5 * i] @ captions[5 * i + k]) for i in range(n) for k in range(1, 5)])
    other = np.mean([float(captions[5 * i] @ captions[5 * j + k]) for i in range(n) for j in sib[i]
                     for k in range(5)])
    return {"lookalike_acc": float(acc), "img_sibling_cos": float(img_cos),
            "cap_same_cos": float(same), "cap_sibling_cos": float(other)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="runs/ablation", help="data and run folders")
    p.add_argument("--out", default="benchmarks/results/ablation.md")
    p.add_argument("--train-images", type=int, default=2000)
    p.add_argument("--test-images", type=int, default=200)
    p.add_argument("--regions", type=int, default=12)
    p.add_argument("--feature-dim", type=int, default=128)
    p.add_argument("--embed-size", type=int, default=128)
    p.add_argument("--gcn-layers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--max-violation", action="store_true",
                   help="hardest negatives (the paper); default: sum over negatives, see the note")
    p.add_argument("--warmup-epochs", type=int, default=0,
                   help="with --max-violation: sum over negatives for the first N epochs")
    p.add_argument("--group-batches", action="store_true",
                   help="batches of whole groups of 4 look-alike images (negatives include siblings)")
    p.add_argument("--variants", default=",".join(VARIANTS),
                   help="comma-separated subset of: " + ", ".join(VARIANTS))
    p.add_argument("--generation-loss", action="store_true", help="add L_G (slower)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 avoids spinning on shared CPUs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--diagnose", nargs=3, metavar=("CHECKPOINT", "DATA", "SPLIT"),
                   help="only print how well a trained model separates look-alike siblings")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.diagnose:
        print(json.dumps(lookalike_diagnosis(*args.diagnose)))
        return 0

    work = Path(args.work)
    data = generate_dataset(work / "data", n_train=args.train_images, n_dev=args.test_images,
                            n_test=args.test_images, num_regions=args.regions,
                            feature_dim=args.feature_dim, seed=args.seed, overwrite=True)
    rows = []
    chosen = [v.strip() for v in args.variants.split(",")]
    unknown = [v for v in chosen if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    for name in chosen:
        layers, pool = VARIANTS[name]
        gcn = args.gcn_layers if layers is None else layers
        cfg = TrainConfig(data=str(data), out=str(work / name.replace(" + ", "_").replace("-", "_")),
                          embed_size=args.embed_size, word_dim=64, caption_hidden=64, gcn_layers=gcn,
                          img_pool=pool, epochs=args.epochs, lr_update=max(1, args.epochs - 1),
                          batch_size=args.batch_size, lr=args.lr, max_violation=args.max_violation,
                          warmup_epochs=args.warmup_epochs, group_batches=args.group_batches,
                          generation_loss=args.generation_loss, workers=0, device="cpu", seed=args.seed,
                          progress=False, tensorboard=False)
        start = time.perf_counter()
        best = train(cfg)
        seconds = time.perf_counter() - start
        loaded = load_checkpoint(best)
        images, captions = encode_split(loaded.model, PrecompSplit(data, "test"), vocab=loaded.vocab)
        report = recall_report(images, captions)
        summary = json.loads((Path(cfg.out) / "train_summary.json").read_text())
        rows.append({"variant": name, "gcn_layers": gcn, "img_pool": pool, "seconds": round(seconds, 1),
                     "samples_per_s": round(summary["samples_per_s"], 1),
                     "best_dev_rsum": summary["best_rsum"],
                     **{k: report[k] for k in ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5",
                                               "t2i_r10", "rsum")}})
        print(f"{name}: test rsum {report['rsum']:.1f} ({seconds:.0f} s)", flush=True)

    by = {r["variant"]: r["rsum"] for r in rows}
    nan = float("nan")
    order_holds = by.get("mean-pool", nan) < by.get("GRU", nan) < by.get("GCN + GRU", nan)
    gcn_beats_mean = by.get("GCN + GRU", nan) > by.get("mean-pool", nan)
    command = "python benchmarks/ablation.py " + " ".join(sys.argv[1:] if argv is None else argv)
    machine = {"python": platform.python_version(), "torch": torch.__version__,
               "numpy": np.__version__, "cpu": platform.processor() or platform.machine(),
               "threads": args.threads, "platform": platform.platform()}
    warmup = (f" after {args.warmup_epochs} warm-up epochs of the sum"
              if args.max_violation and args.warmup_epochs else "")
    lines = [
        "# Ablation on synthetic relational data: mean-pool vs GRU vs GCN + GRU",
        "",
        f"Command: `{command.strip()}`",
        "",
        f"Data: `vsrn_deploy.data.synthetic`, {args.train_images} train / {args.test_images} dev / "
        f"{args.test_images} test images (5 captions each), {args.regions} regions x "
        f"{args.feature_dim} features, seed {args.seed}. Test recalls of each run's best-dev snapshot "
        f"(all {args.test_images} test images at once). Chance R@10: {1000 / args.test_images:.1f}.",
        "",
        f"Recipe: embed {args.embed_size}, {args.epochs} epochs, batch {args.batch_size}, Adam lr "
        f"{args.lr:g} (/10 for the last epoch), grad clip 2.0, margin 0.2, "
        f"{'hardest negatives' if args.max_violation else 'sum over negatives'}"
        f"{warmup}, "
        f"{'L_M + L_G' if args.generation_loss else 'L_M only'}, seed {args.seed}.",
        "",
        "| variant | GCN layers | pooling | i2t R@1 | R@5 | R@10 | t2i R@1 | R@5 | R@10 | rsum "
        "| train s | samples/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['gcn_layers']} | {r['img_pool']} | {r['i2t_r1']:.1f} | "
                     f"{r['i2t_r5']:.1f} | {r['i2t_r10']:.1f} | {r['t2i_r1']:.1f} | {r['t2i_r5']:.1f} | "
                     f"{r['t2i_r10']:.1f} | **{r['rsum']:.1f}** | {r['seconds']:.0f} | "
                     f"{r['samples_per_s']:.0f} |")
    lines += [
        "",
        f"**Does GCN + GRU beat mean-pooling here? {'Yes' if gcn_beats_mean else 'No'}** "
        f"(rsum {by.get('GCN + GRU', nan):.1f} vs {by.get('mean-pool', nan):.1f}). "
        f"The paper's full order mean-pool < GRU < GCN + GRU "
        f"{'holds' if order_holds else 'does not hold'} in this run.",
        "",
        "One seed, one short run per variant: differences of a few rsum points are noise.",
        "",
        "Why the sum over negatives by default: trained from scratch at these sizes, hardest negatives "
        "from the first step collapse (every score equal, loss stuck at 2 x batch x margin) on this "
        "data; the sum trains. `--max-violation` runs the paper's setting.",
        "",
        f"Machine: {json.dumps(machine)}",
        "",
    ]
    out = Path(args.out)
    write_atomic(out, "\n".join(lines))
    write_json({"command": command.strip(), "machine": machine, "args": vars(args), "rows": rows},
               out.with_suffix(".json"))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
