"""Beyond one machine: encode a corpus on Ray Data (`vsrn-deploy embed`), index it without encoding
(`vsrn-deploy index --embeddings`), in faiss or Milvus.

`run_embed(EmbedConfig(...))` encodes region-feature shards into parquet embedding shards (columns
``id`` int64, ``embedding`` list<float32>) with an embeddings.json manifest; `open_embeddings` reads
them back, checked. Ray and pyarrow are imported on use (`pip install 'vsrn-deploy[distributed]'`);
torch never.
"""

from __future__ import annotations

from vsrn_deploy.artifacts.embeddings import open_embeddings
from vsrn_deploy.distributed.job import EmbedConfig, run_embed

__all__ = ["EmbedConfig", "open_embeddings", "run_embed"]
