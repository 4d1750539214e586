"""Encoding for the index: the exported graphs through the torch-free runners of the backend table
(`vsrn_deploy.core.backends.choices("torch-free")`: ONNX Runtime, OpenVINO, TensorRT), never torch.

`ExportEncoders` opens an export folder (its manifest, its vocabulary) and encodes region features
and captions in batches; `FeatureFile` opens a `.npy` of region features memory-mapped (a
5,000,000 x 36 x 2048 file is never read whole) and hands out checked, finite float32 batches.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vsrn_deploy.core import backends
from vsrn_deploy.core.contract import IMAGE, MANIFEST_NAME, TEXT, UNK_ID, VOCAB_NAME
from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.core.tokens import unusable_query
from vsrn_deploy.io.inputs import load_npy

#: Backends that run exported graphs without torch (read from the backend table).
INDEX_BACKENDS = backends.choices("torch-free")


def finite_rows(batch: np.ndarray, first: int, source: str) -> None:
    """Raise naming the first images (global row numbers) of `batch` whose features hold NaN/Inf.

    The per-batch form of `vsrn_deploy.io.inputs.check_finite_features`: `index` checks each batch
    as it encodes it, so a file of millions of images is read once, not twice.

    Args:
        batch: [b, k, F] features of rows first .. first+b-1 of `source`.
        first: the row number of batch[0].
        source: the file, for the message.
    """
    bad = np.flatnonzero(~np.isfinite(batch.reshape(batch.shape[0], -1)).all(axis=1))
    if bad.size:
        rows = [int(first + i) for i in bad[:10]]
        raise VsrnError(f"region features of image {rows[0]} of {source} hold NaN or Inf"
                        + (f" (also images {rows[1:]})" if len(rows) > 1 else "")
                        + "; fix or drop those images before indexing")


class FeatureFile:
    """Region features [n, k, F] from a `.npy`, memory-mapped, read batch by batch.

    Args:
        path: the .npy file.
        num_regions, feature_dim: what the image graph takes (checked when given).
    Raises:
        VsrnError: missing, unreadable or truncated file; not 3-D; the wrong region grid.
    """

    def __init__(self, path: str | os.PathLike, num_regions: int | None = None,
                 feature_dim: int | None = None) -> None:
        self.path = Path(path)
        self.array = load_npy(self.path, "region features")
        if self.array.ndim != 3 or not np.issubdtype(self.array.dtype, np.floating):
            raise VsrnError(f"{self.path} must hold float region features [images, regions, dims]; got "
                            f"{self.array.dtype} {self.array.shape}")
        n, k, f = self.array.shape
        if num_regions is not None and (k, f) != (num_regions, feature_dim):
            raise VsrnError(f"{self.path} has {k} regions of {f} dims per image; the export takes "
                            f"{num_regions} x {feature_dim}")
        if n == 0:
            raise VsrnError(f"{self.path} holds no images")

    def __len__(self) -> int:
        return int(self.array.shape[0])

    @property
    def num_regions(self) -> int:
        return int(self.array.shape[1])

    def rows(self, ids: Sequence[int]) -> np.ndarray:
        """float32 [len(ids), k, F] of the given images, checked finite."""
        out = np.ascontiguousarray(self.array[np.asarray(ids, dtype=np.int64)], dtype=np.float32)
        for i, row in zip(ids, out, strict=True):
            finite_rows(row[None], int(i), str(self.path))
        return out

    def batches(self, batch: int) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, float32 [b, k, F]) over the file; each batch is checked finite."""
        for start in range(0, len(self), batch):
            chunk = np.ascontiguousarray(self.array[start:start + batch], dtype=np.float32)
            finite_rows(chunk, start, str(self.path))
            yield start, chunk


def open_boxes(path: str | os.PathLike, n: int, k: int) -> np.ndarray:
    """Region boxes [n, k, 4] from a .npy, memory-mapped; their count must equal the regions'."""
    path = Path(path)
    boxes = load_npy(path, "boxes")
    if boxes.dtype.kind not in "fiu":
        raise VsrnError(f"{path} must hold real numbers (x1, y1, x2, y2), got dtype {boxes.dtype}")
    if boxes.ndim != 3 or boxes.shape[2] != 4:
        raise VsrnError(f"{path} must hold boxes [images, regions, 4], got shape {boxes.shape}")
    if boxes.shape[0] != n or boxes.shape[1] != k:
        raise VsrnError(f"{path} holds {boxes.shape[0]} images x {boxes.shape[1]} boxes, but the features "
                        f"hold {n} images x {k} regions: the box count must equal the region count")
    return boxes


