"""Fixtures of the search tests: a tiny export whose vocabulary has the synthetic captions' words,
and a small synthetic dataset (features, boxes, captions) to index. Built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_world import FEATURE_DIM, REGIONS, make_synthetic_export  # noqa: F401 (REGIONS: tests use it)


def make_search_export(root: Path) -> dict[str, Path]:
    """Synthetic data (40 test images, 8 regions of 24 dims, boxes) + a tiny model exported (all
    precisions: FP32, FP16 and INT8)."""
    return make_synthetic_export(root, n_train=120, n_test=40, precision="all", max_batch=8,
                                 retrieval_images=20)


@pytest.fixture(scope="session")
def search_export(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_search_export(tmp_path_factory.mktemp("search_export"))


@pytest.fixture(scope="session")
def built_index(search_export: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A flat index of the 40 test images with boxes and their 200 captions."""
    from vsrn_deploy.search import IndexConfig, build_index

    out = tmp_path_factory.mktemp("idx") / "index"
    build_index(IndexConfig(onnx_dir=str(search_export["export"]), images=str(search_export["images"]),
                            boxes=str(search_export["boxes"]), captions=str(search_export["captions"]),
                            out=str(out), batch=16, progress=False))
    return out
