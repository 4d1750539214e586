"""File names of an index folder (`vsrn-deploy index --out INDEX`), stated once."""

from __future__ import annotations

import json
from pathlib import Path

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


def is_index_folder(path: Path) -> bool:
    """Whether `path` holds an index manifest this tool wrote."""
    try:
        return json.loads((path / MANIFEST).read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False
