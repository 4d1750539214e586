"""Fixtures of the artifacts tests: the search tests' tiny export (all precisions, boxes, captions),
built once per session; each test copies what it changes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tiny_world import make_synthetic_export


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{export, images, boxes, captions, root, ckpt}: an FP32 + FP16 + INT8 export of a tiny model."""
    made = make_synthetic_export(tmp_path_factory.mktemp("artifacts_world"), n_train=120, n_test=40,
                                 precision="all", max_batch=8, retrieval_images=20)
    return {**made, "ckpt": made["root"] / "model.pt"}


@pytest.fixture
def export_copy(world, tmp_path: Path) -> Path:
    """A private copy of the export (a test may tamper with it)."""
    return Path(shutil.copytree(world["export"], tmp_path / "export", symlinks=True))
