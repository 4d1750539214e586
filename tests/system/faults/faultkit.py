"""Helpers of the fault suite: a CLI runner, folder snapshots, refusal checks."""


from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from vsrn_deploy.cli.app import app

REPO = Path(__file__).resolve().parents[3]
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


