"""torch.distributed plumbing for multi-GPU (or multi-process CPU) training launched by torchrun.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; when WORLD_SIZE > 1 the trainer joins a process
group (NCCL on CUDA, gloo on CPU), shards the training captions with a DistributedSampler, wraps the
model in DistributedDataParallel, and lets rank 0 alone validate, log and write checkpoints.

    torchrun --standalone --nproc-per-node 4 -m vsrn_deploy train --data data/coco_precomp ...
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from vsrn_deploy.core.errors import VsrnError


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: rank, world size, its device, and whether it started the group."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a user error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise VsrnError("--device cuda was requested but torch sees no CUDA GPU; use --device cpu")
        return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    return torch.device("cpu")


def init_distributed(device: str) -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1; otherwise a single-process DistInfo.

    Args:
        device: ``auto``, ``cpu`` or ``cuda`` (each rank takes GPU LOCAL_RANK).
    Returns:
        This process's DistInfo.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world_size <= 1:
        return DistInfo(0, 1, 0, dev, owns_group=False)
    owns = False
    if not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        owns = True
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, dev, owns_group=owns)


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op without a process group)."""
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    """Leave the process group if this process created it."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()
