"""Shared fixtures of the export tests: one tiny authors'-format checkpoint, exported once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from export_helpers import tiny_model, write_vocab


@pytest.fixture(scope="session")
def authors_ckpt(tmp_path_factory) -> dict:
    """A tiny COCO-variant model saved in the authors' layout, plus a matching vocab.json."""
    from vsrn_deploy.model.checkpoint import save_authors_checkpoint

    root = tmp_path_factory.mktemp("ckpt")
    model = tiny_model(0)
    path = save_authors_checkpoint(root / "model_best.pth.tar", model)
    vocab = write_vocab(root / "tiny_vocab.json", model.config.vocab_size)
    return {"path": Path(path), "vocab": vocab, "model": model, "root": root}


@pytest.fixture(scope="session")
def exported(authors_ckpt, tmp_path_factory) -> dict:
    """`vsrn-deploy export` run once (precision all) on the tiny checkpoint, through the CLI."""
    from typer.testing import CliRunner

    from vsrn_deploy.cli.app import app

    out = tmp_path_factory.mktemp("exp") / "export"
    result = CliRunner().invoke(
        app,
        [
            "export",
            str(authors_ckpt["path"]),
            "--out",
            str(out),
            "--vocab",
            str(authors_ckpt["vocab"]),
            "--precision",
            "all",
            "--max-batch",
            "16",
        ],
    )
    return {"out": out, "result": result, **authors_ckpt}
