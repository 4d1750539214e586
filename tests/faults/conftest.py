"""Shared pieces of the fault suite: one tiny dataset, checkpoint and export per session, a folder
snapshot, and the check every refusal must pass (exit code, one `error:` line, no traceback)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vsrn_deploy.cli.app import app

REPO = Path(__file__).resolve().parents[2]
TRAIN_SIZES = ["--embed-size", "16", "--word-dim", "8", "--caption-hidden", "12", "--gcn-layers", "1",
               "--batch-size", "8", "--workers", "0", "--device", "cpu", "--no-progress", "--lr", "1e-3"]


def snapshot(root: Path) -> dict[str, str]:
    """relative path -> sha256 (files), 'dir' (folders), 'link -> target' (symlinks), hidden included."""
    out: dict[str, str] = {}
    for path in sorted(Path(root).rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = f"link -> {os.readlink(path)}"
        elif path.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def cli(*args: object, cwd: Path | None = None):
    """Run the command line in this process (as the console script would, errors included)."""
    old = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        return CliRunner().invoke(app, [str(a) for a in args])
    finally:
        os.chdir(old)


def assert_refused(result, code: int = 2, *contains: str) -> str:
    """Exit `code`; for 2 the whole output is one `error:` line; never a traceback. Returns the line."""
    text = result.output
    assert result.exit_code == code, text
    assert "Traceback" not in text
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, lines
    if code == 2:
        assert lines == errors, lines
    for part in contains:
        assert part in errors[0], errors[0]
    return errors[0]


def run_module(*args: object, cwd: Path | None = None, **kw) -> subprocess.Popen:
    """`python -m vsrn_deploy ARGS` as a child process (signals, concurrency)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "vsrn_deploy", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> dict[str, Path]:
    """A tiny synthetic dataset, a checkpoint of a model that fits it (vocabulary inline), a second
    model of other sizes, and an FP32 export of the first, made once for the whole suite."""
    import torch

    from vsrn_deploy.checkpoint import save_checkpoint
    from vsrn_deploy.config import VSRNConfig
    from vsrn_deploy.data.synthetic import default_vocab_path, generate_dataset
    from vsrn_deploy.export import ExportConfig, export_model
    from vsrn_deploy.model import VSRN
    from vsrn_deploy.vocab import load_vocab

    root = tmp_path_factory.mktemp("faults")
    data = generate_dataset(root / "data", n_train=24, n_dev=12, n_test=12, num_regions=6, feature_dim=24,
                            boxes=False)
    vocab_path = default_vocab_path(data)
    vocab = load_vocab(vocab_path)
    torch.manual_seed(0)
    model = VSRN(VSRNConfig.tiny(vocab_size=len(vocab), data_name="synth_precomp"), with_caption=False).eval()
    ckpt = save_checkpoint(root / "model.pt", model, vocab=vocab)
    other = VSRN(VSRNConfig.tiny(vocab_size=len(vocab), embed_size=8, data_name="synth_precomp"),
                 with_caption=False).eval()
    other_ckpt = save_checkpoint(root / "other.pt", other, vocab=vocab)
    export = root / "export"
    export_model(ckpt, export, ExportConfig(precision="fp32", max_batch=8))
    return {"root": root, "data": data, "vocab": vocab_path, "ckpt": Path(ckpt),
            "other_ckpt": Path(other_ckpt), "export": export}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread is many times faster than the
    default (threads fight over the cores); restored afterwards for the rest of the suite."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
