"""A tiny synthetic dataset shared by the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from vsrn_deploy.data.synthetic import generate_dataset


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """<tmp>/synth_precomp with 24/8/4 images of 6 x 32 features, plus its vocab."""
    root = tmp_path_factory.mktemp("tiny_data")
    return generate_dataset(root, n_train=24, n_dev=8, n_test=4, num_regions=6, feature_dim=32, seed=1)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from threads; on a shared 2-core machine they only spin."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
