"""The embeddings folder (`vsrn-deploy embed --out EMB`): embeddings.json and its parquet shards.

embeddings.json keys: written_by (the ownership marker), format, format_version, export {path,
manifest_sha256}, backend, embed_dim, regions, feature_dim, count, complete, shards [{source,
source_sha256, rows, first_id, file, sha256, bytes}] (sha256 null: not written yet), run {workers,
threads, batch, ray_address, seconds}, created.

Each shard file holds columns ``id`` (int64) and ``embedding`` (list<float32>), one row per image of
its source shard, in order: ids first_id .. first_id + rows - 1.

`open_embeddings` is the reader `vsrn-deploy index --embeddings` uses: the manifest must be complete
and belong to the export given, and every shard's sha256 is checked before it is read.

Declared like the other kinds (`KIND`: name, manifest, rebuild command, owned files: the shard
files the manifest lists) with `EmbeddingsManifest` (one field per key). The embed job writes the
folder in place (shard by shard, under `outputs.output_lock`, the manifest rewritten after each
shard so an interrupted run resumes), not through `Kind.writer`'s staging commit; the on-disk
format is the same as before the declaration.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vsrn_deploy.artifacts.base import ABSENT, Kind, Manifest
from vsrn_deploy.artifacts.outputs import marker, read_owned_manifest
from vsrn_deploy.core.errors import VsrnError, import_optional
from vsrn_deploy.io.files import sha256_file

FORMAT = "vsrn-deploy-embeddings"
FORMAT_VERSION = 1
MANIFEST = "embeddings.json"
REBUILD = "vsrn-deploy embed --onnx-dir EXPORT --images 'GLOB' --out {folder}"


def owned_files(manifest: dict[str, Any]) -> list[str]:
    """The parquet shards an earlier embeddings.json lists (the files `embed` wrote)."""
    shards = manifest.get("shards")
    return [e["file"] for e in shards if isinstance(e, dict) and isinstance(e.get("file"), str)] \
        if isinstance(shards, list) else []


#: Every embeddings.json carries the marker, so there is no older form to recognise; `embed` has no
#: --overwrite (a folder it did not write is refused: choose another --out).
KIND = Kind("embeddings", MANIFEST, REBUILD, owned_files=owned_files, overwrite_flag=None)


@dataclass
class EmbeddingsManifest(Manifest):
    """embeddings.json, one field per key (see the module docstring), in the order `embed` writes them."""

    written_by: Any = ABSENT
    format: Any = ABSENT
    format_version: Any = ABSENT
    export: Any = ABSENT
    backend: Any = ABSENT
    embed_dim: Any = ABSENT
    regions: Any = ABSENT
    feature_dim: Any = ABSENT
    count: Any = ABSENT
    complete: Any = ABSENT
    shards: Any = ABSENT
    run: Any = ABSENT
    created: Any = ABSENT


def pyarrow_parquet() -> Any:
    import_optional("pyarrow", "distributed", "parquet embedding shards")
    import pyarrow.parquet as pq

    return pq


def read_manifest(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The embeddings.json of `folder` when it is one this tool wrote (the marker), else None."""
    data = read_owned_manifest(folder, KIND.manifest_name, KIND.name)
    return data if data is not None and data.get("format") == FORMAT else None


def new_manifest(**fields: Any) -> dict[str, Any]:
    """A fresh embeddings.json: the marker, format and version, then `fields` in the order given."""
    data = {"written_by": marker(KIND.name), "format": FORMAT, "format_version": FORMAT_VERSION, **fields}
    return EmbeddingsManifest.from_dict(data).to_dict()


