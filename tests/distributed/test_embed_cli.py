"""`vsrn-deploy embed` on the command line: bad shards and bad numbers are one line, exit 2, before any
encoding; the embedded default starts Ray here and shuts it down; --help imports neither Ray nor
pyarrow."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from dist_fixtures import FEATURE_DIM, REGIONS, SHARD_ROWS
from typer.testing import CliRunner

from vsrn_deploy.cli.app import app

TOTAL = sum(SHARD_ROWS)


def one_error_line(result, *needles):
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in errors[0], errors[0]


@pytest.mark.parametrize("bad, needle", [
    (np.zeros((3, REGIONS + 1, FEATURE_DIM), np.float32), f"{REGIONS + 1} regions"),
    (np.zeros((3, REGIONS, FEATURE_DIM), np.int32), "int32"),
    (np.zeros((3, REGIONS * FEATURE_DIM), np.float32), "float region features"),
    ("nan", "NaN or Inf in image 2 (global id 9)"),
])
def test_bad_shard_is_one_line_before_encoding(tiny_export, shards, tmp_path, ray_session, bad, needle):
    target = shards[1]
    if isinstance(bad, str):
        feats = np.load(target)
        feats[2, 3, 4] = np.nan
        np.save(target, feats)
    else:
        np.save(target, bad)
    out = tmp_path / "emb"
    result = CliRunner().invoke(app, ["embed", "--onnx-dir", str(tiny_export), "--images",
                                      str(target.parent / "*.npy"), "--out", str(out)])
    one_error_line(result, str(target), needle)
    assert not list(out.glob("*.parquet"))  # nothing encoded


def test_no_match_and_bad_numbers(tiny_export, tmp_path):
    result = CliRunner().invoke(app, ["embed", "--onnx-dir", str(tiny_export), "--images",
                                      str(tmp_path / "none*.npy"), "--out", str(tmp_path / "o")])
    one_error_line(result, "matches no file")
    result = CliRunner().invoke(app, ["embed", "--onnx-dir", str(tiny_export), "--images", "x*.npy",
                                      "--out", str(tmp_path / "o"), "--workers", "0"])
    one_error_line(result, "--workers must be >= 1")


def test_command_line_starts_and_stops_local_ray(tiny_export, shards, tmp_path):
    """The embedded default: no --ray-address, no session: Ray starts here and is shut down after."""
    out = tmp_path / "emb"
    argv = ["vsrn-deploy", "embed", "--onnx-dir", str(tiny_export),
            "--images", str(shards[0].parent / "*.npy"),
            "--out", str(out), "--workers", "2"]
    code = ("import sys\nfrom vsrn_deploy.cli.app import main\n"
            f"sys.argv = {argv!r}\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    rc = exc.code or 0\nelse:\n    rc = 0\n"
            "import ray\nprint('ray still up:', ray.is_initialized())\n"
            "print('torch imported:', 'torch' in sys.modules)\nsys.exit(rc)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{TOTAL} images in 3 shards" in done.stdout
    assert "ray still up: False" in done.stdout
    assert "torch imported: False" in done.stdout  # the job's driver never imports torch
    import pyarrow.parquet as pq

    ids = [i for p in sorted(out.glob("shard-*.parquet")) for i in pq.read_table(p).column("id").to_pylist()]
    assert ids == list(range(TOTAL))


def test_help_imports_no_ray_or_pyarrow():
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom vsrn_deploy.cli.app import app\n"
            "r = CliRunner().invoke(app, ['embed', '--help'])\nassert r.exit_code == 0, r.output\n"
            "assert '--ray-address' in r.output\n"
            "bad = [m for m in ('ray', 'pyarrow', 'pymilvus', 'torch') if m in sys.modules]\n"
            "assert not bad, bad\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]

