"""Fixtures of the distributed tests: a tiny FP32 export (8 regions of 24 dims) and three small
feature shards, built once per session; one local Ray session shared by the tests of a module that run
the job in-process (the job uses a session it finds and leaves it running)."""

from __future__ import annotations

from pathlib import Path

import pytest
from dist_fixtures import make_tiny_export, write_shards


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_export(tmp_path_factory.mktemp("dist_export"))


@pytest.fixture
def shards(tmp_path: Path) -> list[Path]:
    return write_shards(tmp_path / "features")


@pytest.fixture(scope="module")
def ray_session():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
