"""The index folder (`vsrn-deploy index --out INDEX`): index.json and the files it lists.

index.json keys: format, format_version, export {path, manifest_sha256, files {graph: sha256},
config}, backend, vocab, images, captions, embed_dim, metric, kind, params, caption_kind,
recall_at_10, store, files {name: {bytes, sha256, what}}, seconds, created. `open_index_manifest` verifies
the sha256 of every listed file before anything is used (sizes alone let a same-size change
through: a flipped byte in the embeddings gave scores of -2.3e28).

``store`` is where the vectors are searched: absent (every index written before Milvus, and every
faiss index: ``images.faiss`` / ``captions.faiss`` in the folder) or, for ``index --store milvus``,
{name: "milvus", uri, collection, caption_collection, index_type, metric}
(`vsrn_deploy.search.milvus.MilvusStore.record`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vsrn_deploy.artifacts.base import ABSENT, Kind, Manifest, check_sizes, load_manifest, verify_files
from vsrn_deploy.core.errors import VsrnError

FORMAT = "vsrn-deploy-index"
FORMAT_VERSION = 1
MANIFEST = "index.json"
IMAGE_EMBEDDINGS = "image_embeddings.npy"
IMAGE_INDEX = "images.faiss"
BOXES = "boxes.npy"
CAPTION_EMBEDDINGS = "caption_embeddings.npy"
CAPTION_INDEX = "captions.faiss"
CAPTIONS = "captions.txt"
VOCAB = "vocab.json"
ENTRIES = (IMAGE_EMBEDDINGS, IMAGE_INDEX, BOXES, CAPTION_EMBEDDINGS, CAPTION_INDEX, CAPTIONS, VOCAB)
REBUILD = "vsrn-deploy index --onnx-dir EXPORT --images F.npy --out {folder}"

KIND = Kind("index", MANIFEST, REBUILD, recognise=lambda data: data.get("format") == FORMAT,
            overwrite_flag=None)  # `index` has no --overwrite: what is in the way is moved by the user


@dataclass
class IndexManifest(Manifest):
    """index.json, one field per key (see the module docstring)."""

    format: Any = ABSENT
    format_version: Any = ABSENT
    export: Any = ABSENT
    backend: Any = ABSENT
    vocab: Any = ABSENT
    images: Any = ABSENT
    captions: Any = ABSENT
    embed_dim: Any = ABSENT
    metric: Any = ABSENT
    kind: Any = ABSENT
    params: Any = ABSENT
    caption_kind: Any = ABSENT
    recall_at_10: Any = ABSENT
    store: Any = ABSENT  # written only by --store milvus (between recall_at_10 and files)
    files: Any = ABSENT
    seconds: Any = ABSENT
    created: Any = ABSENT

    @property
    def store_name(self) -> str:
        """"faiss" (no store key: the index files are in the folder) or the store's name ("milvus")."""
        return self.store.get("name", "faiss") if isinstance(self.store, dict) else "faiss"


def is_index_folder(path: str | os.PathLike) -> bool:
    """Whether `path` holds an index manifest this tool wrote."""
    try:
        return load_manifest(Path(path) / MANIFEST, what="", fix="").get("format") == FORMAT
    except VsrnError:
        return False


def open_index_manifest(path: str | os.PathLike, *, verify: bool = True) -> dict[str, Any]:
    """The manifest of an index folder, every listed file checked (sha256) before first use.

    Args:
        path: the index folder.
        verify: check sha256 (True) or only presence and size (False: for a quick look).
    Raises:
        VsrnError: not an index, newer than this version, a missing, truncated or changed file (naming
            it and the command that rebuilds the index).
    """
    path = Path(path)
    fix = f"rebuild it with: {REBUILD.format(folder=path)}"
    if not (path / MANIFEST).is_file():
        raise VsrnError(f"{path} is not an index folder (no {MANIFEST}); build one with "
                        f"{REBUILD.format(folder=path)}")
    manifest = load_manifest(path / MANIFEST, what="an index manifest", fix=fix)
    if manifest.get("format") != FORMAT:
        raise VsrnError(f"{path / MANIFEST} is not a vsrn-deploy index manifest; {fix}")
    version = manifest.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise VsrnError(f"{path} was written by a newer vsrn-deploy (format_version {version!r}); "
                        "upgrade vsrn-deploy")
    files = manifest.get("files")
    if not isinstance(files, dict) or not isinstance(manifest.get("export"), dict):
        raise VsrnError(f"{path / MANIFEST} lacks its file list; {fix}")
    check_sizes(path, files, manifest_name=MANIFEST, fix=fix, since="the index was built", required=True)
    if verify:
        verify_files(path, files, manifest_name=MANIFEST, fix=fix, since="the index was built")
    return manifest
