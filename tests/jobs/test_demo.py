"""The demo's own check: a model that stays at chance fails the run before anything is exported."""

from __future__ import annotations

import pytest

from vsrn_deploy.jobs import demo

pytestmark = pytest.mark.export

# num_regions stays 36: the authors' checkpoint format, which the demo round-trips, does not record it
TINY = {"n_train": 20, "n_dev": 10, "n_test": 12, "num_regions": 36, "feature_dim": 16, "embed_size": 16,
        "word_dim": 8, "batch_size": 20, "warmup_epochs": 1}


def test_demo_fails_when_training_stays_at_chance(tmp_path):
    from vsrn_deploy.core.errors import CheckFailed

    cfg = demo.DemoConfig(out=str(tmp_path / "run"), epochs=1, bench=False, recall_gate=1e9, **TINY)
    with pytest.raises(CheckFailed, match="near chance"):
        demo.run_demo(cfg)
    assert not (tmp_path / "run" / "export").exists()
