"""The DistributedDataParallel path on CPU: torchrun, gloo, 2 processes, the documented command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vsrn_deploy.model.checkpoint import load_checkpoint


@pytest.mark.ddp
def test_torchrun_two_processes_gloo(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "vsrn_deploy", "train", "--data", str(tiny_data), "--out", str(out), "--device", "cpu",
           "--epochs", "1", "--batch-size", "16", "--embed-size", "16", "--word-dim", "8",
           "--caption-hidden", "12", "--gcn-layers", "1", "--workers", "0", "--no-progress",
           "--log-every", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    epoch = next(r for r in records if r["event"] == "epoch")
    # 120 captions sharded over 2 ranks (60 each), 16 per process per step, last batch dropped
    assert epoch["world_size"] == 2 and epoch["steps_in_epoch"] == 3
    assert [r["step"] for r in records if r["event"] == "train"] == [1, 2, 3]  # rank 0 logs alone
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 3
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt.train_state["step"] == 3 and "rsum" in ckpt.train_state["best"]
