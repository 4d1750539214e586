"""`vsrn-deploy demo`, the README's main job, end to end at a tiny size.

The sizes are too small to learn (a full `vsrn-deploy demo` checks that training leaves chance), so
the recall gate is off here; every other stage runs as in the real demo and must pass: data,
training, evaluation, the authors'-format round trip, export with its parity checks, validation,
index + search with one attention map.
"""

from __future__ import annotations

import functools
import json

import pytest
from typer.testing import CliRunner

from vsrn_deploy.cli.app import app
from vsrn_deploy.jobs import demo

pytestmark = pytest.mark.export

# num_regions stays 36: the authors' checkpoint format, which the demo round-trips, does not record it
TINY = {"n_train": 20, "n_dev": 10, "n_test": 12, "num_regions": 36, "feature_dim": 16, "embed_size": 16,
        "word_dim": 8, "batch_size": 20, "warmup_epochs": 1, "recall_gate": 0.0}


def test_demo_runs_every_stage_at_a_tiny_size(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "DemoConfig", functools.partial(demo.DemoConfig, **TINY))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--epochs", "1", "--no-bench"])
    assert result.exit_code == 0, result.output
    assert "all stages passed" in result.output
    summary = json.loads((out / "demo_summary.json").read_text())
    assert list(summary["stages"]) == ["data", "train", "evaluate", "authors_checkpoint", "export",
                                       "validate", "search"]
    assert len(summary["stages"]["search"]["hits"]) == 5
    assert (out / "attention").is_dir() and list((out / "attention").glob("*.png"))
    assert summary["config"]["n_train"] == 20 and summary["config"]["epochs"] == 1
    assert summary["stages"]["authors_checkpoint"]["max_abs_diff"] == 0.0
    assert summary["stages"]["export"]["parity"]["passed"] is True
    assert summary["stages"]["validate"]["passed"] is True
    assert {"image_encoder.onnx", "text_encoder.fp16.onnx", "vocab.json", "manifest.json"} <= {
        p.name for p in (out / "export").iterdir()}
