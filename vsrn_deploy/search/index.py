"""`Index`: an index folder opened for search (text -> images, image -> captions) and attention maps.

    from vsrn_deploy.search import Index

    index = Index.open("index")
    for hit in index.search_text("a red dog to the left of a blue car", k=10):
        print(hit.id, hit.score)                       # image id, inner product (best first)
    index.search_images(image_ids=[0], k=5)            # [[Hit(caption id, score), ...]]

Scores are inner products of the l2-normalised embeddings; equal scores are ordered by lower id.
Queries are encoded by the export the index was built from (its manifest sha256 is checked), with
the backend recorded at build time unless another is given. No torch anywhere on this path.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vsrn_deploy.core import backends
from vsrn_deploy.core.contract import MANIFEST_NAME
from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.search import layout
from vsrn_deploy.search.encoders import ExportEncoders, FeatureFile
from vsrn_deploy.search.kinds import KindParams, exact_top_k, faiss_module, rescored_top_k

#: re-encoded features must give the stored image embedding to at least this cosine (`region_embeddings`)
SAME_IMAGE_COSINE = 0.99


@dataclass(frozen=True)
class Hit:
    """One result: the id of an image (or caption) and its score."""

    id: int
    score: float

    def as_json(self, what: str) -> dict[str, Any]:
        """{"image": id, "score": s} (or "caption"), the `search --json` form."""
        return {what: self.id, "score": self.score}


class Index:
    """An index folder opened for search. Build one with `vsrn_deploy.search.build_index`."""

    def __init__(self, path: Path, manifest: dict[str, Any], *, onnx_dir: Path, backend: str,
                 engine_dir: Path, threads: int | None) -> None:
        self.path = path
        self.manifest = manifest
        self.onnx_dir = onnx_dir
        self.backend = backend
        self.engine_dir = engine_dir
        self.threads = threads
        self.params = KindParams(**manifest.get("params", {}))
        self.image_embeddings = _load_npy(path / layout.IMAGE_EMBEDDINGS)
        self._faiss: dict[str, Any] = {}
        self.caption_embeddings = (_load_npy(path / layout.CAPTION_EMBEDDINGS)
                                   if layout.CAPTION_EMBEDDINGS in manifest["files"] else None)
        self.boxes = _load_npy(path / layout.BOXES) if layout.BOXES in manifest["files"] else None
        self._captions: list[str] | None = None
        self._encoders: ExportEncoders | None = None

    # --- opening ----------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike, *, onnx_dir: str | os.PathLike | None = None,
             backend: str | None = None, engine_dir: str | os.PathLike = "engines",
             threads: int | None = None, verify: bool = True) -> Index:
        """Open an index folder.

        Args:
            path: the folder `vsrn-deploy index --out` wrote.
            onnx_dir: the export to encode queries with (default: the one the index was built
                from); it must be that export (same manifest sha256).
            backend: a torch-free backend of the table (default: the one used at build time).
            engine_dir: TensorRT plans (trt).
            threads: ONNX Runtime threads.
            verify: check every file's sha256 before first use (the default; reads the folder once,
                about 0.6 s per GB: `vsrn_deploy.artifacts`); False checks sizes only.
        Raises:
            VsrnError: not an index, a truncated or changed file, another export.
        """
        from vsrn_deploy.artifacts.index import open_index_manifest

        path = Path(path)
        manifest = open_index_manifest(path, verify=verify)  # every file's sha256, before first use
        recorded = manifest["export"]
        if onnx_dir is not None:
            from vsrn_deploy.artifacts.export import manifest_sha256

            given = Path(onnx_dir) / MANIFEST_NAME
            if not given.is_file():
                raise VsrnError(f"{given} not found: is {onnx_dir} an export folder?")
            if manifest_sha256(onnx_dir) != recorded["manifest_sha256"]:
                raise VsrnError(f"the index {path} was built from another export ({recorded['path']}) than "
                                f"{onnx_dir}: search with that export, or rebuild the index with this one")
        return cls(path, manifest, onnx_dir=Path(onnx_dir or recorded["path"]),
                   backend=backend or manifest.get("backend", backends.defaults("index")[0]),
                   engine_dir=Path(engine_dir), threads=threads)

    # --- sizes and content ------------------------------------------------------------------
    @property
    def num_images(self) -> int:
        return int(self.manifest["images"]["count"])

    @property
    def num_captions(self) -> int:
        return int(self.manifest["captions"]["count"]) if self.manifest.get("captions") else 0

    @property
    def kind(self) -> str:
        return str(self.manifest["kind"])

    def caption(self, caption_id: int) -> str:
        """The text of caption `caption_id` (as indexed)."""
        if self._captions is None:
            # split on "\n" only, as the build wrote them: str.splitlines also breaks at \r, \x0c,
            # \x1e, U+0085 and U+2028, which a caption may hold, and shifted every later caption
            text = (self.path / layout.CAPTIONS).read_bytes().decode("utf-8")
            self._captions = text.removesuffix("\n").split("\n")
        return self._captions[caption_id]

    @property
    def encoders(self) -> ExportEncoders:
        """The export's encoders (opened on first use; the export must still be the one indexed)."""
        if self._encoders is None:
            enc = ExportEncoders(self.onnx_dir, self.backend, self.engine_dir, self.threads)
            if enc.manifest_sha256 != self.manifest["export"]["manifest_sha256"]:
                raise VsrnError(f"the export at {self.onnx_dir} is not the one the index {self.path} was "
                                "built from (its manifest changed); rebuild the index")
            self._encoders = enc
        return self._encoders

    def close(self) -> None:
        if self._encoders is not None:
            self._encoders.close()
            self._encoders = None
        for client in self.__dict__.pop("_milvus_clients", {}).values():
            client.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _index(self, target: str) -> Any:
        store = self.manifest.get("store")
        if target not in self._faiss and isinstance(store, dict) and store.get("name") == "milvus":
            from vsrn_deploy.search.milvus import open_collection  # answers faiss's search(), ntotal

            kind = self.kind if target == "images" else self.manifest.get("caption_kind") or self.kind
            size = self.num_images if target == "images" else self.num_captions
            self._faiss[target] = open_collection(store, target, kind, self.params, size,
                                                  self.__dict__.setdefault("_milvus_clients", {}))
        if target not in self._faiss:
            name = layout.IMAGE_INDEX if target == "images" else layout.CAPTION_INDEX
            try:
                self._faiss[target] = faiss_module().read_index(str(self.path / name))
            except RuntimeError as exc:
                raise VsrnError(f"cannot read {self.path / name} ({str(exc).strip().splitlines()[-1]}); "
                                "rebuild the index") from None
        return self._faiss[target]

    # --- search -----------------------------------------------------------------------------
    def _check_k(self, k: int, target: str) -> None:
        size = self.num_images if target == "images" else self.num_captions
        if target == "captions" and size == 0:
            raise VsrnError(f"the index {self.path} holds no captions; build it with --captions CAPS.txt "
                            "to search images -> captions")
        if not 1 <= k <= size:
            raise VsrnError(f"--k must be between 1 and {size} (the index holds {size} {target}), got {k}")

    def search_embeddings(self, queries: np.ndarray, target: str = "images", k: int = 10) -> list[list[Hit]]:
        """Top-k of each query embedding [q, D] among the indexed images or captions.

        Args:
            queries: float32 [q, D], l2-normalised (as the encoders give them).
            target: "images" or "captions".
            k: results per query (1 .. size of the target).
        Returns:
            One list of `Hit` per query, best first, equal scores by lower id.
        """
        if target not in ("images", "captions"):
            raise VsrnError(f"target must be images or captions, got {target!r}")
        self._check_k(k, target)
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if queries.shape[1] != self.manifest["embed_dim"]:
            raise VsrnError(f"queries have {queries.shape[1]} dims; the index holds "
                            f"{self.manifest['embed_dim']}-d embeddings")
        if not np.isfinite(queries).all():
            raise VsrnError("a query embedding holds NaN or Inf")
        index = self._index(target)
        kind = self.kind if target == "images" else self.manifest.get("caption_kind") or self.kind
        if kind == "flat":
            found = exact_top_k(index, queries, k)
        else:
            vectors = self.image_embeddings if target == "images" else self.caption_embeddings
            found = rescored_top_k(index, queries, k, vectors, self.params.rerank)
        return [[Hit(int(i), float(s)) for i, s in zip(ids, scores, strict=True)] for ids, scores in found]

    def search_text(self, text: str | Sequence[str], k: int = 10) -> list[Hit] | list[list[Hit]]:
        """Images for a caption (a list of `Hit`), or for each of several captions (a list of lists).

        Raises:
            VsrnError: an empty query, or one with no word in the vocabulary; k out of range.
        """
        single = isinstance(text, str)
        texts = [text] if single else list(text)
        self._check_k(k, "images")
        hits = self.search_embeddings(self.encoders.encode_texts(texts), "images", k)
        return hits[0] if single else hits

    def search_images(self, features: np.ndarray | None = None, *, image_ids: Sequence[int] | None = None,
                      k: int = 10) -> list[list[Hit]]:
        """Captions for images: region features [n, k, F] encoded now, or indexed images by id.

        Returns:
            One list of `Hit` (caption ids) per image, best first.
        """
        if (features is None) == (image_ids is None):
            raise VsrnError("give either region features or image ids")
        self._check_k(k, "captions")
        if image_ids is not None:
            queries = np.asarray(self.image_embeddings[self._check_ids(image_ids)], dtype=np.float32)
        else:
            feats = np.asarray(features, dtype=np.float32)
            if feats.ndim == 2:
                feats = feats[None]
            enc = self.encoders
            if feats.ndim != 3 or feats.shape[1:] != (enc.num_regions, enc.feature_dim):
                raise VsrnError(f"region features must be [n, {enc.num_regions}, {enc.feature_dim}], got "
                                f"{feats.shape}")
            from vsrn_deploy.search.encoders import finite_rows

            finite_rows(feats, 0, "the query features")
            queries = enc.encode_images(feats)[0]
        return self.search_embeddings(queries, "captions", k)

    def _check_ids(self, image_ids: Sequence[int]) -> np.ndarray:
        given = [int(i) for i in np.asarray(image_ids, dtype=object).reshape(-1)]
        if not given or min(given) < 0 or max(given) >= self.num_images:  # Python ints: no overflow
            raise VsrnError(f"image ids must lie in [0, {self.num_images - 1}] (the index holds "
                            f"{self.num_images} images), got {given[:5]}")
        return np.asarray(given, dtype=np.int64)

    # --- attention maps ---------------------------------------------------------------------
    def region_embeddings(self, image_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(image embeddings [n, D], region embeddings [n, k, D]) of indexed images, recomputed.

        Region embeddings are not stored (36x the image embeddings); they are encoded again from the
        features file the manifest names, which must still have the indexed shape.
        """
        ids = self._check_ids(image_ids)
        images = self.manifest["images"]
        if not images.get("features"):
            raise VsrnError(f"the index {self.path} was built from embeddings (index --embeddings) and "
                            "names no features file; draw maps with vsrn-deploy attention --images F.npy")
        enc = self.encoders
        feats = FeatureFile(images["features"], enc.num_regions, enc.feature_dim)
        if list(feats.array.shape) != images["features_shape"]:
            raise VsrnError(f"{images['features']} has shape {list(feats.array.shape)}, not the indexed "
                            f"{images['features_shape']}; it changed since indexing: rebuild the index")
        image, regions = enc.encode_images(feats.rows(ids))
        # The features file is the user's and may be huge (hashing 37 GB per query costs more than the
        # query): instead, the rows just encoded must give the image embeddings the index stored (both
        # l2-normalised). Other data of the same shape gives other embeddings (cosine <= 0.92 between
        # different images of the tests' tiny model); a backend of lower precision stays above 0.99.
        cosine = np.sum(image * np.asarray(self.image_embeddings[ids], dtype=np.float32), axis=1)
        changed = np.flatnonzero(cosine < SAME_IMAGE_COSINE)
        if changed.size:
            row = int(ids[changed[0]])
            raise VsrnError(f"{images['features']} row {row} no longer encodes to the indexed image "
                            f"(cosine {cosine[changed[0]]:.3f}): the features file changed since "
                            "indexing; rebuild the index (or draw from a features file with "
                            "vsrn-deploy attention --images F.npy)")
        return image, regions

    def attention_png(self, image_id: int, picture: str | os.PathLike | None = None, *, top: int = 3,
                      title: str | None = None) -> bytes:
        """The attention map of indexed image `image_id` as PNG bytes (needs the index's boxes)."""
        from vsrn_deploy.search.attention import render_attention

        if self.boxes is None:
            raise VsrnError(f"the index {self.path} has no boxes; build it with --boxes BOXES.npy for "
                            "attention maps")
        image, regions = self.region_embeddings([image_id])
        return render_attention(regions[0], image[0], np.asarray(self.boxes[image_id]), picture, top=top,
                                title=title)

    def write_attention_maps(self, folder: str | os.PathLike, image_ids: Sequence[int],
                             titles: Sequence[str]) -> list[Path]:
        """One attention-map PNG per image into `folder` (`NN_image_ID.png`, NN = 1-based position).

        Every name is checked before the first picture is drawn, and a run that fails leaves no
        folder it created behind (nothing else is touched).
        """
        from vsrn_deploy.artifacts.outputs import new_folder_guard
        from vsrn_deploy.search.attention import check_png_target, save_attention_png

        folder = Path(folder)
        ids = self._check_ids(image_ids).tolist()
        targets = [folder / f"{rank:02d}_image_{image}.png" for rank, image in enumerate(ids, 1)]
        for target in targets:
            check_png_target(target)
        written: list[Path] = []
        new: list[Path] = []  # pictures this run created (an earlier map of ours is replaced, not new)
        with new_folder_guard(folder):
            try:
                for image, target, title in zip(ids, targets, titles, strict=True):
                    if not target.exists():
                        new.append(target)
                    written.append(save_attention_png(target, self.attention_png(image, title=title)))
            except BaseException:
                for path in new:  # nothing of a failed run remains
                    path.unlink(missing_ok=True)
                raise
        return written


def _load_npy(path: Path) -> np.ndarray:
    from vsrn_deploy.io.inputs import load_npy

    return load_npy(path, "index file", fix="it is truncated or not an index file: rebuild the index")