class ExportEncoders:
    """The two exported encoders of one export folder, run by a non-torch backend.

    Args:
        onnx_dir: the export folder (manifest.json, vocab.json, the graphs).
        backend: a torch-free backend of the table (`INDEX_BACKENDS`).
        engine_dir: the TensorRT plans (backends that run engines).
        threads: ONNX Runtime intra-op threads.
    Raises:
        VsrnError: no export there, an unknown backend, or a graph missing.
    """

    def __init__(self, onnx_dir: str | os.PathLike, backend: str = backends.defaults("index")[0],
                 engine_dir: str | os.PathLike = "engines", threads: int | None = None) -> None:
        if backend not in INDEX_BACKENDS:
            raise VsrnError(f"backend must be one of {', '.join(INDEX_BACKENDS)} (torch-free), "
                            f"got {backend!r}")
        from vsrn_deploy.artifacts.export import manifest_sha256, read_export_manifest

        self.onnx_dir = Path(onnx_dir)
        self.backend = backend
        self.engine_dir = Path(engine_dir)
        self.threads = threads
        self.manifest = read_export_manifest(self.onnx_dir)
        self.manifest_sha256 = manifest_sha256(self.onnx_dir)
        config = self.manifest.get("config") or {}
        try:
            self.num_regions = int(config["num_regions"])
            self.feature_dim = int(config["img_dim"])
            self.embed_dim = int(config["embed_size"])
        except (KeyError, TypeError, ValueError):
            raise VsrnError(f"{self.onnx_dir / MANIFEST_NAME} lacks the model config; "
                            "re-run the export") from None
        self._runners: dict[str, Any] = {}
        self._vocab: Any = None

    @property
    def vocab_path(self) -> Path:
        return self.onnx_dir / VOCAB_NAME

    @property
    def vocab(self) -> Any:
        if self._vocab is None:
            from vsrn_deploy.data.vocab import load_vocab

            if not self.vocab_path.is_file():
                raise VsrnError(f"{self.vocab_path} not found; the export writes it (vsrn-deploy export "
                                "CKPT --vocab VOCAB)")
            if VOCAB_NAME in self.manifest["files"]:  # checked before first use, like the graphs
                from vsrn_deploy.artifacts.export import verify_listed_files

                verify_listed_files(self.onnx_dir, self.manifest, [VOCAB_NAME])
            self._vocab = load_vocab(str(self.vocab_path))
        return self._vocab

    def _runner(self, encoder: str) -> Any:
        if encoder not in self._runners:
            from vsrn_deploy.backend.registry import make_runner

            runner = make_runner(self.backend, encoder, onnx_dir=self.onnx_dir, engine_dir=self.engine_dir,
                                 threads=self.threads)
            runner.activate()
            self._runners[encoder] = runner
        return self._runners[encoder]

    def close(self) -> None:
        for runner in self._runners.values():
            runner.deactivate()
        self._runners.clear()

    def __enter__(self) -> ExportEncoders:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def encode_images(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float32 [b, k, F] -> (image embeddings [b, D], region embeddings [b, k, D])."""
        out = self._runner(IMAGE.key).infer({IMAGE.inputs[0].name: features})
        return out[IMAGE.outputs[0].name], out[IMAGE.outputs[1].name]

    def token_ids(self, captions: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Captions -> (token_ids, lengths); a caption without one known word is refused."""
        ids, lengths = self.vocab.encode_batch(list(captions))
        for row, caption in enumerate(captions):
            problem = unusable_query(ids[row, :lengths[row]].tolist(), caption, UNK_ID)
            if problem:
                where = f"the export's vocabulary ({self.vocab_path})"
                raise VsrnError(problem.replace("the vocabulary", where))
        return ids, lengths

    def encode_texts(self, captions: Sequence[str]) -> np.ndarray:
        """Captions -> text embeddings [b, D]."""
        ids, lengths = self.token_ids(captions)
        out = self._runner(TEXT.key).infer({TEXT.inputs[0].name: ids, TEXT.inputs[1].name: lengths})
        return out[TEXT.outputs[0].name]

    def identity(self) -> dict[str, Any]:
        """What the index records about this export: path, manifest sha256, graph files' sha256."""
        files = self.manifest.get("files", {})
        return {"path": str(self.onnx_dir.resolve()), "manifest_sha256": self.manifest_sha256,
                "files": {name: entry.get("sha256") for name, entry in files.items()
                          if name.endswith(".onnx")},
                "config": {"num_regions": self.num_regions, "img_dim": self.feature_dim,
                           "embed_size": self.embed_dim}}
