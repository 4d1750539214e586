"""`build_index`: encode a collection with the exported graphs and write an index folder.

The folder (its files named in `vsrn_deploy.search.layout`):

- ``index.json``: the manifest: format, the export it was built from (path, manifest sha256, graph
  sha256s), the backend, the vocabulary, counts, dims, the index kind and its parameters, the
  recall@10 of an approximate kind against exact search, and every file's bytes and sha256;
- ``image_embeddings.npy`` float32 [n, D] and ``images.faiss``; ``boxes.npy`` float32 [n, k, 4]
  when given; ``caption_embeddings.npy``, ``captions.faiss`` and ``captions.txt`` when captions are
  given; ``vocab.json``, the export's vocabulary.

Region embeddings are not stored (36x the image embeddings): attention maps recompute them for
the few images asked for, from the features file the manifest names.

The folder is built beside `out` and committed file by file by the index's writer
(`vsrn_deploy.artifacts.index.KIND`): an existing `out` must be an index this tool wrote (or empty),
only the files its index.json lists are replaced, and anything else a user keeps there stays.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vsrn_deploy.artifacts import index as index_artifact
from vsrn_deploy.artifacts.outputs import refuse_overlap
from vsrn_deploy.core import backends
from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.io.files import atomic_write_json, sha256_file
from vsrn_deploy.search import layout
from vsrn_deploy.search.attention import MAX_CANVAS
from vsrn_deploy.search.encoders import ExportEncoders, FeatureFile, open_boxes
from vsrn_deploy.search.kinds import (
    IVFPQ_MIN_VECTORS,
    KINDS,
    KindParams,
    brute_force_top_k,
    default_params,
    new_index,
    recall_at,
    rescored_top_k,
    train_and_fill,
)


@dataclass(frozen=True)
class IndexConfig:
    """What `vsrn-deploy index` builds.

    Attributes:
        onnx_dir: the export folder.
        images: region features .npy [n, k, F] (memory-mapped).
        out: the index folder to write.
        boxes: region boxes .npy [n, k, 4] (x1, y1, x2, y2), for attention maps.
        captions: captions, one per line, to search images -> captions.
        backend: a torch-free backend of the table (`search.encoders.INDEX_BACKENDS`).
        engine_dir: TensorRT plans (backends that run engines).
        batch: images (captions) per encoder call.
        kind: flat (exact), ivfpq or hnsw.
        recall_queries: queries sampled to measure an approximate kind's recall@10 at build time.
        threads: ONNX Runtime threads (None: its default).
        seed: the sample of training vectors and recall queries.
        progress: draw a progress bar (tqdm, when installed) on stderr.
    """

    onnx_dir: str
    images: str
    out: str
    boxes: str | None = None
    captions: str | None = None
    backend: str = backends.defaults("index")[0]
    engine_dir: str = "engines"
    batch: int = 64
    kind: str = "flat"
    recall_queries: int = 200
    threads: int | None = None
    seed: int = 0
    progress: bool = True
    embeddings: str | None = None  # a `vsrn-deploy embed` folder: image embeddings read, not encoded
    store: str = "faiss"  # or "milvus" (vsrn_deploy.search.milvus)
    milvus_uri: str | None = None
    collection: str | None = None


_log = logging.getLogger(__name__)  # progress lines; the command line shows them on stderr


def _bar(total: int, desc: str, enabled: bool) -> Any:
    """A tqdm bar (stderr) when enabled and installed; a no-op object otherwise."""

    class _Null:
        def update(self, n: int) -> None: ...
        def close(self) -> None: ...

    if not enabled:
        return _Null()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _Null()
    return tqdm(total=total, desc=desc, unit="item", leave=False, dynamic_ncols=True, file=sys.stderr)


def check_out_folder(out: Path, cfg: IndexConfig | None = None) -> None:
    """Refuse an `out` that is a file or a non-empty folder this tool did not write, or (given `cfg`)
    one that is or holds an input or would replace one (a file the index writes)."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise VsrnError(f"{out} exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not layout.is_index_folder(out):
        raise VsrnError(f"{out} is a non-empty folder that vsrn-deploy index did not write; choose another "
                        "--out (or remove it yourself)")
    if cfg is not None:
        refuse_overlap(out, input_dirs=_input_dirs(cfg), input_files=_input_files(cfg),
                       entries=[*index_artifact.ENTRIES, layout.MANIFEST])


