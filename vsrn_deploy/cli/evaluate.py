"""`vsrn-deploy evaluate`: recall of one checkpoint, or a two-model ensemble, on a precomp split.

The work is done by `run_evaluation` (library code); the command only parses options, prints the
table and writes the JSON report.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from vsrn_deploy.cli.common import handle_errors
from vsrn_deploy.errors import VsrnError


def _resolve_vocab(loaded: Any, vocab_path: Path | None, data: Path) -> tuple[Any, str]:
    """The vocabulary for one checkpoint (`checkpoint.resolve_vocab`), also looked for by the
    data folder's name in the authors' `<data>/../vocab/` layout."""
    from vsrn_deploy.checkpoint import resolve_vocab

    search = [data.parent / "vocab", data / "vocab", Path("vocab")]
    return resolve_vocab(loaded, vocab_path, search_dirs=search, names=[data.name])


def _progress(say: Any) -> Any:
    """A progress callback that reports every fifth of the images and of the captions."""
    shown: dict[str, int] = {}

    def report(what: str, done: int, total: int) -> None:
        step = 5 * done // total
        if step > shown.get(what, 0):
            shown[what] = step
            say(f"  {what}: {done}/{total}")

    return report


def run_evaluation(checkpoints: list[Path], data: Path, *, split: str = "test", fold5: bool = False,
                   vocab: Path | None = None, batch_size: int = 128, device: str = "auto",
                   max_images: int | None = None, echo: Any = None) -> dict[str, Any]:
    """Encode a split with one or two checkpoints and compute the authors' recall protocol.

    Args:
        checkpoints: one checkpoint, or two for an ensemble (similarities averaged).
        data: the precomp folder holding ``<split>_ims.npy`` and ``<split>_caps.txt``.
        split: ``test``, ``testall`` (COCO 5K / 1K with `fold5`), ``dev``, ...
        fold5: mean over 5 folds of n_images/5 images (COCO 1K).
        vocab: vocabulary file for the captions (default: from each checkpoint).
        batch_size: images or captions per forward pass.
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
        max_images: evaluate only the first N images (and their captions).
        echo: optional ``callable(str)`` for progress lines.
    Returns:
        The `vsrn_deploy.evaluation.recall_report` dict plus ``checkpoints``, ``data``, ``split``,
        ``device``, ``seconds`` and ``versions``.
    """
    import numpy as np
    import torch

    from vsrn_deploy import evaluation
    from vsrn_deploy.checkpoint import load_checkpoint
    from vsrn_deploy.data.batching import CaptionDataset
    from vsrn_deploy.data.precomp import PrecompSplit
    from vsrn_deploy.encode_data import encode_split

    say = echo or (lambda _msg: None)
    if not 1 <= len(checkpoints) <= 2:
        raise VsrnError(f"evaluate takes one checkpoint, or two for an ensemble (got {len(checkpoints)})")
    for ckpt in checkpoints:
        if not ckpt.is_file():
            raise VsrnError(f"checkpoint {ckpt} does not exist")
    if batch_size < 1:
        raise VsrnError(f"--batch-size must be >= 1 (got {batch_size})")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device.startswith("cuda") and not torch.cuda.is_available():
        raise VsrnError(f"--device {device} asked for, but torch sees no CUDA GPU; use --device cpu")

    t0 = time.perf_counter()
    ds = PrecompSplit(data, split, max_images=max_images)
    if len(ds) % ds.captions_per_image:
        raise VsrnError(f"{data}/{split}_caps.txt: {len(ds)} captions do not divide into "
                        f"{ds.captions_per_image} per image")
    say(f"{ds!r}")
    embeddings = []
    sources = []
    for ckpt in checkpoints:
        loaded = load_checkpoint(ckpt, map_location=device)
        words, where = _resolve_vocab(loaded, vocab, data)
        if len(words) != loaded.config.vocab_size:
            raise VsrnError(f"vocabulary {where} has {len(words)} words but {ckpt} was trained with "
                            f"{loaded.config.vocab_size}; pass the matching --vocab")
        if ds.feature_dim != loaded.config.img_dim:
            raise VsrnError(f"{data}/{split}_ims.npy has {ds.feature_dim}-d region features but {ckpt} "
                            f"expects {loaded.config.img_dim}")
        model = loaded.model.to(device)
        say(f"encoding with {ckpt} ({loaded.kind}, vocabulary {where}) on {device}")
        embeddings.append(encode_split(model, CaptionDataset(ds, words), batch_size=batch_size,
                                       device=device, repeat=False, progress=_progress(say)))
        sources.append({"path": str(ckpt), "sha256": loaded.sha256, "kind": loaded.kind,
                        "vocab": where})
        del model, loaded
    t_encode = time.perf_counter() - t0

    t1 = time.perf_counter()
    (images, captions), second = embeddings[0], embeddings[1] if len(embeddings) > 1 else (None, None)
    report = evaluation.recall_report(images, captions, fold5=fold5, images2=second[0],
                                      captions2=second[1], captions_per_image=ds.captions_per_image)
    t_rank = time.perf_counter() - t1
    report.update({
        "checkpoints": sources,
        "data": str(data),
        "split": split,
        "device": device,
        "seconds": {"encode": t_encode, "rank": t_rank},
        "versions": {"torch": str(torch.__version__), "numpy": np.__version__},
    })
    return report


def evaluate(
    checkpoints: Annotated[list[Path], typer.Argument(
        help="A checkpoint (vsrn-deploy or the authors' model_best.pth.tar); give two to evaluate "
             "their ensemble (averaged similarities, as the paper reports).")],
    data: Annotated[Path, typer.Option(
        help="The precomp data folder, e.g. data/coco_precomp (holds <split>_ims.npy, "
             "<split>_caps.txt).")],
    split: Annotated[str, typer.Option(
        help="Split to evaluate: test (Flickr30K), testall (COCO 5K, or 1K with --fold5), dev.")] = "test",
    fold5: Annotated[bool, typer.Option(
        "--fold5", help="COCO 1K: mean over 5 folds of 1000 images (n_images/5 in general).")] = False,
    vocab: Annotated[Path | None, typer.Option(
        help="Vocabulary (.pkl or .json); default: the checkpoint's, else "
             "<data>/../vocab/<data_name>_vocab.*")] = None,
    batch_size: Annotated[int, typer.Option(help="Images or captions per forward pass.")] = 128,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = "auto",
    max_images: Annotated[int | None, typer.Option(
        help="Evaluate only the first N images and their captions.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the JSON report here.")] = None,
) -> None:
    """R@1/5/10, medr, meanr and rsum in both directions, with the authors' protocol."""
    report = run_evaluation(checkpoints, data, split=split, fold5=fold5, vocab=vocab,
                            batch_size=batch_size, device=device, max_images=max_images,
                            echo=lambda msg: typer.echo(msg, err=True))
    from vsrn_deploy.evaluation import format_table

    typer.echo(format_table(report))
    if out is not None:
        from vsrn_deploy.io.files import atomic_write_json

        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out, report)
        typer.echo(f"wrote {out}", err=True)


def register(app: typer.Typer) -> None:
    """Add the `evaluate` command to the root app."""
    app.command("evaluate")(handle_errors(evaluate))
