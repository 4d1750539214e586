"""`vsrn-deploy serve` against the real server when a model cannot load: one line naming the model and
Triton's reason, exit 2, and no server process left. (The working path, from `triton-repo` to
SIGTERM, is test_serve_docs.py; failures before a server starts are tests/serving/test_serve.py.)"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vsrn_deploy.serving.triton_repo import TritonRepoConfig, build_model_repository
from vsrn_deploy.serving.triton_server import free_port

pytestmark = pytest.mark.triton


def test_a_model_that_fails_to_load_is_one_line_and_no_server_is_left(tiny_export, tmp_path):
    repo = build_model_repository(TritonRepoConfig(onnx_dir=tiny_export, out=tmp_path / "repo",
                                                   backend="python", kind="cpu", max_batch=8))
    broken = repo / "image_encoder" / "1" / "model.py"
    broken.write_text(broken.read_text() + "\nraise RuntimeError('this model.py is broken on purpose')\n")
    shutil.rmtree(repo / "caption_encoder")  # only what the test needs: fewer stubs to start
    (repo / "vsrn_repo.json").unlink()  # edited by hand: served as it is (serve refuses a changed file)
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
               TMPDIR=str(tmp_path))  # the failed start's log is kept (named below): in the test's folder
    result = subprocess.run(["vsrn-deploy", "serve", "--repo", str(repo), "--http-port", str(free_port()),
                             "--grpc-port", str(free_port())], env=env, capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "model 'image_encoder' failed to load" in errors[0]
    assert "this model.py is broken on purpose" in errors[0]
    log = Path(re.search(r"server log: ([^)\s]+)", errors[0])[1])
    assert log.parent == tmp_path and "broken on purpose" in log.read_text()
    left = subprocess.run(["pgrep", "-f", f"--model-repository={repo.resolve()}"], capture_output=True,
                          text=True)
    assert left.stdout == "", f"tritonserver still runs: {left.stdout}"
