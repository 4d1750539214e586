"""`vsrn-deploy make-data` and `vsrn-deploy train` through the typer app: outputs and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from typer.testing import CliRunner

from vsrn_deploy.cli.app import app


def test_make_data_then_train(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["make-data", "--out", str(tmp_path), "--train", "8", "--dev", "4",
                                 "--test", "2", "--regions", "5", "--feature-dim", "16"])
    assert result.exit_code == 0, result.output
    data = tmp_path / "synth_precomp"
    assert (data / "train_ims.npy").is_file() and (tmp_path / "vocab" / "synth_precomp_vocab.json").is_file()
    again = runner.invoke(app, ["make-data", "--out", str(tmp_path), "--train", "8", "--dev", "4",
                                "--test", "2", "--regions", "5", "--feature-dim", "16", "--seed", "1"])
    assert again.exit_code == 0, again.output  # its own earlier dataset is rewritten, like other writers'

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = runner.invoke(app, [
            "train", "--data", str(data), "--out", str(tmp_path / "run"), "--epochs", "1",
            "--batch-size", "8", "--embed-size", "8", "--word-dim", "4", "--caption-hidden", "6",
            "--gcn-layers", "1", "--img-pool", "mean", "--no-generation-loss", "--workers", "0",
            "--no-progress", "--device", "cpu", "--region-order", "box"])
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    assert str(tmp_path / "run" / "model_best.pt") in result.output
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["model"]["img_pool"] == "mean" and summary["train_config"]["generation_loss"] is False


def test_train_user_errors_exit_2(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["train", "--data", str(tmp_path / "nope"), "--device", "cpu"])
    assert missing.exit_code == 2 and "error:" in missing.output
    bad = runner.invoke(app, ["train", "--data", str(tmp_path), "--img-pool", "max"])
    assert bad.exit_code == 2 and "img_pool" in bad.output
