"""Retrieval on the exported graphs: an image (and caption) index and search, without torch.

`build_index(IndexConfig(...))` encodes a collection with the export's ONNX graphs (or TensorRT
plans) and writes an index folder; `Index.open(path)` searches it: `.search_text(caption)` gives
images, `.search_images(...)` gives captions, `.attention_png(image_id)` draws the paper's attention
map. faiss is imported on use (`pip install 'vsrn-deploy[search]'`).
"""

from __future__ import annotations

from vsrn_deploy.search.build import IndexConfig, build_index
from vsrn_deploy.search.index import Hit, Index
from vsrn_deploy.search.kinds import KINDS

__all__ = ["Hit", "Index", "IndexConfig", "KINDS", "build_index"]
