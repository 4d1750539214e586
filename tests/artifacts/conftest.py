"""Fixtures of the artifacts tests: the search tests' tiny export (all precisions, boxes, captions),
built once per session; each test copies what it changes."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

_SEARCH_CONFTEST = Path(__file__).parents[1] / "search" / "conftest.py"


def _make_search_export():
    spec = importlib.util.spec_from_file_location("search_fixtures", _SEARCH_CONFTEST)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_search_export


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{export, images, boxes, captions, root, ckpt}: an FP32 + FP16 + INT8 export of a tiny model."""
    made = _make_search_export()(tmp_path_factory.mktemp("artifacts_world"))
    return {**made, "ckpt": made["root"] / "model.pt"}


@pytest.fixture
def export_copy(world, tmp_path: Path) -> Path:
    """A private copy of the export (a test may tamper with it)."""
    return Path(shutil.copytree(world["export"], tmp_path / "export", symlinks=True))
