"""`vsrn-deploy export` on bad input: exit 2, one clear line, nothing written."""

from __future__ import annotations

import pickle

import pytest
import torch
from export_helpers import write_vocab
from typer.testing import CliRunner

from vsrn_deploy.cli.app import app

pytestmark = pytest.mark.export


class _Boom:
    def __reduce__(self):
        import os

        return (os.system, ("touch pwned",))


def _run(args, tmp_path):
    out = tmp_path / "export"
    result = CliRunner().invoke(app, ["export", *[str(a) for a in args], "--out", str(out)])
    return result, out


def test_missing_checkpoint(tmp_path):
    result, out = _run([tmp_path / "nope.pth.tar"], tmp_path)
    assert result.exit_code == 2 and "not found" in result.output
    assert not out.exists()


def test_hostile_checkpoint_is_refused_without_running_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth.tar"
    path.write_bytes(pickle.dumps({"model": _Boom()}))
    result, out = _run([path], tmp_path)
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "pwned").exists() and not out.exists()


def test_unrelated_checkpoint(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    result, out = _run([path], tmp_path)
    assert result.exit_code == 2 and "not a VSRN checkpoint" in result.output
    assert not out.exists()


def test_vocabulary_size_mismatch(authors_ckpt, tmp_path):
    vocab = write_vocab(tmp_path / "small.json", authors_ckpt["model"].config.vocab_size - 1)
    result, out = _run([authors_ckpt["path"], "--vocab", vocab], tmp_path)
    assert result.exit_code == 2 and "embedding table" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.json"]


def test_bad_options(authors_ckpt, tmp_path):
    for extra in (
        ["--precision", "int4"],
        ["--opset", "7"],
        ["--calibration", tmp_path / "missing.npy", "--precision", "fp16"],
        ["--max-batch", "4097"],  # a batch the export cannot check: ONNX Runtime aborted or ran for long
    ):
        result, out = _run([authors_ckpt["path"], "--vocab", authors_ckpt["vocab"], *extra], tmp_path)
        assert result.exit_code == 2, (extra, result.output)
        assert not out.exists()


def test_refuses_to_overwrite_a_folder_that_is_not_an_export(authors_ckpt, tmp_path):
    out = tmp_path / "export"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result, _ = _run([authors_ckpt["path"], "--vocab", authors_ckpt["vocab"]], tmp_path)
    assert result.exit_code == 2 and "not a vsrn-deploy export" in result.output
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
