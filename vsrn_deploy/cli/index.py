"""`vsrn-deploy index`: encode a collection with an export and write a faiss index folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vsrn_deploy.cli.common import handle_errors
from vsrn_deploy.cli.options import EngineDir, OnnxDir, Threads, TorchFreeBackend, TorchFreeBackendOption


def index_command(
    images: Annotated[Path, typer.Option(help="Region features .npy (images, regions, dims) "
                                              "(memory-mapped, read batch by batch).")],
    out: Annotated[Path, typer.Option(help="The index folder to write (replaced only if an index).")],
    onnx_dir: OnnxDir = Path("export"),
    boxes: Annotated[Path | None, typer.Option(
        help="Region boxes .npy (images, regions, 4) (x1, y1, x2, y2), for attention maps.")] = None,
    captions: Annotated[Path | None, typer.Option(
        help="Captions, one per line, to search images -> captions.")] = None,
    backend: TorchFreeBackendOption = TorchFreeBackend("ort"),
    engine_dir: EngineDir = Path("engines"),
    batch: Annotated[int, typer.Option(help="Images (captions) per encoder call.")] = 64,
    kind: Annotated[str, typer.Option(help="flat (exact), ivfpq or hnsw (approximate; recall@10 "
                                           "against exact search is measured and printed).")] = "flat",
    threads: Threads = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bars.")] = True,
) -> None:
    """Encode images (and captions) with the exported graphs and write a searchable index."""
    from vsrn_deploy.search import IndexConfig, build_index

    build_index(IndexConfig(onnx_dir=str(onnx_dir), images=str(images), out=str(out),
                            boxes=str(boxes) if boxes else None,
                            captions=str(captions) if captions else None, backend=backend.value,
                            engine_dir=str(engine_dir), batch=batch, kind=kind, threads=threads,
                            progress=progress))


def register(app: typer.Typer) -> None:
    """Add `index` to the root app."""
    app.command("index")(handle_errors(index_command))
