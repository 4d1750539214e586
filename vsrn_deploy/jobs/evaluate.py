"""`vsrn-deploy evaluate`'s job: encode a split with one or two checkpoints (`vsrn_deploy.model.encode`)
and rank it with the authors' recall protocol (`vsrn_deploy.evaluation.recall`)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.data.batching import CaptionDataset
from vsrn_deploy.data.precomp import PrecompSplit
from vsrn_deploy.model.encode import encode_split

_log = logging.getLogger(__name__)  # progress lines; the command line shows them on stderr


# --- evaluating checkpoints (the library behind `vsrn-deploy evaluate`) -------------------------

def _resolve_vocab(loaded: Any, vocab_path: Path | None, data: Path) -> tuple[Any, str]:
    """The vocabulary for one checkpoint (`checkpoint.resolve_vocab`), also looked for by the
    data folder's name in the authors' `<data>/../vocab/` layout."""
    from vsrn_deploy.model.checkpoint import resolve_vocab

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
                   max_images: int | None = None) -> dict[str, Any]:
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
    Returns:
        The `vsrn_deploy.evaluation.recall_report` dict plus ``checkpoints``, ``data``, ``split``,
        ``device``, ``seconds`` and ``versions``.
    """
    from vsrn_deploy.evaluation import recall as evaluation
    from vsrn_deploy.model.checkpoint import load_checkpoint

    say = _log.info
    if not 1 <= len(checkpoints) <= 2:
        raise VsrnError(f"evaluate takes one checkpoint, or two for an ensemble (got {len(checkpoints)})")
    from vsrn_deploy.io.inputs import check_device, check_positive, require_file

    for ckpt in checkpoints:
        require_file(ckpt, "checkpoint")
    check_device(device, allow_auto=True)
    check_positive(batch_size, "--batch-size", allow_none=False)
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
        words, where = _resolve_vocab(loaded, vocab, data)  # refuses another model's vocabulary
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
