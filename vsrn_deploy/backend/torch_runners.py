"""Torch runners: `torch` (the eager training model, FP32: the reference), `torch-deploy` (the
deploy-form modules in eager torch, optionally FP16/BF16) and `torch-compile` (`torch.compile` of
the deploy form).

Imported only when one of these backends is asked for; serving code never loads this module.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from vsrn_deploy.backend.base import OUTPUT_NAMES, Runner
from vsrn_deploy.backend.feeds import check_feed
from vsrn_deploy.core.errors import VsrnError

_DTYPES = {None: torch.float32, "fp32": torch.float32, "float32": torch.float32,
           "fp16": torch.float16, "float16": torch.float16, "bf16": torch.bfloat16,
           "bfloat16": torch.bfloat16}


def torch_dtype(dtype: Any) -> torch.dtype:
    """'fp16' / 'bf16' / 'fp32' / a torch dtype / None -> torch dtype."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise VsrnError(f"dtype must be one of fp32, fp16, bf16; got {dtype!r}")
    return _DTYPES[dtype]


def torch_device(device: str) -> torch.device:
    """A torch device, with a clear error when CUDA is asked for but absent."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise VsrnError(f"device {device!r} requested but torch sees no CUDA GPU; use --device cpu")
    return dev


class _ModuleRunner(Runner):
    """Runs an encoder-shaped nn.Module: image (B,k,F) -> (emb, regions); text (ids, lengths) -> emb."""

    def __init__(self, encoder: str, model: nn.Module, *, device: str = "cpu", dtype: Any = None) -> None:
        super().__init__(encoder)
        if model is None:
            raise VsrnError(f"{type(self).__name__} needs a model: pass --checkpoint")
        self.model = model
        self.device = torch_device(device)
        self.dtype = torch_dtype(dtype)
        self.module: Any = None

    def _build(self) -> nn.Module:
        raise NotImplementedError

    def _activate(self) -> None:
        self.module = self._build().to(self.device, self.dtype).eval()

    def _deactivate(self) -> None:
        self.module = None

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _call(self, *args: torch.Tensor) -> Any:
        return self.module(*args)

    @torch.inference_mode()
    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = check_feed(self.encoder, feed)
        if self.encoder == "image":
            feats = feed["region_features"]
            feats = feats if feats.flags.writeable else feats.copy()  # e.g. a memory-mapped split
            x = torch.from_numpy(feats).to(self.device, self.dtype)
            emb, regions = self._call(x)
            outs = (emb, regions)
        else:
            ids = torch.from_numpy(feed["token_ids"]).to(self.device)
            lengths = torch.from_numpy(feed["lengths"]).to(self.device)
            outs = (self._call(ids, lengths),)
        return {n: t.float().cpu().numpy() for n, t in zip(OUTPUT_NAMES[self.encoder], outs, strict=True)}


class TorchRunner(_ModuleRunner):
    """`torch`: the training model's encoder (`model.img_enc` / `model.txt_enc`), FP32 by default."""

    def _build(self) -> nn.Module:
        # A copy: moving to another device or dtype must not change the caller's model in place.
        return copy.deepcopy(self.model.img_enc if self.encoder == "image" else self.model.txt_enc)


class TorchDeployRunner(_ModuleRunner):
    """`torch-deploy`: the deploy-form module the ONNX graphs are exported from, in eager torch."""

    def _build(self) -> nn.Module:
        from vsrn_deploy.model.deploy import ImageEncoderDeploy, TextEncoderDeploy

        if self.encoder == "image":
            return ImageEncoderDeploy.from_encoder(self.model.img_enc)
        return TextEncoderDeploy.from_encoder(self.model.txt_enc)


class TorchCompileRunner(TorchDeployRunner):
    """`torch-compile`: `torch.compile` of the deploy form; a compile failure is a clear VsrnError."""

    def __init__(self, encoder: str, model: nn.Module, *, device: str = "cpu", dtype: Any = None,
                 mode: str | None = None) -> None:
        super().__init__(encoder, model, device=device, dtype=dtype)
        self.mode = mode
        self._compiled: Any = None

    def _activate(self) -> None:
        super()._activate()
        try:
            self._compiled = torch.compile(self.module, mode=self.mode, dynamic=True)
        except Exception as exc:  # torch.compile raises many types (backend missing, unsupported)
            raise VsrnError(f"torch.compile is not usable here: {type(exc).__name__}: {exc}; use the "
                            "torch-deploy backend instead") from None

    def _call(self, *args: torch.Tensor) -> Any:
        # Compilation happens on the first call (and on recompiles), so failures surface here.
        try:
            return self._compiled(*args)
        except Exception as exc:
            raise VsrnError(f"torch.compile failed on the {self.encoder} encoder: "
                            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}; "
                            "use the torch-deploy backend instead (a C++ compiler is needed for "
                            "the inductor CPU backend)") from None
