"""`vsrn-deploy search`: text -> images and image -> captions in an index folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from vsrn_deploy.cli.common import handle_errors
from vsrn_deploy.cli.options import EngineDir, OptionalOnnxDir, OptionalTorchFreeBackend, value
from vsrn_deploy.core.errors import VsrnError


def search_command(
    index: Annotated[Path, typer.Option(help="The index folder (vsrn-deploy index --out).")],
    text: Annotated[str | None, typer.Option(help="A caption: find images.")] = None,
    image_id: Annotated[int | None, typer.Option(help="An indexed image: find captions.")] = None,
    images: Annotated[Path | None, typer.Option(
        help="Region features .npy (n, regions, dims): find captions for each image.")] = None,
    k: Annotated[int, typer.Option(help="Results per query.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: a list of {\"image\": i, "
                                          "\"score\": s} (or \"caption\"), best first; --images: "
                                          "one such list per image.")] = False,
    attention: Annotated[Path | None, typer.Option(
        help="Write one attention-map PNG per hit image (text queries) or of the query image "
             "(--image-id) into this folder.")] = None,
    onnx_dir: OptionalOnnxDir = None,
    backend: OptionalTorchFreeBackend = None,
    engine_dir: EngineDir = Path("engines"),
) -> None:
    """Search an index: scores are inner products of l2-normalised embeddings, ties by lower id.

    Queries are encoded with the export and backend the index was built with, unless --onnx-dir or
    --backend name others.
    """
    from vsrn_deploy.search import Index

    given = [name for name, query in (("--text", text), ("--image-id", image_id), ("--images", images))
             if query is not None]
    if len(given) != 1:
        raise VsrnError("give exactly one query: --text \"a caption\", --image-id N or --images F.npy"
                        + (f" (got {', '.join(given)})" if given else ""))
    if attention is not None and images is not None:
        raise VsrnError("--attention draws indexed images: use it with --text or --image-id")
    with Index.open(index, onnx_dir=onnx_dir, backend=value(backend), engine_dir=engine_dir) as idx:
        if text is not None:
            hits = idx.search_text(text, k=k)
            _show(hits, "image", as_json, None)
            shown = [h.id for h in hits]
        elif image_id is not None:
            hits = idx.search_images(image_ids=[image_id], k=k)[0]
            _show(hits, "caption", as_json, idx)
            shown = [image_id]
        else:
            from vsrn_deploy.search.encoders import FeatureFile

            feats = FeatureFile(images)
            all_hits = idx.search_images(feats.rows(range(len(feats))), k=k)
            if as_json:
                typer.echo(json.dumps([[h.as_json("caption") for h in hits] for hits in all_hits]))
            else:
                for row, hits in enumerate(all_hits):
                    typer.echo(f"image {row} of {images}:")
                    _show(hits, "caption", False, idx)
            shown = []
        if attention is not None:
            titles = [f"image {image}" + (f" (hit {rank})" if text else "")
                      for rank, image in enumerate(shown, 1)]
            for path in idx.write_attention_maps(attention, shown, titles):
                if not as_json:
                    typer.echo(f"attention map: {path}")


def _show(hits, what: str, as_json: bool, idx) -> None:
    if as_json:
        typer.echo(json.dumps([h.as_json(what) for h in hits]))
        return
    for rank, hit in enumerate(hits, 1):
        extra = f"  {idx.caption(hit.id)}" if idx is not None else ""
        typer.echo(f"{rank:3d}. {what} {hit.id}  score {hit.score:.4f}{extra}")


def register(app: typer.Typer) -> None:
    """Add `search` to the root app."""
    app.command("search")(handle_errors(search_command))