def _input_dirs(cfg: IndexConfig) -> list[str | None]:
    return [cfg.onnx_dir, cfg.engine_dir if _needs_engines(cfg.backend) else None, cfg.embeddings]


def _input_files(cfg: IndexConfig) -> list[str | None]:
    return [cfg.images or None, cfg.boxes, cfg.captions]


def _needs_engines(backend: str) -> bool:
    """Whether `backend` runs engine plans (its engine folder is then an input); unknown: False."""
    return backend in backends.NAMES and backends.get(backend).needs is backends.Needs.ENGINES


def _copy_rows(src: np.ndarray, dst_path: Path, chunk: int = 65536) -> None:
    """Stream a (memory-mapped) array into a new .npy, chunk by chunk."""
    dst = np.lib.format.open_memmap(dst_path, mode="w+", dtype=np.float32, shape=src.shape)
    for start in range(0, src.shape[0], chunk):
        raw = np.asarray(src[start:start + chunk])
        if raw.dtype.kind not in "fiu":
            raise VsrnError(f"the boxes must hold real numbers (x1, y1, x2, y2), got dtype {raw.dtype}")
        flat = raw.reshape(len(raw), -1).astype(np.float64)
        # the rule attention maps draw by (search.attention): finite, and within a drawable canvas
        bad_rows = ~(np.isfinite(flat) & (np.abs(flat) <= MAX_CANVAS)).all(1)
        if bad_rows.any():
            bad = start + int(np.flatnonzero(bad_rows)[0])
            raise VsrnError(f"the boxes of image {bad} hold NaN, Inf or coordinates beyond {MAX_CANVAS} px; "
                            "give boxes in pixels of the photo or as fractions in [0, 1]")
        block = raw.astype(np.float32)
        dst[start:start + chunk] = block
    dst.flush()
    del dst


def _write_faiss(index: Any, path: Path) -> None:
    from vsrn_deploy.search.kinds import faiss_module

    faiss_module().write_index(index, str(path))


def _fill(kind: str, embeddings: np.ndarray, seed: int, desc: str, show: bool, store: Any = None,
          target: str = "images") -> tuple[Any, KindParams]:
    n, dim = embeddings.shape
    params = default_params(kind, n, dim)
    if store is not None:  # the vectors go to Milvus (a staging collection until the folder is in place)
        return store.fill(target, kind, embeddings, params), params
    index = new_index(kind, dim, n, params)
    bar = _bar(n, desc, show)
    done = [0]

    def tick(upto: int) -> None:
        bar.update(upto - done[0])
        done[0] = upto

    try:
        train_and_fill(index, embeddings, seed=seed, progress=tick)
    finally:
        bar.close()
    return index, params


def measure_recall(index: Any, embeddings: np.ndarray, queries: np.ndarray, params: KindParams,
                   k: int = 10) -> float:
    """recall@k of an approximate index (as searched: candidates re-scored) against exact search."""
    k = min(k, embeddings.shape[0])
    exact = brute_force_top_k(embeddings, queries, k)
    approx = [ids for ids, _ in rescored_top_k(index, queries, k, embeddings, params.rerank)]
    return recall_at(approx, exact, k)


