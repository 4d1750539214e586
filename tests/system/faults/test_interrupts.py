"""Ctrl-C in the middle of export and train, and two exports racing for one folder: nothing
half-written remains, the last checkpoint loads, and a folder is one export or the other, never a mix."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from faultkit import TRAIN_SIZES, run_module, snapshot

pytestmark = pytest.mark.faults


def _wait_for(condition, proc, timeout: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the command ended (exit {proc.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def _mid_export(parent: Path) -> bool:
    """The export is half-way: its staging folder holds the FP32 graph but not yet the INT8 one.

    (A staging folder alone is not enough: it stays, emptied, for a moment after the commit, and a
    signal landing then finds the export already done.)
    """
    for p in parent.iterdir():
        if p.name.endswith(".tmp") and p.is_dir():
            names = {q.name for q in p.iterdir()}
            return "image_encoder.onnx" in names and "image_encoder.int8.onnx" not in names
    return False


def _interrupt(proc, signum: int = signal.SIGINT) -> tuple[int, str]:
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out + err


def _leftovers(folder: Path) -> list[str]:
    """Temporary names vsrn-deploy uses while writing (staging folders, temp files, lock files)."""
    return sorted(p.name for p in folder.rglob(".*") if p.name.endswith((".tmp", ".old", ".vsrn-lock"))
                  or ".tmp" in p.name)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_export_keeps_the_previous_export(world, tmp_path, signum):
    import shutil

    from vsrn_deploy.artifacts.export import verify_export

    out = tmp_path / "export"
    shutil.copytree(world["export"], out)
    before = snapshot(tmp_path)
    # precision all and a larger max batch: long enough to be interrupted half-way
    proc = run_module("export", world["ckpt"], "--out", out, "--precision", "all", "--max-batch", "64")
    _wait_for(lambda: _mid_export(tmp_path), proc, what="the export wrote its FP32 graphs")
    code, text = _interrupt(proc, signum)
    assert code == 130 and "Traceback" not in text, text
    assert [line for line in text.splitlines() if line.startswith("error:")] == [
        "error: interrupted; nothing half-written was kept"], text
    assert snapshot(tmp_path) == before  # the previous export, byte for byte; no staging folder left
    verify_export(out)


def test_sigint_during_train_leaves_a_loadable_last_checkpoint(world, tmp_path):
    from vsrn_deploy.model.checkpoint import load_checkpoint

    run = tmp_path / "run"
    proc = run_module("train", "--data", world["data"], "--out", run, "--epochs", "1000", "--vocab",
                      world["vocab"], *TRAIN_SIZES)
    _wait_for(lambda: (run / "last.pt").is_file(), proc, what="the first epoch's checkpoint")
    code, text = _interrupt(proc)
    assert code == 130 and "Traceback" not in text, text
    assert "error: interrupted" in text
    loaded = load_checkpoint(run / "last.pt")
    assert loaded.train_state["epoch"] >= 1
    assert _leftovers(tmp_path) == []
    # the interrupted run continues with --resume; a fresh start needs --overwrite
    proc = run_module("train", "--data", world["data"], "--out", run, "--epochs", "1",
                      "--vocab", world["vocab"], *TRAIN_SIZES)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "--resume" in err and "Traceback" not in err, err


def test_two_exports_to_one_folder_never_mix(world, tmp_path):
    from vsrn_deploy.artifacts.export import verify_export

    out = tmp_path / "export"
    procs = [run_module("export", ckpt, "--out", out, "--max-batch", "4")
             for ckpt in (world["ckpt"], world["other_ckpt"])]
    results = [(p.wait(timeout=180), p.communicate()[1]) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes in ([0, 0], [0, 2]), results
    for code, err in results:
        assert "Traceback" not in err, err
        if code == 2:
            errors = [line for line in err.splitlines() if line.startswith("error:")]
            assert len(errors) == 1 and ("another vsrn-deploy command" in errors[0]
                                         or "appeared while" in errors[0]), err
    manifest = verify_export(out)  # one whole export: every file matches the one manifest
    assert manifest["source"]["path"] in (str(world["ckpt"]), str(world["other_ckpt"]))
    assert _leftovers(tmp_path) == []
