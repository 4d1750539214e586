"""Batching precomp data for training and encoding: a torch Dataset, the collate function, loaders.

Each sample is one caption with its image's region features. Captions become ``<start> ... <end>``
ids; a batch is padded with 0 (``<pad>``) and its lengths count ``<start>`` and ``<end>``. The
caption decoder (L_G) is trained with teacher forcing on the same ids: it reads ``token_ids[:, :-1]``
and predicts ``token_ids[:, 1:]``, so no separate target tensor is needed.

Region order (an ablation switch of the paper's GRU, which reads regions in sequence):
``given`` keeps the file's order (detector confidence in the SCAN release), ``box`` sorts regions by
box area, largest first (needs ``{split}_boxes.npy``), ``random`` draws a new permutation per sample.

Group batching (`GroupBatchSampler`): batches made of whole groups of look-alike images (e.g. the
synthetic data's four siblings, ``{split}_groups.npy``), so that the in-batch negatives of the
matching loss include the images that differ from the positive only in their relations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.data.precomp import PrecompSplit

REGION_ORDERS = ("given", "box", "random")


class _Encoder(Protocol):
    def encode(self, caption: str) -> list[int]: ...


@dataclass
class Batch:
    """A padded batch.

    Attributes:
        features: (B, k, F) float32 region features.
        token_ids: (B, T) int64 ids, ``<start>`` first, ``<end>`` at length-1, 0 after.
        lengths: (B,) int64, counting ``<start>`` and ``<end>``.
        caption_index: (B,) int64 caption row in the split.
        image_index: (B,) int64 image row in the split.
    """

    features: torch.Tensor
    token_ids: torch.Tensor
    lengths: torch.Tensor
    caption_index: torch.Tensor
    image_index: torch.Tensor

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """The same batch on `device`."""
        return Batch(*(t.to(device, non_blocking=non_blocking) for t in (
            self.features, self.token_ids, self.lengths, self.caption_index, self.image_index)))

    def pin_memory(self) -> Batch:
        """Pinned copy (DataLoader calls this when pin_memory=True)."""
        return Batch(*(t.pin_memory() for t in (
            self.features, self.token_ids, self.lengths, self.caption_index, self.image_index)))

    def check_finite(self) -> None:
        """Raise VsrnError naming the images whose features hold NaN or Inf.

        This is the lazy, per-batch NaN check: it costs one pass over data already in memory.
        """
        bad = ~torch.isfinite(self.features).flatten(1).all(dim=1)
        if bool(bad.any()):
            images = sorted({int(i) for i in self.image_index[bad].tolist()})
            raise VsrnError(f"region features of image(s) {images[:10]} hold NaN/Inf; the feature "
                            "file is corrupt (fix or drop those images)")

    def __len__(self) -> int:
        return int(self.token_ids.shape[0])


class CaptionDataset(Dataset):
    """(features [k, F] float32 tensor, ids LongTensor, caption_index, image_index) per caption.

    Args:
        split: the precomp split to read.
        vocab: anything with ``encode(caption) -> list[int]`` (a `vsrn_deploy.data.vocab.Vocabulary`).
        region_order: ``given``, ``box`` (largest box first; needs boxes) or ``random``.
        seed: base seed of the ``random`` region order (mixed with the caption index and the
            epoch set by `set_epoch`, so the order is reproducible and differs per epoch).
    """

    def __init__(self, split: PrecompSplit, vocab: _Encoder, *, region_order: str = "given",
                 seed: int = 0) -> None:
        if region_order not in REGION_ORDERS:
            raise VsrnError(f"region order must be one of {REGION_ORDERS} (got {region_order!r})")
        if region_order == "box" and split.boxes is None:
            raise VsrnError(f"region order 'box' needs {split.folder}/{split.split}_boxes.npy "
                            "(region boxes x1, y1, x2, y2), which does not exist")
        self.split = split
        self.vocab = vocab
        self.region_order = region_order
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Change the random region order for a new epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.split)

    def region_permutation(self, caption_index: int, image_index: int) -> np.ndarray | None:
        """Indices that reorder the k regions of this sample, or None to keep them."""
        if self.region_order == "box":
            box = np.asarray(self.split.boxes[image_index], dtype=np.float64)  # (k, 4)
            area = (box[:, 2] - box[:, 0]).clip(min=0) * (box[:, 3] - box[:, 1]).clip(min=0)
            return np.argsort(-area, kind="stable")
        if self.region_order == "random":
            rng = np.random.default_rng((self.seed, self.epoch, caption_index))
            return rng.permutation(self.split.num_regions)
        return None

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        image_index = self.split.image_index(index)
        features = self.split.image_features(image_index)  # (k, F)
        order = self.region_permutation(index, image_index)
        if order is not None:
            features = features[order]
        ids = self.vocab.encode(self.split.captions[index])
        return (torch.from_numpy(np.ascontiguousarray(features)), torch.tensor(ids, dtype=torch.int64),
                index, image_index)


def collate_batch(samples: Sequence[tuple[torch.Tensor, torch.Tensor, int, int]]) -> Batch:
    """Stack features and pad caption ids with 0 into a `Batch` (rows keep their order).

    Args:
        samples: items of `CaptionDataset`.
    Returns:
        The batch; ``lengths[i]`` is the number of ids of sample i (``<start>``/``<end>`` included).
    """
    if not samples:
        raise VsrnError("cannot collate an empty batch")
    features = torch.stack([s[0] for s in samples])  # (B, k, F)
    lengths = torch.tensor([len(s[1]) for s in samples], dtype=torch.int64)
    token_ids = torch.zeros(len(samples), int(lengths.max()), dtype=torch.int64)  # (B, T), 0 = <pad>
    for row, sample in enumerate(samples):
        token_ids[row, : len(sample[1])] = sample[1]
    caption_index = torch.tensor([s[2] for s in samples], dtype=torch.int64)
    image_index = torch.tensor([s[3] for s in samples], dtype=torch.int64)
    return Batch(features, token_ids, lengths, caption_index, image_index)


class GroupBatchSampler(Sampler[list[int]]):
    """Batches of caption indices that hold whole groups of images, one caption per image.

    An epoch has ``captions_per_image`` rounds; in round r every image contributes one caption (a
    per-epoch permutation of its captions decides which), groups are shuffled and packed whole
    into batches of at most `batch_size` captions (a batch closes early when the next group does
    not fit; a group larger than a batch is split), so no image appears twice in a batch (no false
    negatives). Batches of all rounds are then shuffled. Every caption is used once per epoch,
    except those of a round's last batch when it is incomplete and `drop_last`. With groups of 4
    and a batch size divisible by 4 every batch is full.

    Args:
        groups: (n_images,) group id of each image.
        captions_per_image: captions per image (caption j belongs to image j // this).
        batch_size: captions per batch.
        seed: mixed with the epoch set by `set_epoch`.
        drop_last: drop each round's last incomplete batch.
    """

    def __init__(self, groups: np.ndarray, captions_per_image: int, batch_size: int, *,
                 seed: int = 0, drop_last: bool = True) -> None:
        groups = np.asarray(groups)
        if groups.ndim != 1 or groups.size == 0:
            raise VsrnError(f"groups must be a non-empty 1-D array of group ids (got shape {groups.shape})")
        if batch_size < 1 or captions_per_image < 1:
            raise VsrnError("batch_size and captions_per_image must be >= 1")
        self.groups = groups
        self.captions_per_image = captions_per_image
        self.batch_size = batch_size
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0
        # images of each group, in image order: list of int arrays
        order = np.argsort(groups, kind="stable")
        _, starts = np.unique(groups[order], return_index=True)
        self._members = np.split(order, starts[1:])

    def set_epoch(self, epoch: int) -> None:
        """Draw a different (reproducible) batching for `epoch`."""
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        rng = np.random.default_rng((self.seed, self.epoch))
        cpi = self.captions_per_image
        pick = rng.permuted(np.tile(np.arange(cpi), (self.groups.size, 1)), axis=1)  # (n_images, cpi)
        batches: list[list[int]] = []
        for r in range(cpi):
            current: list[int] = []
            for g in rng.permutation(len(self._members)):
                members = rng.permutation(self._members[g])
                captions = (members * cpi + pick[members, r]).tolist()
                if current and len(current) + len(captions) > self.batch_size:
                    batches.append(current)
                    current = []
                while len(captions) > self.batch_size:  # a group larger than a batch
                    batches.append(captions[: self.batch_size])
                    captions = captions[self.batch_size:]
                current.extend(captions)
            if current and (len(current) == self.batch_size or not self.drop_last):
                batches.append(current)
        return [batches[i] for i in rng.permutation(len(batches))]

    def __iter__(self):
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())


def _seed_worker(worker_id: int) -> None:
    # numpy's global RNG is not reseeded per worker by torch; keep workers independent anyway.
    np.random.seed(torch.initial_seed() % 2**32)


def make_loader(split: PrecompSplit | CaptionDataset, vocab: _Encoder | None, batch_size: int,
                shuffle: bool, workers: int = 0, *, region_order: str = "given", seed: int = 0,
                sampler: Sampler | None = None, drop_last: bool = False,
                pin_memory: bool = False, batch_sampler: Sampler | None = None) -> DataLoader:
    """A DataLoader of `Batch` objects over a split.

    Args:
        split: a `PrecompSplit` (wrapped in a `CaptionDataset` with `vocab`) or a ready dataset.
        vocab: the vocabulary (ignored when `split` is already a dataset).
        batch_size: captions per batch.
        shuffle: shuffle captions each epoch (ignored when `sampler` is given).
        workers: DataLoader worker processes (0 reads in the main process).
        region_order: see `CaptionDataset`.
        seed: seeds the shuffling generator and the random region order.
        sampler: e.g. a DistributedSampler.
        drop_last: drop the last incomplete batch.
        pin_memory: pin host memory (CUDA).
        batch_sampler: yields whole batches (e.g. `GroupBatchSampler`); then `batch_size`,
            `shuffle`, `sampler` and `drop_last` are not used.
    Returns:
        The loader.
    """
    if batch_size < 1:
        raise VsrnError(f"batch size must be >= 1 (got {batch_size})")
    if workers < 0:
        raise VsrnError(f"workers must be >= 0 (got {workers})")
    if isinstance(split, CaptionDataset):
        dataset = split
    else:
        if vocab is None:
            raise VsrnError("make_loader needs a vocabulary to encode captions")
        dataset = CaptionDataset(split, vocab, region_order=region_order, seed=seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    kwargs: dict[str, Any] = {}
    if workers > 0:
        kwargs.update(persistent_workers=False, worker_init_fn=_seed_worker)
    if batch_sampler is not None:
        return DataLoader(dataset, batch_sampler=batch_sampler, num_workers=workers,
                          collate_fn=collate_batch, pin_memory=pin_memory, generator=generator, **kwargs)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle if sampler is None else False,
                      sampler=sampler, num_workers=workers, collate_fn=collate_batch,
                      drop_last=drop_last, pin_memory=pin_memory, generator=generator, **kwargs)