def build_index(cfg: IndexConfig) -> dict[str, Any]:
    """Encode `cfg.images` (and captions) with the export and write the index folder `cfg.out`.

    Returns:
        The manifest written to ``index.json``.
    Raises:
        VsrnError: bad input (see the checks of `FeatureFile`, boxes, captions, the export).
    """
    if cfg.kind not in KINDS:
        raise VsrnError(f"--kind must be one of {', '.join(KINDS)}, got {cfg.kind!r}")
    if cfg.batch < 1:
        raise VsrnError(f"--batch must be >= 1, got {cfg.batch}")
    out = Path(cfg.out)
    check_out_folder(out, cfg)
    from vsrn_deploy.search.milvus import open_store

    store = open_store(cfg.store, cfg.milvus_uri, cfg.collection, out, cfg.kind)  # None: faiss files here
    try:
        manifest = _build_index(cfg, out, store)
        if store is not None:
            store.finish()  # the folder is in place: its collections take their names
    except BaseException:
        if store is not None:
            store.abort()
        raise
    finally:
        if store is not None:
            store.close()
    return manifest


def _build_index(cfg: IndexConfig, out: Path, store: Any) -> dict[str, Any]:
    # the index's writer: locked for the whole build (a second build into `out` is refused), and it
    # replaces only the files the previous index.json lists; nothing else in `out` is touched
    writer = index_artifact.KIND.writer(out, entries=index_artifact.ENTRIES, input_dirs=_input_dirs(cfg),
                                        input_files=_input_files(cfg))
    clock = time.perf_counter()
    with ExportEncoders(cfg.onnx_dir, cfg.backend, cfg.engine_dir, cfg.threads) as enc:
        from vsrn_deploy.artifacts.export import verify_listed_files
        from vsrn_deploy.io.inputs import read_caption_lines

        verify_listed_files(enc.onnx_dir, enc.manifest)
        if cfg.embeddings:  # embeddings of `vsrn-deploy embed`, checked against this export
            from vsrn_deploy.artifacts.embeddings import open_embeddings

            embedded = open_embeddings(cfg.embeddings, enc.manifest_sha256, cfg.onnx_dir, enc.embed_dim)
            n, k = len(embedded), enc.num_regions
        else:
            feats = FeatureFile(cfg.images, enc.num_regions, enc.feature_dim)
            n, k = len(feats), feats.num_regions
        boxes = open_boxes(cfg.boxes, n, k) if cfg.boxes else None
        captions = read_caption_lines(cfg.captions, "--captions") if cfg.captions else None
        with writer as folder:
            stage = folder.staging
            files: dict[str, str] = {}
            emb = np.lib.format.open_memmap(stage / layout.IMAGE_EMBEDDINGS, mode="w+", dtype=np.float32,
                                            shape=(n, enc.embed_dim))
            bar = _bar(n, "images", cfg.progress)
            try:
                blocks = (embedded.batches() if cfg.embeddings else
                          ((s, enc.encode_images(b)[0]) for s, b in feats.batches(cfg.batch)))
                for start, batch in blocks:
                    emb[start:start + len(batch)] = batch
                    bar.update(len(batch))
            finally:
                bar.close()
            emb.flush()
            files[layout.IMAGE_EMBEDDINGS] = "image embeddings"
            image_index, params = _fill(cfg.kind, emb, cfg.seed, "index images", cfg.progress, store,
                                        "images")
            if store is None:
                _write_faiss(image_index, stage / layout.IMAGE_INDEX)
                files[layout.IMAGE_INDEX] = "image index"
            if boxes is not None:
                _copy_rows(boxes, stage / layout.BOXES)
                files[layout.BOXES] = "boxes"
            shutil.copyfile(enc.vocab_path, stage / layout.VOCAB)
            files[layout.VOCAB] = "vocabulary"

            cap_emb = None
            caption_index = None
            if captions is not None:
                cap_emb = np.lib.format.open_memmap(stage / layout.CAPTION_EMBEDDINGS, mode="w+",
                                                    dtype=np.float32, shape=(len(captions), enc.embed_dim))
                bar = _bar(len(captions), "captions", cfg.progress)
                try:
                    for start in range(0, len(captions), cfg.batch):
                        chunk = captions[start:start + cfg.batch]
                        cap_emb[start:start + len(chunk)] = enc.encode_texts(chunk)
                        bar.update(len(chunk))
                finally:
                    bar.close()
                cap_emb.flush()
                too_few = cfg.kind == "ivfpq" and len(captions) < IVFPQ_MIN_VECTORS
                caption_kind = "flat" if too_few else cfg.kind
                caption_index, caption_params = _fill(caption_kind, cap_emb, cfg.seed, "index captions",
                                                      cfg.progress, store, "captions")
                if store is None:
                    _write_faiss(caption_index, stage / layout.CAPTION_INDEX)
                (stage / layout.CAPTIONS).write_text("\n".join(captions) + "\n", encoding="utf-8")
                files.update({layout.CAPTION_EMBEDDINGS: "caption embeddings",
                              **({layout.CAPTION_INDEX: "caption index"} if store is None else {}),
                              layout.CAPTIONS: "captions"})

            recall = None
            if cfg.kind != "flat":
                rng = np.random.default_rng(cfg.seed + 1)
                if cap_emb is not None:  # real queries: captions searching images
                    count = min(cfg.recall_queries, len(cap_emb))
                    pick = np.sort(rng.choice(len(cap_emb), count, replace=False))
                    queries = np.asarray(cap_emb[pick])
                    source = "captions"
                else:  # image embeddings as queries (their own hit is one of the ten)
                    pick = np.sort(rng.choice(n, min(cfg.recall_queries, n), replace=False))
                    queries = np.asarray(emb[pick])
                    source = "images"
                recall = {"images": measure_recall(image_index, emb, queries, params), "queries": len(pick),
                          "query_source": source}
                said = f"images {recall['images']:.4f} ({len(pick)} {source} as queries)"
                if caption_index is not None and caption_kind != "flat":
                    img_q = np.asarray(emb[np.sort(rng.choice(n, min(cfg.recall_queries, n), replace=False))])
                    recall["captions"] = measure_recall(caption_index, cap_emb, img_q, caption_params)
                    recall["caption_queries"] = len(img_q)
                    said += f", captions {recall['captions']:.4f} ({len(img_q)} images as queries)"
                _log.info(f"recall@10 of {cfg.kind} against exact search: {said}")
            del emb, cap_emb

            manifest = {
                "format": layout.FORMAT,
                "format_version": layout.FORMAT_VERSION,
                "export": enc.identity(),
                "backend": cfg.backend,
                "vocab": {"file": layout.VOCAB, "sha256": sha256_file(enc.vocab_path),
                          "words": len(enc.vocab)},
                "images": ({"count": n, "regions": k, "features": str(Path(cfg.images).resolve()),
                            "features_shape": list(feats.array.shape),
                            "features_bytes": Path(cfg.images).stat().st_size,
                            "boxes": str(Path(cfg.boxes).resolve()) if cfg.boxes else None}
                           if not cfg.embeddings else embedded.images_entry(k, cfg.boxes)),
                "captions": ({"count": len(captions), "source": str(Path(cfg.captions).resolve())}
                             if captions is not None else None),
                "embed_dim": enc.embed_dim,
                "metric": "inner product of l2-normalised embeddings",
                "kind": cfg.kind,
                "params": params.to_dict(),
                "caption_kind": caption_kind if captions is not None else None,
                "recall_at_10": recall,
                **({"store": store.record(cfg.kind, captions is not None)} if store is not None else {}),
                "files": {name: {"bytes": (stage / name).stat().st_size, "sha256": sha256_file(stage / name),
                                 "what": what} for name, what in files.items()},
                "seconds": round(time.perf_counter() - clock, 3),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            atomic_write_json(stage / layout.MANIFEST, manifest)
            folder.commit([*files, layout.MANIFEST])  # file by file, index.json last
    _log.info(f"indexed {n} images" + (f" and {len(captions)} captions" if captions else "")
        + f" ({cfg.kind}, {enc.embed_dim}-d, {cfg.backend}) in {manifest['seconds']:.1f} s -> {out}")
    return manifest
