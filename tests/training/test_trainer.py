"""Training: a step lowers the loss, a full tiny run writes its files, resume continues, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.data.batching import make_loader
from vsrn_deploy.data.precomp import PrecompSplit
from vsrn_deploy.data.vocab import load_vocab
from vsrn_deploy.model.checkpoint import load_checkpoint
from vsrn_deploy.model.vsrn import VSRN
from vsrn_deploy.training import TrainConfig, train
from vsrn_deploy.training.trainer import BEST_NAME, LAST_NAME, TrainStep, learning_rate, model_config_for

TINY = {"embed_size": 16, "word_dim": 8, "caption_hidden": 12, "gcn_layers": 1, "batch_size": 16,
        "workers": 0, "progress": False, "tensorboard": False, "device": "cpu", "log_every": 1}


def _cfg(data: Path, out: Path, **kw) -> TrainConfig:
    return TrainConfig(data=str(data), out=str(out), **{**TINY, **kw})


def test_training_steps_lower_the_loss(tiny_data: Path) -> None:
    torch.manual_seed(0)
    vocab = load_vocab(tiny_data.parent / "vocab" / "synth_precomp_vocab.json")
    split = PrecompSplit(tiny_data, "train")
    cfg = _cfg(tiny_data, tiny_data / "unused", max_violation=False)
    model = VSRN(model_config_for(cfg, split, len(vocab)))
    step = TrainStep(model, margin=0.2, max_violation=False, generation_loss=True)
    batch = next(iter(make_loader(split, vocab, batch_size=16, shuffle=False)))  # a fixed batch
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        out = step(batch.features, batch.token_ids, batch.lengths)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    assert float(out["generation"].detach()) > 0
    assert losses[-1] < 0.8 * losses[0]


def test_lr_schedule_is_the_authors_step_decay(tiny_data: Path) -> None:
    cfg = _cfg(tiny_data, tiny_data, lr=2e-4, lr_update=15)
    assert [learning_rate(cfg, e) for e in (0, 14, 15, 29)] == pytest.approx([2e-4, 2e-4, 2e-5, 2e-5])


def test_train_run_then_resume(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    records: list[dict] = []
    best = train(_cfg(tiny_data, out, epochs=1), on_log=records.append)
    assert best == out / BEST_NAME and best.is_file() and (out / LAST_NAME).is_file()
    steps_per_epoch = 120 // 16  # 24 images x 5 captions, drop_last
    vals = [r for r in records if r["event"] == "val"]
    assert len(vals) == 1 and "rsum" in vals[0] and vals[0]["n_images"] == 8
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == steps_per_epoch and summary["samples_per_s"] > 0
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert {r["event"] for r in lines} == {"train", "epoch", "val"}
    first = load_checkpoint(out / LAST_NAME)
    assert first.train_state["epoch"] == 1 and first.train_state["step"] == steps_per_epoch
    assert first.vocab is not None and len(first.vocab) == first.config.vocab_size
    adam_steps = {int(s["step"]) for s in first.train_state["optimizer"]["state"].values()}
    assert adam_steps == {steps_per_epoch}

    records.clear()
    train(_cfg(tiny_data, out, epochs=2, resume=str(out)), on_log=records.append)
    resumed = load_checkpoint(out / LAST_NAME)
    assert resumed.train_state["epoch"] == 2 and resumed.train_state["step"] == 2 * steps_per_epoch
    adam_steps = {int(s["step"]) for s in resumed.train_state["optimizer"]["state"].values()}
    assert adam_steps == {2 * steps_per_epoch}  # the optimizer state was restored, not restarted
    assert min(r["step"] for r in records) > steps_per_epoch
    assert {r["epoch"] for r in records} == {1}
    # the weights changed during the resumed epoch
    a = first.model.img_enc.fc.weight
    b = resumed.model.img_enc.fc.weight
    assert not torch.equal(a, b)


def test_resume_refuses_a_different_model(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(_cfg(tiny_data, out, epochs=1, generation_loss=False, val_every=3))
    with pytest.raises(VsrnError, match="different model"):
        train(_cfg(tiny_data, tmp_path / "other", epochs=2, embed_size=24, resume=str(out / LAST_NAME),
                   generation_loss=False))
    with pytest.raises(VsrnError, match="does not exist"):
        train(_cfg(tiny_data, out, resume=str(tmp_path / "nope.pt")))


def test_nan_features_stop_training(tiny_data: Path, tmp_path: Path) -> None:
    data = tmp_path / "nan_precomp"
    data.mkdir()
    for name in ("train_caps.txt", "dev_caps.txt", "dev_ims.npy"):
        (data / name).write_bytes((tiny_data / name).read_bytes())
    feats = np.load(tiny_data / "train_ims.npy")
    feats[5, 2, 3] = np.nan
    np.save(data / "train_ims.npy", feats)
    vocab = tiny_data.parent / "vocab" / "synth_precomp_vocab.json"
    with pytest.raises(VsrnError, match="NaN"):
        train(_cfg(data, tmp_path / "run", vocab=str(vocab), batch_size=120, generation_loss=False))


def test_config_checks(tiny_data: Path, tmp_path: Path) -> None:
    with pytest.raises(VsrnError, match="img_pool"):
        _cfg(tiny_data, tmp_path, img_pool="max")
    with pytest.raises(VsrnError, match="batch_size"):
        _cfg(tiny_data, tmp_path, batch_size=1)
    with pytest.raises(VsrnError, match="no vocabulary"):
        train(_cfg(tmp_path, tmp_path / "run"))
    with pytest.raises(VsrnError, match="box"):  # region order box on data without boxes
        (tmp_path / "vocab.json").write_bytes((tiny_data.parent / "vocab" / "synth_precomp_vocab.json")
                                              .read_bytes())
        for name in ("train_caps.txt", "dev_caps.txt", "dev_ims.npy", "train_ims.npy"):
            (tmp_path / name).write_bytes((tiny_data / name).read_bytes())
        train(_cfg(tmp_path, tmp_path / "run", region_order="box"))


@pytest.mark.parametrize(("change", "says"), [
    ({"lr": float("nan")}, "lr must lie in"), ({"lr": float("inf")}, "lr must lie in"),
    ({"lr": 11.0}, "lr must lie in"), ({"margin": 2.5}, "margin must lie in"),
    ({"grad_clip": float("inf")}, "grad_clip must lie in"), ({"embed_size": 65537}, "embed_size must be <="),
    ({"word_dim": 2**40}, "word_dim must be <="), ({"caption_hidden": 70000}, "caption_hidden must be <="),
    ({"gcn_layers": 65}, "gcn_layers must be <="),
])
def test_config_refuses_values_beyond_its_bounds(change, says) -> None:
    """The library's own line of defence (the command line refuses these first): a config made in code
    with a NaN learning rate or a model too wide to allocate fails at once, not in the first step."""
    with pytest.raises(VsrnError, match=says):
        TrainConfig(data="x", **change)


def test_model_config_refuses_a_dimension_beyond_max_dim() -> None:
    from vsrn_deploy.model.config import MAX_DIM, VSRNConfig

    assert VSRNConfig.tiny(embed_size=MAX_DIM).embed_size == MAX_DIM  # the bound itself is allowed
    with pytest.raises(VsrnError, match="embed_size must be <="):
        VSRNConfig.tiny(embed_size=MAX_DIM + 1)
    with pytest.raises(VsrnError, match="gcn_layers must lie in"):
        VSRNConfig.tiny(gcn_layers=-1)
