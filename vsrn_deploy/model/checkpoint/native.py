"""vsrn-deploy's own checkpoint format: writing it (`save_checkpoint`) and reading it back.

The file is a dict, loadable with ``torch.load(weights_only=True)``::

    {"format": "vsrn-deploy-checkpoint", "format_version": 1,
     "config": asdict(VSRNConfig), "with_caption": bool, "state_dict": VSRN.state_dict(),
     "vocab": {"words": [...]} | None, "vocab_path": str | None,
     "train_state": {epoch, step, best_rsum, optimizer, scheduler, rng, ...}, "versions": {...}}
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.data.vocab import Vocabulary, load_vocab
from vsrn_deploy.io.files import atomic_writer, sha256_file
from vsrn_deploy.model import VSRN
from vsrn_deploy.model.checkpoint.loaded import LoadedCheckpoint, _clean_state_dict, _load_strict, _to_device
from vsrn_deploy.model.config import VSRNConfig

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "save_checkpoint"]

FORMAT_NAME = "vsrn-deploy-checkpoint"
FORMAT_VERSION = 1


_PLAIN = (str, int, float, bool, type(None), torch.Tensor, torch.Size, torch.dtype, torch.device)


def _check_plain(value: Any, where: str) -> None:
    """train_state must load with weights_only=True: plain containers, numbers, strings, tensors."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str | int):
                raise TypeError(f"{where} has a key of type {type(k).__name__}; use str or int keys")
            _check_plain(v, f"{where}[{k!r}]")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
    elif not isinstance(value, _PLAIN):
        raise TypeError(f"{where} is a {type(value).__module__}.{type(value).__name__}; a checkpoint "
                        "stores only dicts, lists, tuples, numbers, strings and tensors "
                        "(convert numpy arrays with torch.from_numpy)")


def save_checkpoint(path: str | os.PathLike[str], model: VSRN, *, vocab: Vocabulary | None = None,
                    vocab_path: str | os.PathLike[str] | None = None,
                    train_state: Mapping[str, Any] | None = None) -> Path:
    """Write a vsrn-deploy checkpoint atomically (temp file in the same folder, then rename).

    Args:
        path: destination, e.g. `runs/x/model_best.pt`.
        model: the VSRN (caption generator included when it has one).
        vocab: store the vocabulary inline (its word list).
        vocab_path: or store a reference to a vocabulary file (relative to the checkpoint's folder
            if it is inside it, else as given).
        train_state: epoch, step, best_rsum, optimizer/scheduler state dicts, rng states...: plain
            containers, numbers, strings and tensors only.
    Returns:
        The path written.
    """
    path = Path(path)
    state = dict(train_state or {})
    _check_plain(state, "train_state")
    ref = None
    if vocab_path is not None:
        vp = Path(vocab_path)
        try:
            ref = str(vp.resolve().relative_to(path.resolve().parent))
        except ValueError:
            ref = str(vp)
    payload = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "with_caption": model.caption is not None,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "vocab": {"words": vocab.words} if vocab is not None else None,
        "vocab_path": ref,
        "train_state": state,
        "versions": {"torch": str(torch.__version__), "vsrn_deploy": _version()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path) as fh:
        torch.save(payload, fh)
    return path


def _version() -> str:
    from vsrn_deploy.core.version import __version__

    return __version__


def _load_own(obj: dict, path: Path, map_location: Any) -> LoadedCheckpoint:
    source = str(path)
    version = obj.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise VsrnError(f"{source}: checkpoint format version {version!r} is newer than this "
                        f"vsrn-deploy understands ({FORMAT_VERSION}); upgrade vsrn-deploy")
    if not isinstance(obj.get("config"), Mapping):
        raise VsrnError(f"{source}: checkpoint has no config")
    config = VSRNConfig.from_dict(dict(obj["config"]))
    model = VSRN(config, with_caption=bool(obj.get("with_caption", True)))
    sd = _clean_state_dict(obj.get("state_dict"), "model", source)
    _load_strict(model, sd, "model", source)
    model = _to_device(model, map_location).eval()
    vocab = None
    inline = obj.get("vocab")
    if isinstance(inline, Mapping) and isinstance(inline.get("words"), list):
        vocab = Vocabulary.from_words(inline["words"])
    vocab_path = obj.get("vocab_path")
    if vocab is None and vocab_path:
        resolved = Path(vocab_path)
        if not resolved.is_absolute():
            resolved = path.resolve().parent / resolved
        if resolved.is_file():
            vocab = load_vocab(resolved)
            vocab_path = str(resolved)
    if vocab is not None and len(vocab) != config.vocab_size:
        raise VsrnError(f"{source}: its vocabulary has {len(vocab)} words but the model expects "
                        f"{config.vocab_size}")
    return LoadedCheckpoint(config=config, model=model, vocab=vocab, vocab_path=vocab_path,
                            train_state=dict(obj.get("train_state") or {}), kind="vsrn-deploy",
                            sha256=sha256_file(path), path=source)
