"""`vsrn-deploy attention`: the paper's attention map of one image as a PNG (Sec. 4.5)."""

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
    TorchFreeBackendOption,
    bounded,
)

# the largest score scale: the map is drawn relative to its largest score, so a larger lambda changes
# nothing but how soon the scores overflow
MAX_LAM = 1e6


def attention_command(
    images: Annotated[Path, typer.Option(help="Region features .npy (images, regions, dims).")],
    boxes: Annotated[Path, typer.Option(help="Region boxes .npy (images, regions, 4) (x1, y1, x2, y2): "
                                             "pixels of the picture, or fractions in [0, 1].")],
    image_id: Annotated[int, typer.Option(help="Which image (row of --images).")],
    out: Annotated[Path, typer.Option(help="The PNG to write.")],
    onnx_dir: OnnxDir = Path("export"),
    picture: Annotated[Path | None, typer.Option(
        help="The photo to draw over (default: a blank canvas of the boxes' extent).")] = None,
    top: Annotated[int, bounded("Outline the N best-ranked regions.", 0, MAX_SIZE)] = 3,
    lam: Annotated[float, bounded("Score scale lambda: s_i = lambda (k - r_i)^2.", 0, MAX_LAM, above=True,
                                  why="the paper uses 50; the map is scaled to its largest score")] = 50.0,
    backend: TorchFreeBackendOption = TORCH_FREE_DEFAULT,
    engine_dir: EngineDir = Path("engines"),
) -> None:
    """Heat map of the regions the image embedding correlates with, top regions outlined."""
    import numpy as np

    from vsrn_deploy.core.errors import VsrnError
    from vsrn_deploy.search.attention import (
        check_png_target,
        region_ranks,
        render_attention,
        save_attention_png,
    )
    from vsrn_deploy.search.encoders import ExportEncoders, FeatureFile, open_boxes

    check_png_target(out)  # before any work: a user's file of that name is never replaced
    with ExportEncoders(onnx_dir, backend.value, engine_dir) as enc:
        feats = FeatureFile(images, enc.num_regions, enc.feature_dim)
        all_boxes = open_boxes(boxes, len(feats), feats.num_regions)
        if not 0 <= image_id < len(feats):
            raise VsrnError(f"--image-id must lie in [0, {len(feats) - 1}] ({images} holds {len(feats)} "
                            f"images), got {image_id}")
        image, regions = enc.encode_images(feats.rows([image_id]))
    box = np.asarray(all_boxes[image_id], dtype=np.float32)
    png = render_attention(regions[0], image[0], box, picture, top=top, lam=lam,
                           title=f"image {image_id}")
    save_attention_png(out, png)
    ranks = region_ranks(regions[0], image[0])
    best = [int(i) for i in ranks.argsort()[:top]]
    typer.echo(f"{out}: attention map of image {image_id}; top regions {best}")


def register(app: typer.Typer) -> None:
    """Add `attention` to the root app."""
    app.command("attention")(handle_errors(attention_command))
