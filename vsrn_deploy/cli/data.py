"""`vsrn-deploy make-data`: write a synthetic dataset in the SCAN precomp layout.

    vsrn-deploy make-data --out data                       # 36 x 2048 features, like the release
    vsrn-deploy make-data --out data --regions 12 --feature-dim 256 --train 2000   # demo size
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vsrn_deploy.cli.common import handle_errors
from vsrn_deploy.cli.options import MAX_SIZE, Overwrite, Seed


def make_data_command(
    out: Annotated[Path, typer.Option(help="Parent folder (the authors' --data_path).")] = Path("data"),
    name: Annotated[str, typer.Option(help="Dataset folder name (the authors' --data_name).")] = (
        "synth_precomp"),
    train: Annotated[int, typer.Option(max=MAX_SIZE, help="Training images (5 captions each).")] = 1000,
    dev: Annotated[int, typer.Option(max=MAX_SIZE, help="Dev images.")] = 100,
    test: Annotated[int, typer.Option(max=MAX_SIZE, help="Test images.")] = 100,
    regions: Annotated[int, typer.Option(max=MAX_SIZE, help="Regions per image (k).")] = 36,
    feature_dim: Annotated[int, typer.Option(max=MAX_SIZE, help="Region feature size (F).")] = 2048,
    seed: Seed = 0,
    boxes: Annotated[bool, typer.Option("--boxes/--no-boxes",
                                        help="Also write {split}_boxes.npy.")] = True,
    overwrite: Overwrite = False,
) -> None:
    """Generate a synthetic dataset (region features + captions + vocab.json), deterministic by seed."""
    from vsrn_deploy.data.synthetic import default_vocab_path, generate_dataset

    folder = generate_dataset(out, data_name=name, n_train=train, n_dev=dev, n_test=test,
                              num_regions=regions, feature_dim=feature_dim, seed=seed, boxes=boxes,
                              overwrite=overwrite)
    typer.echo(f"wrote {folder} ({train}/{dev}/{test} images, {regions} x {feature_dim} features) "
               f"and {default_vocab_path(folder)}")


def register(app: typer.Typer) -> None:
    """Add `make-data` to the root app."""
    app.command("make-data")(handle_errors(make_data_command))
