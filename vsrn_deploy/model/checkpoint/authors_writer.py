"""Writing a model in the authors' checkpoint layout, for tests and demos.

`save_authors_checkpoint` can mimic every serialisation their released files come in: the zip
format, or the legacy non-zip one with Python 2 byte strings (PyTorch 0.4 under Python 2), with
storages optionally tagged 'cuda:0' as their GPU-trained files are.
"""

from __future__ import annotations

import argparse
import os
import pickle
import struct
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from vsrn_deploy.io.files import atomic_writer
from vsrn_deploy.model import VSRN
from vsrn_deploy.model.config import F30K_DATA_NAME, VSRNConfig

__all__ = ["authors_opt", "save_authors_checkpoint"]


def authors_opt(config: VSRNConfig, **overrides: Any) -> dict[str, Any]:
    """Training options like the authors' train.py would record for `config`."""
    opt = {
        "data_path": "./data/", "data_name": config.data_name, "vocab_path": "./vocab/",
        "margin": 0.2, "num_epochs": 30, "batch_size": 128, "word_dim": config.word_dim,
        "embed_size": config.embed_size, "grad_clip": 2.0, "crop_size": 224,
        "num_layers": config.text_layers, "learning_rate": 0.0002,
        "lr_update": 10 if config.data_name == F30K_DATA_NAME else 15, "workers": 10, "log_step": 10,
        "val_step": 500, "logger_name": "runs/runX", "resume": "", "max_violation": True,
        "img_dim": config.img_dim, "finetune": False, "cnn_type": "vgg19", "use_restval": False,
        "measure": "cosine", "use_abs": config.use_abs, "no_imgnorm": not config.img_norm,
        "reset_train": False, "max_len": config.caption_max_len, "vocab_size": config.vocab_size,
    }
    opt.update(overrides)
    return opt


class _AuthorsStylePickler(pickle._Pickler):
    """Pure-Python pickler that can mimic PyTorch 0.4 under Python 2 on a GPU.

    `py2_strings`: every str/bytes becomes a Python 2 `str` (BINSTRING), as Python 2 wrote them.
    `location`: storage location tag written into each persistent id (e.g. 'cuda:0').
    """

    py2_strings = False
    location: str | None = None
    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj: str | bytes) -> None:
        if not self.py2_strings:
            (pickle._Pickler.save_str if isinstance(obj, str) else pickle._Pickler.save_bytes)(self, obj)
            return
        data = obj.encode("utf-8") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = _save_py2_str
    dispatch[bytes] = _save_py2_str

    def save_pers(self, pid: Any) -> None:
        # torch's storage ids are ('storage', type, key, location, numel[, view]) in both formats
        if self.location is not None and isinstance(pid, tuple) and pid and pid[0] == "storage":
            pid = (*pid[:3], self.location, *pid[4:])
        super().save_pers(pid)


def _pickle_module(py2_strings: bool, location: str | None) -> Any:
    """A stand-in for the `pickle` module that torch.save uses (Pickler + dump)."""
    pickler_cls = type("Pickler", (_AuthorsStylePickler,), {"py2_strings": py2_strings,
                                                            "location": location})

    class _Module:
        Pickler = pickler_cls

        @staticmethod
        def dump(obj: Any, fh: Any, protocol: int = 2) -> None:
            pickler_cls(fh, protocol=protocol).dump(obj)

    return _Module


def save_authors_checkpoint(path: str | os.PathLike[str], model: VSRN, *,
                            opt: Mapping[str, Any] | None = None, legacy: bool = False,
                            cuda_tagged: bool = False, epoch: int = 29, best_rsum: float = 0.0,
                            eiters: int = 0) -> Path:
    """Write `model` in the authors' checkpoint layout (for tests and demos).

    Args:
        path: destination (their name: `model_best.pth.tar`).
        model: the VSRN; only its image and text encoders are written, like theirs.
        opt: options to record (merged over `authors_opt(model.config)`); stored as a Namespace.
        legacy: the legacy non-zip serialisation with Python 2 byte strings everywhere, as PyTorch
            0.4 under Python 2 wrote the released files.
        cuda_tagged: tag every storage as 'cuda:0' (loading then needs `map_location` on a
            machine without a GPU), as their GPU-trained files are.
        epoch, best_rsum, eiters: the other entries of their dict.
    Returns:
        The path written.
    """
    path = Path(path)
    opt_dict = authors_opt(model.config)
    opt_dict.update(opt or {})
    img_sd, txt_sd = model.encoder_state_dicts()
    obj = {
        "epoch": epoch,
        "model": [OrderedDict((k, v.detach().cpu()) for k, v in img_sd.items()),
                  OrderedDict((k, v.detach().cpu()) for k, v in txt_sd.items())],
        "best_rsum": best_rsum,
        "opt": argparse.Namespace(**opt_dict),
        "Eiters": eiters,
    }
    module = _pickle_module(py2_strings=legacy, location="cuda:0" if cuda_tagged else None)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path) as fh:
        torch.save(obj, fh, pickle_module=module, pickle_protocol=2,
                   _use_new_zipfile_serialization=not legacy)
    return path
