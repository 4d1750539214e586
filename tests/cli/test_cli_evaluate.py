"""`vsrn-deploy evaluate` end to end on a tiny generated dataset, through typer's CliRunner."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vsrn_deploy.cli.app import app
from vsrn_deploy.data.precomp import PrecompSplit
from vsrn_deploy.data.synthetic import default_vocab_path, generate_dataset
from vsrn_deploy.data.vocab import Vocabulary, load_vocab
from vsrn_deploy.evaluation import recall as evaluation
from vsrn_deploy.model import VSRN
from vsrn_deploy.model.checkpoint import save_authors_checkpoint, save_checkpoint
from vsrn_deploy.model.config import VSRNConfig
from vsrn_deploy.model.encode import encode_split


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalcli")
    folder = generate_dataset(root / "data", n_train=20, n_dev=5, n_test=10, num_regions=4,
                              feature_dim=16, seed=1)
    vocab = load_vocab(default_vocab_path(folder))
    cfg = VSRNConfig.tiny(vocab_size=len(vocab), img_dim=16, num_regions=4, data_name=folder.name)
    torch.manual_seed(0)
    m1, m2 = VSRN(cfg, with_caption=False).eval(), VSRN(cfg, with_caption=False).eval()
    ck1 = save_checkpoint(root / "a.pt", m1, vocab=vocab)
    ck2 = save_authors_checkpoint(root / "model_best.pth.tar", m2)  # vocabulary found beside the data
    return root, folder, vocab, (m1, m2), (ck1, ck2)


def _run(*args):
    return CliRunner().invoke(app, ["evaluate", *map(str, args)])


def _expected(models, folder, vocab, fold5=False):
    split = PrecompSplit(folder, "test")
    embs = [encode_split(m, split, vocab=vocab) for m in models]
    extra = {"images2": embs[1][0], "captions2": embs[1][1]} if len(embs) > 1 else {}
    return evaluation.recall_report(*embs[0], fold5=fold5, **extra)


def test_single_model_table_and_json(setup):
    root, folder, vocab, models, (ck1, _) = setup
    out = root / "reports" / "r.json"
    res = _run(ck1, "--data", folder, "--device", "cpu", "--batch-size", "7", "--out", out)
    assert res.exit_code == 0, res.output
    assert "image->text" in res.output and "10 images, 50 captions" in res.output
    report = json.loads(out.read_text())
    want = _expected(models[:1], folder, vocab)
    for key in ("i2t_r1", "i2t_r10", "i2t_medr", "t2i_r5", "t2i_meanr", "rsum"):
        assert report[key] == pytest.approx(want[key])
    assert report["n_models"] == 1 and report["split"] == "test"
    assert report["checkpoints"][0]["kind"] == "vsrn-deploy"
    assert len(report["checkpoints"][0]["sha256"]) == 64
    assert not list(out.parent.glob(".*tmp"))  # written atomically, nothing left behind


def test_ensemble_fold5_and_authors_checkpoint(setup):
    root, folder, vocab, models, (ck1, ck2) = setup
    out = root / "ens.json"
    res = _run(ck1, ck2, "--data", folder, "--fold5", "--device", "cpu", "--out", out)
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    want = _expected(models, folder, vocab, fold5=True)
    assert report["n_models"] == 2 and report["protocol"] == "5-fold" and len(report["folds"]) == 5
    assert report["rsum"] == pytest.approx(want["rsum"])
    assert [c["kind"] for c in report["checkpoints"]] == ["vsrn-deploy", "authors"]
    assert "ensemble of 2 models" in res.output


@pytest.mark.parametrize("case", ["missing_ckpt", "missing_data", "vocab_mismatch", "three", "not_5",
                                  "empty_line", "fold5_not_divisible"])
def test_bad_input_exits_2(setup, tmp_path, case):
    root, folder, vocab, _, (ck1, _) = setup
    args = [ck1, "--data", folder, "--device", "cpu"]
    match = ""
    if case == "missing_ckpt":
        args[0], match = tmp_path / "nope.pt", "does not exist"
    elif case == "missing_data":
        args[2], match = tmp_path / "nodata", "does not exist"
    elif case == "vocab_mismatch":
        small = Vocabulary(vocab.words[:-2]).save_json(tmp_path / "v.json")
        args += ["--vocab", small]
        match = "words but"
    elif case == "three":
        args = [ck1, ck1, ck1, *args[1:]]
        match = "one checkpoint, or two"
    elif case == "empty_line":
        bad = tmp_path / "bad"
        bad.mkdir()
        np.save(bad / "test_ims.npy", np.ones((2, 4, 16), np.float32))
        (bad / "test_caps.txt").write_text("a cat\n" * 4 + "\n" + "a cat\n" * 5)
        args[2], match = bad, "line 5 is empty"
    elif case == "fold5_not_divisible":
        args += ["--fold5", "--max-images", "8"]
        match = "divisible by 5"
    else:  # 12 captions for 2 images: neither 5 nor 1 per image
        bad = tmp_path / "bad"
        bad.mkdir()
        np.save(bad / "test_ims.npy", np.ones((2, 4, 16), np.float32))
        (bad / "test_caps.txt").write_text("a cat\n" * 12)
        args[2], match = bad, "12 captions for 2 images"
    res = _run(*args)
    assert res.exit_code == 2, res.output
    assert match in res.output
    assert "Traceback" not in res.output
