"""Input feature shards of `vsrn-deploy embed`: found by a glob, checked, numbered.

A shard is a `.npy` of region features [n, regions, feature_dim] (float16/32/64), read
memory-mapped. The shards matched by the glob are taken in sorted path order and every image gets a
global id: the rows of all earlier shards plus its row in its shard. So ids are stable across reruns
as long as the same files match.

Two checks, both before any encoding: the header (`open_shards`, on the driver: shape, dtype, rows)
and the content (`scan_shard`, one task per shard on the Ray cluster: NaN/Inf, the sha256 of the
source and of an earlier output, all in one read).
"""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vsrn_deploy.core.errors import VsrnError

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Shard:
    """One input shard: its place in the sorted list, path, rows and the id of its first row."""

    index: int
    path: str
    rows: int
    first_id: int


def find_shards(pattern: str) -> list[str]:
    """The files `pattern` matches (``**`` allowed), absolute, sorted; none is a usage error."""
    matched = sorted({os.path.abspath(p) for p in glob.glob(os.path.expanduser(pattern), recursive=True)
                      if os.path.isfile(p)})
    if not matched:
        raise VsrnError(f"--images {pattern!r} matches no file; give a glob of region-feature .npy shards, "
                        "e.g. 'features/*.npy' (quoted, so the shell does not expand it)")
    return matched


def open_shards(paths: list[str], num_regions: int, feature_dim: int) -> list[Shard]:
    """Check each shard's header (a float .npy of [n, num_regions, feature_dim], n >= 1) and number
    its rows; the first bad shard is named in the error."""
    from vsrn_deploy.io.inputs import load_npy

    shards: list[Shard] = []
    first = 0
    for i, path in enumerate(paths):
        array = load_npy(path, "feature shard")
        if array.ndim != 3 or not np.issubdtype(array.dtype, np.floating):
            raise VsrnError(f"feature shard {path} must hold float region features [images, {num_regions}, "
                            f"{feature_dim}]; got {array.dtype} {list(array.shape)}")
        n, k, f = array.shape
        if (k, f) != (num_regions, feature_dim):
            raise VsrnError(f"feature shard {path} has {k} regions of {f} dims per image; the export takes "
                            f"{num_regions} x {feature_dim}")
        if n == 0:
            raise VsrnError(f"feature shard {path} holds no images; remove it or fix the --images glob")
        shards.append(Shard(i, path, int(n), first))
        first += int(n)
        del array
    return shards


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def scan_shard(row: dict[str, Any], chunk_rows: int = 256) -> dict[str, Any]:
    """One shard's content check (a Ray Data `map` task): the source's sha256, the first image holding
    NaN or Inf (-1: none), and the sha256 of the output file when one exists ("" otherwise)."""
    path = str(row["path"])
    array = np.load(path, mmap_mode="r", allow_pickle=False)
    bad = -1
    for start in range(0, array.shape[0], chunk_rows):
        block = np.asarray(array[start:start + chunk_rows])
        rows_ok = np.isfinite(block.reshape(block.shape[0], -1)).all(axis=1)
        if not rows_ok.all():
            bad = start + int(np.flatnonzero(~rows_ok)[0])
            break
    del array
    out = str(row["out"])
    return {"index": int(row["index"]), "source_sha256": sha256_of(path), "nonfinite_row": bad,
            "out_sha256": sha256_of(out) if os.path.isfile(out) else ""}


def output_name(index: int) -> str:
    """The output file of input shard `index` (in sorted order)."""
    return f"shard-{index:05d}.parquet"


def check_scans(shards: list[Shard], scans: dict[int, dict[str, Any]]) -> None:
    """Name the first shard (in sorted order) holding NaN/Inf, with its row and global id."""
    for shard in shards:
        bad = scans[shard.index]["nonfinite_row"]
        if bad >= 0:
            raise VsrnError(f"feature shard {shard.path} holds NaN or Inf in image {bad} (global id "
                            f"{shard.first_id + bad}); fix or drop that image, then run embed again")


def temp_leftovers(out: Path) -> list[Path]:
    """Temporary files an interrupted run left in `out` (the shard writers' ``.shard-*.tmp``)."""
    return sorted(p for p in out.glob(".shard-*.parquet.*.tmp") if p.is_file())
