"""The end-to-end job behind `vsrn-deploy demo`, the README's main command.

On a fresh machine with no data it: generates a small synthetic dataset in the SCAN precomp
layout, trains a small VSRN for a few minutes on the CPU, evaluates it with the authors' protocol,
writes it as an authors'-format checkpoint (legacy serialisation, CUDA-tagged, as the released
files are) and loads that back, exports both encoders to ONNX (FP32 and FP16, checked at export),
validates torch / ort / ort-fp16 against each other, indexes the test split and searches it (one
attention map drawn), and runs a short benchmark. Every stage is the
library call a user would make; the demo only chains them and prints what they return.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vsrn_deploy.core.errors import CheckFailed
from vsrn_deploy.io.files import atomic_write_json

SUMMARY = "demo_summary.json"  # vsrn_deploy.artifacts.run.DEMO_SUMMARY
_log = logging.getLogger(__name__)  # the demo's story, stage by stage; the command line shows it on stderr


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo run: small enough for a few minutes on 2 CPU cores.

    Attributes:
        out: the run folder (data/, train/, model_best.pth.tar, export/, reports).
        n_train, n_dev, n_test: synthetic images per split (5 captions each).
        num_regions, feature_dim: region grid of the synthetic features.
        embed_size, word_dim: model sizes.
        epochs, batch_size: training length.
        lr, warmup_epochs: a small model on synthetic data needs a larger step than the paper's
            2e-4 and a few epochs of the sum over negatives before hardest negatives take over;
            from cold, hardest negatives keep it at chance.
        bench: run the short benchmark at the end.
        recall_gate: the trained model's R@10 (both directions) must reach this multiple of chance;
            0 turns the gate off, for smoke runs at sizes too small to learn (the tests').
        seed: seed of data, model and training.
    """

    out: str = "runs/demo"
    n_train: int = 1500
    n_dev: int = 100
    n_test: int = 200
    num_regions: int = 36
    feature_dim: int = 128
    embed_size: int = 128
    word_dim: int = 64
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    warmup_epochs: int = 2
    bench: bool = True
    recall_gate: float = 2.0
    seed: int = 0

    def __post_init__(self) -> None:
        from vsrn_deploy.core.errors import VsrnError

        low = {"n_train": 1, "n_dev": 1, "n_test": 10, "num_regions": 4, "feature_dim": 16, "embed_size": 1,
               "word_dim": 1, "epochs": 1, "batch_size": 2}
        problems = [f"{name} must be >= {minimum} (got {getattr(self, name)})"
                    for name, minimum in low.items() if getattr(self, name) < minimum]
        if not self.lr > 0 or self.warmup_epochs < 0:
            problems.append("lr must be > 0 and warmup_epochs >= 0")
        if problems:
            raise VsrnError("demo: " + "; ".join(problems).replace("epochs must", "--epochs must"))


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    """Run every stage; returns the summary also written to `<out>/demo_summary.json`.

    Raises:
        CheckFailed: a stage's check failed (recall near chance, export or validation parity).
    """
    import numpy as np

    say = _log.info

    from vsrn_deploy.artifacts.outputs import check_out_path, marker
    from vsrn_deploy.artifacts.run import demo_summary
    from vsrn_deploy.core.contract import AUTHORS_CHECKPOINT_NAME, BEST_CHECKPOINT_NAME
    from vsrn_deploy.data.precomp import PrecompSplit
    from vsrn_deploy.data.synthetic import generate_dataset
    from vsrn_deploy.evaluation.recall import format_table, recall_report
    from vsrn_deploy.export import ExportConfig, export_model
    from vsrn_deploy.jobs.validate import ValidateConfig, format_report, run_validation
    from vsrn_deploy.model.checkpoint import load_checkpoint, load_model, save_authors_checkpoint
    from vsrn_deploy.model.encode import encode_split
    from vsrn_deploy.training import TrainConfig, train

    out = check_out_path(cfg.out, want="folder")
    if out.is_dir() and any(out.iterdir()) and demo_summary(out) is None:
        from vsrn_deploy.core.errors import VsrnError

        raise VsrnError(f"--out {cfg.out} is a non-empty folder that no earlier demo wrote; choose another "
                        "--out (the demo rewrites its own run folder only)")
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"written_by": marker("demo"), "config": asdict(cfg), "stages": {},
                               "status": "running"}
    atomic_write_json(out / SUMMARY, summary)  # marks the run folder as the demo's from the start
    clock = time.perf_counter()

    def stage(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        say(f"\n== {name}")
        clock = now

    def done(name: str, **info: Any) -> None:
        info["seconds"] = round(time.perf_counter() - clock, 1)
        summary["stages"][name] = info

    stage("1/6 synthetic data (SCAN precomp layout)")
    data = generate_dataset(out / "data", n_train=cfg.n_train, n_dev=cfg.n_dev, n_test=cfg.n_test,
                            num_regions=cfg.num_regions, feature_dim=cfg.feature_dim, seed=cfg.seed,
                            overwrite=(out / "data" / "synth_precomp").exists())
    say(f"wrote {data} ({cfg.n_train}/{cfg.n_dev}/{cfg.n_test} images, 5 captions each)")
    done("data", path=str(data))

    stage("2/6 training")
    best = train(TrainConfig(data=str(data), out=str(out / "train"), embed_size=cfg.embed_size,
                             word_dim=cfg.word_dim, caption_hidden=64, epochs=cfg.epochs, lr=cfg.lr,
                             warmup_epochs=cfg.warmup_epochs, lr_update=max(1, cfg.epochs - 1),
                             batch_size=cfg.batch_size, workers=0,
                             device="cpu", seed=cfg.seed, tensorboard=False,
                             overwrite=(out / "train" / BEST_CHECKPOINT_NAME).exists()))
    done("train", checkpoint=str(best))

    stage("3/6 evaluation on the test split (the authors' protocol)")
    loaded = load_checkpoint(best)
    split = PrecompSplit(data, "test")
    images, captions = encode_split(loaded.model, split, vocab=loaded.vocab)
    report = recall_report(images, captions)
    say(format_table(report))
    chance = 100.0 * 10 / cfg.n_test
    say(f"(chance level of R@10: {chance:.1f})")
    done("evaluate", report=report, chance_r10=chance)
    if report["i2t_r10"] < cfg.recall_gate * chance or report["t2i_r10"] < cfg.recall_gate * chance:
        raise CheckFailed(f"the demo model's R@10 is near chance ({report['i2t_r10']:.1f} / "
                          f"{report['t2i_r10']:.1f} vs chance {chance:.1f}): training did not learn")

    stage("4/6 authors'-format checkpoint: write (legacy, CUDA-tagged) and load back")
    authors = save_authors_checkpoint(out / AUTHORS_CHECKPOINT_NAME, loaded.model, legacy=True,
                                      cuda_tagged=True, opt={"data_name": "synth_precomp",
                                                             "vocab_path": str(data.parent / "vocab")})
    model = load_model(authors)
    import torch

    with torch.no_grad():
        feats = torch.from_numpy(np.array(split.features[:4]))
        diff = (model.encode_images(feats) - loaded.model.encode_images(feats)).abs().max().item()
    say(f"{authors}: reloaded; image embeddings equal the trained model's (max abs diff {diff:.1e})")
    done("authors_checkpoint", path=str(authors), max_abs_diff=diff)

    stage("5/6 ONNX export (FP32 + FP16 + INT8), checked against the eager model")
    vocab_json = out / "vocab.json"
    loaded.vocab.save_json(vocab_json)
    result = export_model(authors, out / "export", ExportConfig(precision="all", vocab=str(vocab_json)))
    for line in result.check_lines:
        say(line)
    done("export", files=sorted(result.files), parity=result.parity)

    # INT8's recall bound is meaningful only where one image's flip fits in it (>= 200 test images)
    from vsrn_deploy.core import backends as table
    from vsrn_deploy.core.contract import PARITY

    listed = table.defaults("demo-validate")
    too_few = 100.0 / cfg.n_test > PARITY["int8"].recall_delta
    dropped = [b for b in listed if too_few and table.get(b).precision == "int8"]
    backends = tuple(b for b in listed if b not in dropped)
    stage(f"6/6 validation: {' vs '.join(backends)} on the test split")
    if dropped:
        say(f"{', '.join(dropped)} not validated: one of {cfg.n_test} test images is "
            f"{100.0 / cfg.n_test:.2g} points of R@K, over the int8 bound of {PARITY['int8'].recall_delta} "
            "(the export checked it on its own retrieval set)")
    val = run_validation(ValidateConfig(checkpoint=str(authors), onnx_dir=str(out / "export"),
                                        backends=backends, data=str(data),
                                        vocab=str(vocab_json), split="test"))
    say(format_report(val))
    done("validate", passed=val["passed"], backends=val["backends"])

    stage("search: index the test split with the export, one caption query, its attention map")
    summary["stages"]["search"] = search_demo(out, data)

    if cfg.bench:
        from vsrn_deploy.bench.core import BenchConfig, run_benchmark
        from vsrn_deploy.bench.report import to_markdown

        stage("benchmark (short; see `vsrn-deploy bench` for the full one)")
        bench = run_benchmark(BenchConfig(checkpoint=str(authors), onnx_dir=str(out / "export"),
                                          backends=table.defaults("demo-bench"),
                                          batches=(1, 32), seconds=0.5, threads=os.cpu_count()))
        say(to_markdown(bench))
        done("bench", results=bench["results"])

    path = out / SUMMARY
    summary["status"] = "passed" if val["passed"] else "failed"
    atomic_write_json(path, json.loads(json.dumps(summary, default=str)))
    if not val["passed"]:
        raise CheckFailed(f"validation failed; see {path}")
    say(f"\nall stages passed; summary in {path}")
    return summary


def search_demo(out: Path, data: Path) -> dict[str, Any]:
    """Index the test split with the export (ort), search its first caption, draw the top hit's
    attention map (`<out>/attention/`). Returns what it found."""
    from vsrn_deploy.search import Index, IndexConfig, build_index
    from vsrn_deploy.search.attention import save_attention_png

    say = _log.info
    clock = time.perf_counter()
    index_dir = out / "index"
    build_index(IndexConfig(onnx_dir=str(out / "export"), images=str(data / "test_ims.npy"),
                            boxes=str(data / "test_boxes.npy"), captions=str(data / "test_caps.txt"),
                            out=str(index_dir), progress=False))
    query = (data / "test_caps.txt").read_text(encoding="utf-8").splitlines()[0]
    with Index.open(index_dir) as index:
        hits = index.search_text(query, k=5)
        say(f"query {query!r} (a caption of image 0): "
            + ", ".join(f"image {h.id} ({h.score:.3f})" for h in hits))
        (out / "attention").mkdir(exist_ok=True)
        png = save_attention_png(out / "attention" / f"image_{hits[0].id}.png",
                                 index.attention_png(hits[0].id, title=f"image {hits[0].id}: {query}"))
    say(f"attention map of the top hit: {png}")
    return {"index": str(index_dir), "query": query, "hits": [h.as_json("image") for h in hits],
            "attention_png": str(png), "seconds": round(time.perf_counter() - clock, 1)}
