"""Input feature shards of `vsrn-deploy embed`: found by a glob, checked, numbered.

A shard is a `.npy` of region features [n, regions, feature_dim] (float16/32/64), read
memory-mapped, or a `.parquet` file with a column ``features``: per image a list of
regions x feature_dim floats (row-major, as ``features[i].reshape(-1)``), read batch by batch.
The shards matched by the glob are taken in sorted path order and every image gets a global id:
the rows of all earlier shards plus its row in its shard. So ids are stable across reruns as long
as the same files match.

Two checks, both before any encoding: the header (`open_shards`, on the driver: shape, dtype, rows)
and the content (`scan_shard`, one task per shard on the Ray cluster: NaN/Inf, the sha256 of the
source and of an earlier output, all in one read).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.io.files import sha256_file


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


class ParquetFeatures:
    """Region features from a parquet shard: column ``features``, one list of k x F floats per image.

    Args:
        path: the .parquet file.
        num_regions, feature_dim: what the image graph takes (each row must hold their product).
    Raises:
        VsrnError: unreadable, no ``features`` column of float lists, no rows.
    """

    def __init__(self, path: str | os.PathLike, num_regions: int, feature_dim: int) -> None:
        import pyarrow as pa

        from vsrn_deploy.artifacts.embeddings import pyarrow_parquet

        pq = pyarrow_parquet()
        self.path, self.k, self.f = str(path), num_regions, feature_dim
        try:
            self.file = pq.ParquetFile(self.path)
        except (OSError, pa.ArrowException) as exc:
            first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
            raise VsrnError(f"feature shard {path} is not a readable parquet file ({first})") from None
        schema = self.file.schema_arrow
        kind = schema.field("features").type if "features" in schema.names else None
        is_list = kind is not None and (pa.types.is_list(kind) or pa.types.is_large_list(kind)
                                        or pa.types.is_fixed_size_list(kind))
        if not is_list or not pa.types.is_floating(kind.value_type):
            columns = ", ".join(f"{f.name}: {f.type}" for f in schema)
            raise VsrnError(f"feature shard {path} must have a column 'features' holding, per image, a list "
                            f"of {num_regions} x {feature_dim} floats; its columns are {columns}")
        if self.file.metadata.num_rows == 0:
            raise VsrnError(f"feature shard {path} holds no images; remove it or fix the --images glob")

    def __len__(self) -> int:
        return int(self.file.metadata.num_rows)

    def batches(self, batch: int) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, float32 [b, k, F]); a row of another length, or with NaN/Inf, is named."""
        from vsrn_deploy.search.encoders import finite_rows

        start = 0
        for record in self.file.iter_batches(batch_size=batch, columns=["features"]):
            column = record.column(0)
            lengths = np.diff(np.asarray(column.offsets)) if hasattr(column, "offsets") else None
            want = self.k * self.f
            size = getattr(column.type, "list_size", want)  # a fixed-size list holds one length
            if size != want:
                raise VsrnError(f"feature shard {self.path} holds {size} feature values per image, the "
                                f"export takes {self.k} x {self.f} = {want}")
            if lengths is not None and (lengths != want).any():
                bad = start + int(np.flatnonzero(lengths != want)[0])
                raise VsrnError(f"feature shard {self.path}: image {bad} holds {int(lengths[bad - start])} "
                                f"feature values, the export takes {self.k} x {self.f} = {want}")
            if column.null_count:
                raise VsrnError(f"feature shard {self.path} has images without features (nulls)")
            values = column.flatten().to_numpy(zero_copy_only=False)
            block = np.ascontiguousarray(values, dtype=np.float32).reshape(len(column), self.k, self.f)
            finite_rows(block, start, self.path)
            yield start, block
            start += len(column)


def open_features(path: str, num_regions: int, feature_dim: int) -> Any:
    """A shard's features, batch by batch: `ParquetFeatures` for .parquet, else the memory-mapped
    .npy reader of the index (`FeatureFile`)."""
    if path.endswith(".parquet"):
        return ParquetFeatures(path, num_regions, feature_dim)
    from vsrn_deploy.search.encoders import FeatureFile

    return FeatureFile(path, num_regions, feature_dim)


def open_shards(paths: list[str], num_regions: int, feature_dim: int) -> list[Shard]:
    """Check each shard's header (a float .npy of [n, num_regions, feature_dim], n >= 1, or a parquet
    file's schema) and number its rows; the first bad shard is named in the error."""
    from vsrn_deploy.io.inputs import load_npy

    shards: list[Shard] = []
    first = 0
    for i, path in enumerate(paths):
        if path.endswith(".parquet"):
            n = len(ParquetFeatures(path, num_regions, feature_dim))
            shards.append(Shard(i, path, n, first))
            first += n
            continue
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


def scan_shard(row: dict[str, Any], chunk_rows: int = 256) -> dict[str, Any]:
    """One shard's content check (a Ray Data `map` task): the source's sha256, the first image holding
    NaN or Inf (-1: none), what else is wrong with it ("" when nothing), and the sha256 of the output
    file when one exists ("" otherwise)."""
    path = str(row["path"])
    out = str(row["out"])
    if path.endswith(".parquet"):
        problem = ""
        try:
            for _ in ParquetFeatures(path, int(row["regions"]), int(row["feature_dim"])).batches(chunk_rows):
                pass
        except VsrnError as exc:
            problem = str(exc)
        return {"index": int(row["index"]), "source_sha256": sha256_file(path), "nonfinite_row": -1,
                "problem": problem, "out_sha256": sha256_file(out) if os.path.isfile(out) else ""}
    array = np.load(path, mmap_mode="r", allow_pickle=False)
    bad = -1
    for start in range(0, array.shape[0], chunk_rows):
        block = np.asarray(array[start:start + chunk_rows])
        rows_ok = np.isfinite(block.reshape(block.shape[0], -1)).all(axis=1)
        if not rows_ok.all():
            bad = start + int(np.flatnonzero(~rows_ok)[0])
            break
    del array
    return {"index": int(row["index"]), "source_sha256": sha256_file(path), "nonfinite_row": bad,
            "problem": "", "out_sha256": sha256_file(out) if os.path.isfile(out) else ""}


def output_name(index: int) -> str:
    """The output file of input shard `index` (in sorted order)."""
    return f"shard-{index:05d}.parquet"


def check_scans(shards: list[Shard], scans: dict[int, dict[str, Any]]) -> None:
    """Name the first shard (in sorted order) holding NaN/Inf, with its row and global id."""
    for shard in shards:
        if scans[shard.index]["problem"]:
            raise VsrnError(scans[shard.index]["problem"] + "; fix that shard, then run embed again")
        bad = scans[shard.index]["nonfinite_row"]
        if bad >= 0:
            raise VsrnError(f"feature shard {shard.path} holds NaN or Inf in image {bad} (global id "
                            f"{shard.first_id + bad}); fix or drop that image, then run embed again")


def temp_leftovers(out: Path) -> list[Path]:
    """Temporary files an interrupted run left in `out` (the shard writers' ``.shard-*.tmp``)."""
    return sorted(p for p in out.glob(".shard-*.parquet.*.tmp") if p.is_file())
