"""Serving, search and tokenising never import torch; the package alone installs none and runs there.

The torch-free venv (.venv/torchfree: the package and its `search` extra, no torch) is made by the
set-up step .ci/setup.d/40-torchfree-venv.sh; the tiny export it searches is made by this venv.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
TORCHFREE = REPO / ".venv" / "torchfree" / "bin"


def test_search_path_imports_no_torch(built_index):
    code = f"""
import sys
import vsrn_deploy, vsrn_deploy.cli.app, vsrn_deploy.search, vsrn_deploy.search.attention
import vsrn_deploy.data.vocab, vsrn_deploy.backend.onnxrt, vsrn_deploy.backend.trt
import vsrn_deploy.serving.triton_repo, vsrn_deploy.core.contract
from vsrn_deploy.search import Index
with Index.open({str(built_index)!r}) as index:
    hits = index.search_text("a red dog to the left of a blue car", k=3)
    index.search_images(image_ids=[0], k=3)
    png = index.attention_png(hits[0].id)
print(sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")), len(png) > 0)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]", "True"], out.stdout


def _torchfree(tool: str) -> str:
    path = TORCHFREE / tool
    if not path.exists():
        pytest.fail(f"{path} is missing: `bash .ci/setup` makes the torch-free venv "
                    "(.ci/setup.d/40-torchfree-venv.sh)")
    return str(path)


def _cli(*args: object) -> subprocess.CompletedProcess:
    """The torch-free venv's vsrn-deploy with `args`."""
    return subprocess.run([_torchfree("vsrn-deploy"), *map(str, args)], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.torchfree
def test_torchfree_venv_has_no_torch():
    code = "import importlib.util, sys; print(importlib.util.find_spec('torch') is None)"
    out = subprocess.run([_torchfree("python"), "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "True", out.stdout + out.stderr


@pytest.mark.torchfree
def test_index_and_search_run_without_torch(search_export, built_index, tmp_path):
    from vsrn_deploy.search import Index

    cli = _torchfree("vsrn-deploy")
    out = tmp_path / "index"
    built = subprocess.run([cli, "index", "--onnx-dir", str(search_export["export"]), "--images",
                            str(search_export["images"]), "--boxes", str(search_export["boxes"]),
                            "--captions", str(search_export["captions"]), "--out", str(out), "--no-progress"],
                           capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    query = "a red dog to the left of a blue car"
    found = subprocess.run([cli, "search", "--index", str(out), "--text", query, "--k", "10", "--json",
                            "--attention", str(tmp_path / "att")],
                           capture_output=True, text=True, timeout=120)
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    with Index.open(built_index) as here:  # the same search in this venv (with torch installed)
        want = here.search_text(query, k=10)
    assert [h["image"] for h in hits] == [h.id for h in want]
    assert [h["score"] for h in hits] == pytest.approx([h.score for h in want], abs=1e-6)
    assert len(list((tmp_path / "att").glob("*.png"))) == 10
    captions = _cli("search", "--index", out, "--image-id", 0, "--json")
    assert captions.returncode == 0 and len(json.loads(captions.stdout)) == 10, captions.stderr
    validated = _cli("validate", "--onnx-dir", search_export["export"], "--backends", "ort",
                     "--synthetic", 10)
    assert validated.returncode == 0, validated.stderr


@pytest.mark.torchfree
def test_int8_index_and_validate_without_torch(search_export, built_index, tmp_path):
    from vsrn_deploy.core.contract import PARITY

    export, out = search_export["export"], tmp_path / "index8"
    built = _cli("index", "--onnx-dir", export, "--images", search_export["images"], "--backend", "ort-int8",
                 "--out", out, "--no-progress")
    assert built.returncode == 0, built.stderr
    assert json.loads((out / "index.json").read_text())["backend"] == "ort-int8"
    int8, fp32 = np.load(out / "image_embeddings.npy"), np.load(built_index / "image_embeddings.npy")
    assert not np.array_equal(int8, fp32)  # the INT8 graph, not the FP32 one
    assert ((int8 * fp32).sum(1)).min() >= PARITY["int8"].min_cosine  # both l2-normalised
    found = _cli("search", "--index", out, "--text", "a red dog", "--json")
    assert found.returncode == 0 and len(json.loads(found.stdout)) == 10, found.stderr
    validated = _cli("validate", "--onnx-dir", export, "--backends", "ort,ort-int8", "--synthetic", 10)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    refused = _cli("validate", "--onnx-dir", export, "--backends", "ort-int8,ort", "--synthetic", 10)
    assert refused.returncode == 2 and refused.stderr.strip().splitlines() == [
        "error: without torch the first backend is the reference: list an FP32 one first, "
        "e.g. --backends ort,ort-int8"], refused.stderr


@pytest.mark.torchfree
@pytest.mark.parametrize("command", [["train", "--data", "nowhere"], ["export", "model.pt"],
                                     ["demo"], ["validate", "--synthetic", "10"]])
def test_torch_commands_say_how_to_get_it(command, search_export):
    out = subprocess.run([_torchfree("vsrn-deploy"), *command, *(
        ["--onnx-dir", str(search_export["export"])] if command[0] == "validate" else [])],
        capture_output=True, text=True, timeout=120, cwd=search_export["root"])
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'vsrn-deploy[torch]'" in lines[0], out.stderr


def test_missing_torch_becomes_the_install_hint():
    import typer
    from typer.testing import CliRunner

    from vsrn_deploy.cli.common import handle_errors

    app = typer.Typer()

    @app.command("train")
    @handle_errors
    def train_command(which: str = "torch") -> None:
        raise ModuleNotFoundError(f"No module named '{which}'", name=which)

    @app.command("other")
    def other() -> None: ...

    result = CliRunner().invoke(app, ["train"])
    assert result.exit_code == 2
    assert result.output.strip() == ("error: vsrn-deploy train needs PyTorch, which is not installed here "
                                     "(vsrn-deploy without extras serves, indexes and searches without it); "
                                     "install it with: pip install 'vsrn-deploy[torch]'")
    other_module = CliRunner().invoke(app, ["train", "--which", "faiss"])
    assert isinstance(other_module.exception, ModuleNotFoundError)  # not torch: a bug, kept as such