class EmbeddingShards:
    """A complete embeddings folder opened for reading: image embeddings in id order, shard by shard.

    Args:
        folder: the folder `vsrn-deploy embed --out` wrote.
        export_sha256: the manifest sha256 of the export the embeddings must come from.
        onnx_dir: that export's folder (for the message).
    Raises:
        VsrnError: not an embeddings folder, incomplete, another export, a changed or missing shard.
    """

    def __init__(self, folder: str | os.PathLike, export_sha256: str, onnx_dir: str | os.PathLike,
                 embed_dim: int | None = None) -> None:
        self.folder = Path(folder)
        fix = f"run again: {KIND.rebuild_command(self.folder)}"
        if not self.folder.is_dir():
            raise VsrnError(f"--embeddings {folder} is not a folder; give the --out of vsrn-deploy embed")
        manifest = read_manifest(self.folder)
        if manifest is None:
            raise VsrnError(f"--embeddings {folder} holds no {MANIFEST} written by vsrn-deploy embed; give "
                            "the --out of vsrn-deploy embed")
        version = manifest.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise VsrnError(f"{self.folder / MANIFEST} was written by a newer vsrn-deploy (format_version "
                            f"{version!r}); upgrade vsrn-deploy")
        if not manifest.get("complete"):
            raise VsrnError(f"the embeddings in {folder} are incomplete (the embed job did not finish); "
                            f"{fix}")
        recorded = (manifest.get("export") or {}).get("manifest_sha256")
        if recorded != export_sha256:
            raise VsrnError(f"the embeddings in {folder} come from another export "
                            f"({(manifest.get('export') or {}).get('path')}) than --onnx-dir {onnx_dir}: "
                            "index them with that export, or embed again with this one")
        self.manifest = manifest
        self.shards: list[dict[str, Any]] = list(manifest["shards"])
        self.embed_dim = int(manifest["embed_dim"])
        if embed_dim is not None and self.embed_dim != embed_dim:
            raise VsrnError(f"the embeddings in {folder} are {self.embed_dim}-d, the export's {embed_dim}-d; "
                            f"{fix}")
        expect = 0
        for entry in self.shards:
            if entry.get("first_id") != expect or not entry.get("sha256"):
                raise VsrnError(f"{self.folder / MANIFEST} does not list shards covering ids 0..n-1 in "
                                f"order; {fix}")
            expect += int(entry["rows"])
        self.count = expect
        if self.count != int(manifest.get("count", -1)):
            raise VsrnError(f"{self.folder / MANIFEST} counts {manifest.get('count')} images but its shards "
                            f"hold {self.count}; {fix}")
        for entry in self.shards:  # every shard checked before the first is used
            path = self.folder / entry["file"]
            if not path.is_file():
                raise VsrnError(f"{path} is missing (listed in {MANIFEST}); {fix}")
            if sha256_file(path) != entry["sha256"]:
                raise VsrnError(f"{path} changed since embed wrote it (sha256 differs from {MANIFEST}); "
                                f"{fix}")

    def __len__(self) -> int:
        return self.count

    def identity(self) -> dict[str, Any]:
        """What an index built from these embeddings records about them."""
        return {"path": str(self.folder.resolve()), "manifest_backend": self.manifest.get("backend"),
                "count": self.count, "shards": len(self.shards)}

    def images_entry(self, regions: int, boxes: str | None) -> dict[str, Any]:
        """index.json's "images" of an index built from these embeddings: no features file (attention
        maps need one: `vsrn-deploy attention --images`)."""
        return {"count": self.count, "regions": regions, "features": None, "features_shape": None,
                "features_bytes": None, "boxes": str(Path(boxes).resolve()) if boxes else None,
                "embeddings": self.identity()}

    def batches(self, batch: int = 65536) -> Iterator[tuple[int, np.ndarray]]:
        """(first id, float32 [b, D]) over all images in id order; ids and dims checked as read."""
        pq = pyarrow_parquet()
        for entry in self.shards:
            path = self.folder / entry["file"]
            handle = pq.ParquetFile(path)
            start = int(entry["first_id"])
            for record in handle.iter_batches(batch_size=batch, columns=["id", "embedding"]):
                ids = record.column(0).to_numpy()
                values = record.column(1).flatten().to_numpy(zero_copy_only=False)
                if values.size != len(ids) * self.embed_dim:
                    raise VsrnError(f"{path} holds embeddings that are not {self.embed_dim}-d; "
                                    f"run again: {KIND.rebuild_command(self.folder)}")
                if not np.array_equal(ids, np.arange(start, start + len(ids))):
                    raise VsrnError(f"{path} does not hold ids {start}.. in order; "
                                    f"run again: {KIND.rebuild_command(self.folder)}")
                yield start, values.astype(np.float32, copy=False).reshape(len(ids), self.embed_dim)
                start += len(ids)


def open_embeddings(folder: str | os.PathLike, export_sha256: str, onnx_dir: str | os.PathLike,
                    embed_dim: int | None = None) -> EmbeddingShards:
    """`EmbeddingShards` of `folder`, checked against the export (see the class)."""
    return EmbeddingShards(folder, export_sha256, onnx_dir, embed_dim)
