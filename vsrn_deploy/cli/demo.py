"""`vsrn-deploy demo`: the whole pipeline on generated data, end to end."""

from __future__ import annotations

from typing import Annotated

import typer

from vsrn_deploy.cli.common import handle_errors
from vsrn_deploy.cli.options import Seed


def demo(
    out: Annotated[str, typer.Option(help="Run folder for data, checkpoints, export and reports.")]
    = "runs/demo",
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 6,
    bench: Annotated[bool, typer.Option(help="Run the short benchmark at the end.")] = True,
    seed: Seed = 0,
) -> None:
    """Generate data, train, evaluate, round-trip an authors' checkpoint, export, validate, bench."""
    from vsrn_deploy.jobs.demo import DemoConfig, run_demo

    run_demo(DemoConfig(out=out, epochs=epochs, bench=bench, seed=seed))


def register(app: typer.Typer) -> None:
    """Add `demo` to the root app."""
    app.command("demo")(handle_errors(demo))
