"""Reading the authors' checkpoints (their train.py's `model_best.pth.tar`).

Their format is ``{"epoch", "model": [image_sd, text_sd], "best_rsum", "opt": argparse.Namespace,
"Eiters"}``; the released files were written by PyTorch 0.4 under Python 2 on a GPU (legacy non-zip
serialisation, byte strings, CUDA-tagged storages). The config is derived from `opt` and checked
against the weights' shapes. Their files carry no caption generator, so their models are built
with ``with_caption=False``; the vocabulary is looked for where they keep it.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.data.vocab import load_vocab
from vsrn_deploy.io.files import sha256_file
from vsrn_deploy.io.safe_pickle import decode_py2_str
from vsrn_deploy.model import VSRN
from vsrn_deploy.model.checkpoint.loaded import (
    LoadedCheckpoint,
    _clean_state_dict,
    _load_strict,
    _short,
    _to_device,
)
from vsrn_deploy.model.checkpoint.vocab_lookup import find_authors_vocab
from vsrn_deploy.model.config import F30K_DATA_NAME, VSRNConfig

__all__ = ["config_from_authors"]


def _opt_to_dict(opt: Any, source: str) -> dict[str, Any] | None:
    if opt is None:
        return None
    if isinstance(opt, argparse.Namespace):
        opt = vars(opt)
    if not isinstance(opt, Mapping):
        raise VsrnError(f"{source}: 'opt' is a {type(opt).__name__}, expected argparse.Namespace")

    def fix(value: Any) -> Any:
        if type(value).__module__ == "numpy" and hasattr(value, "item"):
            return value.item()  # NumPy scalars -> plain Python numbers
        if isinstance(value, bytes):
            return decode_py2_str(value)
        if isinstance(value, str):
            # latin1-decoded Python 2 bytes: recover UTF-8 text where it was UTF-8
            try:
                return value.encode("latin-1").decode("utf-8")
            except (UnicodeEncodeError, UnicodeDecodeError):
                return value
        if isinstance(value, list | tuple):
            return type(value)(fix(v) for v in value)
        return value

    return {fix(k): fix(v) for k, v in opt.items()}


def _count(prefix_fmt: str, keys: Iterable[str], start: int) -> int:
    keys = set(keys)
    n = 0
    while prefix_fmt.format(start + n) in keys:
        n += 1
    return n


def config_from_authors(opt: Mapping[str, Any] | None, img_sd: Mapping[str, torch.Tensor],
                        txt_sd: Mapping[str, torch.Tensor], source: str = "checkpoint") -> VSRNConfig:
    """Derive the VSRNConfig from the authors' `opt` and check it against the weights' shapes.

    Sizes (vocabulary, dims, GCN and GRU layers) come from the shapes; the variant comes from
    ``opt.data_name`` (exactly 'f30k_precomp' is the Flickr30K formulation) and must agree with the
    presence of the final BatchNorm (`bn.*`). Without `opt`, the variant follows `bn.*`.

    Args:
        opt: the checkpoint's options as a dict, or None.
        img_sd: image-encoder state dict.
        txt_sd: text-encoder state dict.
        source: the file, for messages.
    Returns:
        The config.
    Raises:
        VsrnError: the weights are not VSRN's, or `opt` and the weights disagree (all listed).
    """
    for sd, key, what in ((img_sd, "fc.weight", "image"), (txt_sd, "embed.weight", "text")):
        if key not in sd or sd[key].dim() != 2:
            raise VsrnError(f"{source}: the {what}-encoder weights have no 2-D '{key}': "
                            f"not a VSRN checkpoint (keys: {_short(sorted(sd))})")
    embed_size, img_dim = (int(s) for s in img_sd["fc.weight"].shape)
    vocab_size, word_dim = (int(s) for s in txt_sd["embed.weight"].shape)
    gcn_layers = _count("Rs_GCN_{}.g.weight", img_sd, 1)
    text_layers = _count("rnn.weight_ih_l{}", txt_sd, 0)
    if text_layers == 0:
        raise VsrnError(f"{source}: the text-encoder weights have no GRU (rnn.weight_ih_l0)")
    has_bn = "bn.weight" in img_sd
    has_rnn = "img_rnn.weight_ih_l0" in img_sd
    opt = dict(opt or {})
    problems = []
    data_name = opt.get("data_name")
    if data_name is not None:
        is_f30k = data_name == F30K_DATA_NAME
        if is_f30k and not has_bn:
            problems.append(f"opt.data_name is {data_name!r} (Flickr30K variant, final BatchNorm) "
                            "but the image weights have no bn.*")
        if not is_f30k and has_bn:
            problems.append(f"opt.data_name is {data_name!r} (COCO variant, no final BatchNorm) "
                            "but the image weights have bn.* (a Flickr30K model)")
    else:
        is_f30k = has_bn
        data_name = F30K_DATA_NAME if has_bn else "coco_precomp"
    checks = (("embed_size", embed_size, "fc.weight has {} rows"),
              ("img_dim", img_dim, "fc.weight has {} columns"),
              ("word_dim", word_dim, "embed.weight has {} columns"),
              ("vocab_size", vocab_size, "embed.weight has {} rows"),
              ("num_layers", text_layers, "the text GRU has {} layers"))
    for key, actual, words in checks:
        if opt.get(key) is not None and opt[key] != actual:
            problems.append(f"opt.{key} is {opt[key]!r} but {words.format(actual)}")
    measure = opt.get("measure", "cosine")
    if measure != "cosine":
        problems.append(f"opt.measure is {measure!r}; only 'cosine' is supported")
    if problems:
        raise VsrnError(f"{source}: the options and the weights disagree: " + "; ".join(problems))
    extra = {}
    if isinstance(opt.get("max_len"), int):
        extra["caption_max_len"] = opt["max_len"]
    return VSRNConfig(
        vocab_size=vocab_size, img_dim=img_dim, embed_size=embed_size, word_dim=word_dim,
        gcn_layers=gcn_layers, text_layers=text_layers, fc_norm=not is_f30k, final_bn=is_f30k,
        img_pool="gru" if has_rnn else "mean", img_norm=not bool(opt.get("no_imgnorm", False)),
        use_abs=bool(opt.get("use_abs", False)), data_name=str(data_name), **extra)


def _load_authors(obj: dict, path: Path, map_location: Any) -> LoadedCheckpoint:
    source = str(path)
    weights = obj["model"]
    if not isinstance(weights, list | tuple) or len(weights) < 2:
        raise VsrnError(f"{source}: 'model' must be [image state_dict, text state_dict] "
                        f"(found {type(weights).__name__})")
    img_sd = _clean_state_dict(weights[0], "image-encoder", source)
    txt_sd = _clean_state_dict(weights[1], "text-encoder", source)
    opt = _opt_to_dict(obj.get("opt"), source)
    config = config_from_authors(opt, img_sd, txt_sd, source)
    model = VSRN(config, with_caption=False)  # their files carry no caption generator
    _load_strict(model.img_enc, img_sd, "image-encoder", source)
    _load_strict(model.txt_enc, txt_sd, "text-encoder", source)
    model = _to_device(model, map_location).eval()
    vocab, vocab_file = None, find_authors_vocab(config.data_name, checkpoint_path=path,
                                                 vocab_path=(opt or {}).get("vocab_path"))
    if vocab_file is not None:
        try:
            candidate = load_vocab(vocab_file)
        except VsrnError:
            candidate = None
        if candidate is not None and len(candidate) == config.vocab_size:
            vocab = candidate
        else:
            vocab_file = None
    best = obj.get("best_rsum")
    train_state = {"epoch": obj.get("epoch"), "step": obj.get("Eiters"),
                   "best_rsum": float(best) if isinstance(best, int | float) else best,
                   "authors_opt": opt}
    return LoadedCheckpoint(config=config, model=model, vocab=vocab,
                            vocab_path=str(vocab_file) if vocab_file else None,
                            train_state=train_state, kind="authors", sha256=sha256_file(path),
                            path=source)
