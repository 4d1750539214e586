"""File names of an index folder (`vsrn-deploy index --out INDEX`): declared in
`vsrn_deploy.artifacts.index`, named here for the search code."""

from __future__ import annotations

from vsrn_deploy.artifacts.index import (
    BOXES,
    CAPTION_EMBEDDINGS,
    CAPTION_INDEX,
    CAPTIONS,
    FORMAT,
    FORMAT_VERSION,
    IMAGE_EMBEDDINGS,
    IMAGE_INDEX,
    MANIFEST,
    VOCAB,
    is_index_folder,
)

__all__ = ["BOXES", "CAPTION_EMBEDDINGS", "CAPTION_INDEX", "CAPTIONS", "FORMAT", "FORMAT_VERSION",
           "IMAGE_EMBEDDINGS", "IMAGE_INDEX", "MANIFEST", "VOCAB", "is_index_folder"]
