"""`vsrn-deploy embed`: encode region-feature shards into parquet embedding shards on Ray Data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vsrn_deploy.cli.common import handle_errors
from vsrn_deploy.cli.options import (
    MAX_SIZE,
    MAX_THREADS,
    TORCH_FREE_DEFAULT,
    EngineDir,
    OnnxDir,
    TorchFreeBackendOption,
)


def embed_command(
    images: Annotated[str, typer.Option(
        help="A glob of region-feature shards, quoted: .npy (images, regions, dims) or .parquet (column "
             "'features': regions x dims floats per image); taken in sorted order, ids numbered across "
             "them.")],
    out: Annotated[Path, typer.Option(help="The embeddings folder: one parquet shard per input shard + "
                                           "embeddings.json; a rerun redoes only missing or changed "
                                           "shards.")],
    onnx_dir: OnnxDir = Path("export"),
    ray_address: Annotated[str | None, typer.Option(
        help="A Ray cluster to run on (e.g. ray://head:10001 or auto); default: Ray on this "
             "machine.")] = None,
    workers: Annotated[int, typer.Option(
        max=MAX_SIZE, help="Encoder actors (each opens the image graph once; at most one per shard).")] = 2,
    threads: Annotated[int, typer.Option(
        max=MAX_THREADS, help="Intra-op threads (and Ray CPUs) per actor.")] = 1,
    batch: Annotated[int, typer.Option(max=MAX_SIZE, help="Images per encoder call.")] = 64,
    backend: TorchFreeBackendOption = TORCH_FREE_DEFAULT,
    engine_dir: EngineDir = Path("engines"),
    progress: Annotated[bool, typer.Option("--progress/--no-progress",
                                           help="Ray Data progress bars.")] = False,
) -> None:
    """Encode every image of the shards with the export's image graph, on a Ray Data actor pool."""
    from vsrn_deploy.distributed import EmbedConfig, run_embed

    manifest = run_embed(EmbedConfig(onnx_dir=str(onnx_dir), images=images, out=str(out),
                                     ray_address=ray_address, workers=workers, threads=threads, batch=batch,
                                     backend=backend.value, engine_dir=str(engine_dir), progress=progress))
    typer.echo(f"{manifest['count']} images in {len(manifest['shards'])} shards -> {out} "
               f"({len(manifest['run']['encoded_shards'])} shards encoded this run)")


def register(app: typer.Typer) -> None:
    """Add `embed` to the root app."""
    app.command("embed")(handle_errors(embed_command))
