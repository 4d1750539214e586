"""`vsrn-deploy index`: encode a collection with an export and write a faiss index folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vsrn_deploy.cli.common import handle_errors
from vsrn_deploy.cli.options import (
    MAX_SIZE,
    TORCH_FREE_DEFAULT,
    EngineDir,
    OnnxDir,
    Threads,
    TorchFreeBackendOption,
    bounded,
)


def index_command(
    out: Annotated[Path, typer.Option(help="The index folder to write (replaced only if an index).")],
    images: Annotated[Path | None, typer.Option(help="Region features .npy (images, regions, dims) "
                                                     "(memory-mapped, read batch by batch).")] = None,
    embeddings: Annotated[Path | None, typer.Option(
        help="Instead of --images: the folder of vsrn-deploy embed (image embeddings read, not "
             "encoded; made with the same --onnx-dir).")] = None,
    onnx_dir: OnnxDir = Path("export"),
    boxes: Annotated[Path | None, typer.Option(
        help="Region boxes .npy (images, regions, 4) (x1, y1, x2, y2), for attention maps.")] = None,
    captions: Annotated[Path | None, typer.Option(
        help="Captions, one per line, to search images -> captions.")] = None,
    backend: TorchFreeBackendOption = TORCH_FREE_DEFAULT,
    engine_dir: EngineDir = Path("engines"),
    batch: Annotated[int, bounded("Images (captions) per encoder call.", 1, MAX_SIZE)] = 64,
    kind: Annotated[str, typer.Option(help="flat (exact), ivfpq or hnsw (approximate; recall@10 "
                                           "against exact search is measured and printed).")] = "flat",
    threads: Threads = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bars.")] = True,
    store: Annotated[str, typer.Option(help="faiss (files in the index folder) or milvus (a collection "
                                            "in --milvus-uri; the folder records it).")] = "faiss",
    milvus_uri: Annotated[str | None, typer.Option(
        help="With --store milvus: a server URL (http://host:19530) or a Milvus Lite file "
             "(milvus.db).")] = None,
    collection: Annotated[str | None, typer.Option(
        help="With --store milvus: the collection (default: vsrn_<index folder name>).")] = None,
) -> None:
    """Encode images (and captions) with the exported graphs and write a searchable index."""
    from vsrn_deploy.core.errors import VsrnError
    from vsrn_deploy.search import IndexConfig, build_index

    if (images is None) == (embeddings is None):
        raise VsrnError("give --images F.npy (encoded now) or --embeddings EMB (from vsrn-deploy embed), "
                        "exactly one")
    build_index(IndexConfig(onnx_dir=str(onnx_dir), images=str(images) if images else "", out=str(out),
                            boxes=str(boxes) if boxes else None,
                            captions=str(captions) if captions else None, backend=backend.value,
                            engine_dir=str(engine_dir), batch=batch, kind=kind, threads=threads,
                            progress=progress, embeddings=str(embeddings) if embeddings else None,
                            store=store, milvus_uri=milvus_uri, collection=collection))


def register(app: typer.Typer) -> None:
    """Add `index` to the root app."""
    app.command("index")(handle_errors(index_command))
