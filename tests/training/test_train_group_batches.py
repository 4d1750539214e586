"""Training with --group-batches: runs on the synthetic data, refuses data without group ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.training import TrainConfig, train

TINY = {"embed_size": 16, "word_dim": 8, "caption_hidden": 12, "gcn_layers": 1, "batch_size": 8,
        "workers": 0, "progress": False, "tensorboard": False, "device": "cpu",
        "generation_loss": False}


def test_group_batches_train_and_need_group_ids(tiny_data: Path, tmp_path: Path) -> None:
    records: list[dict] = []
    cfg = TrainConfig(data=str(tiny_data), out=str(tmp_path / "run"), epochs=1, group_batches=True,
                      log_every=1, **TINY)
    assert train(cfg, on_log=records.append).is_file()
    steps = [r for r in records if r.get("event") == "train"]
    assert steps and steps[-1]["step"] == 5 * 3  # 5 rounds x (6 groups of 4 / 2 groups per batch)
    assert TrainConfig(data="x").group_batches is False  # the paper's shuffling stays the default

    data = tmp_path / "nogroups_precomp"
    data.mkdir()
    for name in ("train_caps.txt", "dev_caps.txt", "dev_ims.npy", "train_ims.npy"):
        (data / name).write_bytes((tiny_data / name).read_bytes())
    vocab = tiny_data.parent / "vocab" / "synth_precomp_vocab.json"
    with pytest.raises(VsrnError, match="groups.npy"):
        train(cfg.replace(data=str(data), vocab=str(vocab), out=str(tmp_path / "run2")))


def test_cli_group_batches_flag_reaches_the_trainer(tiny_data: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from vsrn_deploy.cli.app import app

    data = tmp_path / "nogroups_precomp"
    data.mkdir()
    for name in ("train_caps.txt", "dev_caps.txt", "dev_ims.npy", "train_ims.npy"):
        (data / name).write_bytes((tiny_data / name).read_bytes())
    vocab = tiny_data.parent / "vocab" / "synth_precomp_vocab.json"
    result = CliRunner().invoke(app, ["train", "--data", str(data), "--vocab", str(vocab), "--out",
                                      str(tmp_path / "run"), "--group-batches", "--device", "cpu",
                                      "--workers", "0", "--no-progress"])
    assert result.exit_code == 2 and "groups.npy" in result.output
