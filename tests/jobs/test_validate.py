"""vsrn-deploy validate: torch / torch-deploy / ort / ort-fp16 agree on a tiny exported model; a
corrupted graph fails with exit 1; bad usage exits 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from typer.testing import CliRunner

from vsrn_deploy.cli.app import app
from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.io.files import sha256_file
from vsrn_deploy.jobs.validate import ValidateConfig, run_validation

pytestmark = pytest.mark.export


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny vsrn-deploy checkpoint and its FP32 + FP16 export (exported once per session)."""
    from vsrn_deploy.data.vocab import build_vocab
    from vsrn_deploy.export import ExportConfig, export_model
    from vsrn_deploy.model.checkpoint import save_checkpoint
    from vsrn_deploy.model.config import VSRNConfig
    from vsrn_deploy.model.vsrn import VSRN

    root = tmp_path_factory.mktemp("validate")
    torch.manual_seed(0)
    cfg = VSRNConfig.tiny()
    words = ["dog", "cat", "runs", "on", "grass", "a", "red", "ball", "man", "rides", "horse", "beach"]
    vocab = build_vocab([" ".join(words)], threshold=1)
    model = VSRN(cfg.replace(vocab_size=len(vocab))).eval()
    ckpt = save_checkpoint(root / "tiny.pth", model, vocab=vocab)
    export_model(ckpt, root / "export", ExportConfig(precision="all", max_batch=8))
    return ckpt, root / "export"


def test_validate_passes_across_backends(tiny_export, tmp_path):
    ckpt, export = tiny_export
    out = tmp_path / "report.json"
    res = CliRunner().invoke(app, ["validate", "--checkpoint", str(ckpt), "--onnx-dir", str(export),
                                   "--backends", "torch,torch-deploy,ort,ort-fp16", "--synthetic", "40",
                                   "--batch-size", "16", "--out", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert report["passed"] is True
    assert set(report["backends"]) == {"torch", "torch-deploy", "ort", "ort-fp16"}
    for name in ("torch-deploy", "ort"):
        assert report["backends"][name]["precision"] == "fp32"
        assert report["backends"][name]["max_abs_err"] <= 1e-5
    fp16 = report["backends"]["ort-fp16"]
    assert fp16["precision"] == "fp16" and fp16["max_abs_err"] > 0
    assert fp16["min_cosine"] >= 0.9995 and fp16["top1_agreement"] >= 0.99
    assert set(fp16["recall"]) >= {"i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10"}
    assert "ort-fp16" in res.output and "PASSED" in res.output


def test_validate_finds_the_checkpoint_through_the_manifest(tiny_export):
    _, export = tiny_export
    report = run_validation(ValidateConfig(onnx_dir=str(export), backends=("ort",), synthetic=20))
    assert report["passed"] and report["checkpoint"].endswith("tiny.pth")


def test_corrupted_graph_fails_with_exit_1(tiny_export, tmp_path):
    ckpt, export = tiny_export
    bad = tmp_path / "bad_export"
    shutil.copytree(export, bad)  # an export folder holds test_vectors/ too
    model = onnx.load(bad / "image_encoder.fp16.onnx")
    rng = np.random.default_rng(0)
    for init in model.graph.initializer:  # a 20% error on every FP16 weight
        arr = numpy_helper.to_array(init)
        if arr.dtype == np.float16 and arr.size > 1:
            noisy = arr + rng.normal(0, 0.2 * float(np.abs(arr).mean()), arr.shape)
            init.CopyFrom(numpy_helper.from_array(noisy.astype(np.float16), init.name))
    onnx.save(model, bad / "image_encoder.fp16.onnx")
    # an export whose manifest agrees with the (bad) graph: parity, not the sha256 check, must catch it
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["files"]["image_encoder.fp16.onnx"]["sha256"] = sha256_file(bad / "image_encoder.fp16.onnx")
    (bad / "manifest.json").write_text(json.dumps(manifest))
    res = CliRunner().invoke(app, ["validate", "--checkpoint", str(ckpt), "--onnx-dir", str(bad),
                                   "--backends", "ort,ort-fp16", "--synthetic", "40"])
    assert res.exit_code == 1, res.output
    assert "FAIL" in res.output and "ort-fp16" in res.stderr


def test_bad_usage_exits_2(tiny_export, tmp_path):
    ckpt, export = tiny_export
    runner = CliRunner()
    res = runner.invoke(app, ["validate", "--checkpoint", str(ckpt), "--onnx-dir", str(export),
                              "--backends", "tvm"])
    assert res.exit_code == 2 and "unknown backend 'tvm'" in res.output and "choose from" in res.output
    res = runner.invoke(app, ["validate", "--onnx-dir", str(tmp_path)])
    assert res.exit_code == 2 and "--checkpoint" in res.output
    res = runner.invoke(app, ["validate", "--checkpoint", str(ckpt), "--onnx-dir", str(tmp_path / "none"),
                              "--backends", "ort", "--synthetic", "20"])
    assert res.exit_code == 2 and "vsrn-deploy export" in res.output
    with pytest.raises(VsrnError, match="at least 10"):
        ValidateConfig(synthetic=3)


def test_validate_on_a_precomp_split(tiny_export, tmp_path):
    from vsrn_deploy.data.synthetic import generate_dataset

    ckpt, export = tiny_export
    data = generate_dataset(tmp_path, n_train=4, n_dev=2, n_test=20, num_regions=6, feature_dim=24)
    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["validate", "--checkpoint", str(ckpt), "--onnx-dir", str(export),
                                   "--data", str(data), "--split", "test", "--limit", "12",
                                   "--backends", "ort", "--out", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert report["inputs"]["images"] == 12 and report["inputs"]["captions"] == 60
    assert report["backends"]["ort"]["max_abs_err"] <= 1e-5
