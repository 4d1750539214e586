"""`vsrn-deploy triton-repo`: layout, config.pbtxt contents, copied graphs, refusals, atomicity."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vsrn_deploy.backend.sidecar import SIDECAR_FORMAT
from vsrn_deploy.cli.app import app
from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.engine.builder import save_engine
from vsrn_deploy.io.files import sha256_file
from vsrn_deploy.model import VSRN
from vsrn_deploy.model.config import VSRNConfig
from vsrn_deploy.serving.triton_repo import (
    CAPTION_ENCODER,
    TOKENIZER,
    TritonRepoConfig,
    build_model_repository,
    render_config,
)

sys.path.insert(0, str(Path(__file__).parents[1] / "export"))
from export_helpers import write_vocab  # noqa: E402


def parse_pbtxt(text: str) -> dict:
    """A small protobuf text-format reader: {field: value or [values]} (repeated fields -> lists)."""
    tokens = re.findall(r'"[^"]*"|[{}\[\]:,]|[^\s{}\[\]:,"]+', text)
    pos = 0

    def value():
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok == "{":
            return message("}")
        if tok == "[":
            items = []
            while tokens[pos] != "]":
                items.append(value())
                if tokens[pos] == ",":
                    pos += 1
            pos += 1
            return items
        if tok.startswith('"'):
            return tok[1:-1]
        return int(tok) if re.fullmatch(r"-?\d+", tok) else tok

    def message(end):
        nonlocal pos
        out: dict = {}
        while pos < len(tokens) and tokens[pos] != end:
            key = tokens[pos]
            pos += 1
            if tokens[pos] == ":":
                pos += 1
            val = value()
            if key in out:  # a repeated field written twice
                out[key] = (out[key] if isinstance(out[key], list) else [out[key]]) + [val]
            else:
                out[key] = val
        pos += 1
        return out

    return message(None)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    """A tiny FP32 + FP16 export, written once."""
    from vsrn_deploy.data.vocab import load_vocab
    from vsrn_deploy.export import ExportConfig, export_loaded

    root = tmp_path_factory.mktemp("triton")
    torch.manual_seed(0)
    model = VSRN(VSRNConfig.tiny(), with_caption=False).eval()
    vocab = load_vocab(write_vocab(root / "vocab.json", model.config.vocab_size))
    out = root / "export"
    export_loaded(model, vocab, out, ExportConfig(precision="all", max_batch=4, calibration_samples=8,
                                                  retrieval_images=100))
    return out


def _invoke(*args: str):
    return CliRunner().invoke(app, ["triton-repo", *args])


def test_repository_layout_and_config(export_dir, tmp_path):
    out = tmp_path / "repo"
    result = _invoke("--onnx-dir", str(export_dir), "--out", str(out), "--preferred-batch", "2,4",
                     "--max-queue-delay-us", "250", "--instances", "2", "--kind", "cpu")
    assert result.exit_code == 0, result.output
    for model in ("image_encoder", "text_encoder"):
        assert (out / model / "config.pbtxt").is_file()
        assert (out / model / "1" / "model.onnx").is_file()
    assert (out / "text_encoder" / "vocab.json").read_bytes() == (export_dir / "vocab.json").read_bytes()
    assert "tritonserver --model-repository=" in (out / "README.md").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name != "repo"]  # no temp folder left

    cfg = VSRNConfig.tiny()
    img = parse_pbtxt((out / "image_encoder" / "config.pbtxt").read_text())
    assert img["name"] == "image_encoder" and img["platform"] == "onnxruntime_onnx"
    assert img["max_batch_size"] == 4  # the export's validated max batch
    assert img["input"] == [{"name": "region_features", "data_type": "TYPE_FP32",
                             "dims": [cfg.num_regions, cfg.img_dim]}]
    assert img["output"] == [
        {"name": "image_embedding", "data_type": "TYPE_FP32", "dims": [cfg.embed_size]},
        {"name": "region_embeddings", "data_type": "TYPE_FP32", "dims": [cfg.num_regions, cfg.embed_size]},
    ]
    assert img["dynamic_batching"] == {"preferred_batch_size": [2, 4], "max_queue_delay_microseconds": 250}
    assert img["instance_group"] == [{"count": 2, "kind": "KIND_CPU"}]

    txt = parse_pbtxt((out / "text_encoder" / "config.pbtxt").read_text())
    assert txt["platform"] == "onnxruntime_onnx"
    assert txt["input"] == [
        {"name": "token_ids", "data_type": "TYPE_INT64", "dims": [-1]},
        {"name": "lengths", "data_type": "TYPE_INT64", "dims": [1], "reshape": {"shape": []}},
    ]
    assert txt["output"] == [{"name": "text_embedding", "data_type": "TYPE_FP32", "dims": [cfg.embed_size]}]


def test_copied_graphs_run_and_equal_the_export(export_dir, tmp_path):
    import onnxruntime as ort

    out = build_model_repository(TritonRepoConfig(onnx_dir=export_dir, out=tmp_path / "repo"))
    cfg = VSRNConfig.tiny()
    feats = np.random.default_rng(0).random((3, cfg.num_regions, cfg.img_dim), dtype=np.float32)
    ids = np.array([[1, 5, 6, 2], [1, 7, 2, 0], [1, 2, 0, 0]], dtype=np.int64)
    lengths = np.array([4, 3, 2], dtype=np.int64)
    for model, feed, outputs in (
        ("image_encoder", {"region_features": feats}, ["image_embedding", "region_embeddings"]),
        ("text_encoder", {"token_ids": ids, "lengths": lengths}, ["text_embedding"]),
    ):
        copied = out / model / "1" / "model.onnx"
        assert sha256_file(copied) == sha256_file(export_dir / f"{model}.onnx")
        got = ort.InferenceSession(str(copied), providers=["CPUExecutionProvider"]).run(outputs, feed)
        ref = ort.InferenceSession(str(export_dir / f"{model}.onnx"),
                                   providers=["CPUExecutionProvider"]).run(outputs, feed)
        for a, b in zip(got, ref, strict=True):
            np.testing.assert_array_equal(a, b)
        assert got[0].shape == (3, cfg.embed_size)


def test_fp16_picks_the_fp16_graphs_and_a_rerun_replaces_the_repo(export_dir, tmp_path):
    out = tmp_path / "repo"
    build_model_repository(TritonRepoConfig(onnx_dir=export_dir, out=out))
    result = _invoke("--onnx-dir", str(export_dir), "--out", str(out), "--precision", "fp16")
    assert result.exit_code == 0, result.output  # a previous triton-repo is replaced without --overwrite
    for model in ("image_encoder", "text_encoder"):
        assert sha256_file(out / model / "1" / "model.onnx") == sha256_file(export_dir / f"{model}.fp16.onnx")
    assert json.loads((out / "vsrn_repo.json").read_text())["precision"] == "fp16"


def test_tensorrt_without_engines_exits_2(export_dir, tmp_path):
    result = _invoke("--onnx-dir", str(export_dir), "--out", str(tmp_path / "repo"), "--backend", "tensorrt",
                     "--engine-dir", str(tmp_path / "engines"))
    assert result.exit_code == 2
    assert "build-engine" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "repo").exists()


def _fake_plans(export_dir: Path, engines: Path, profiles: list[dict]) -> None:
    """Plans with real sidecars (the bytes are not an engine: Triton is not run here)."""
    for model in ("image_encoder", "text_encoder"):
        save_engine(b"plan-" + model.encode(), engines / f"{model}.fp16.plan", {
            "format_version": SIDECAR_FORMAT, "encoder": model.split("_")[0], "precision": "fp16",
            "tensorrt_version": "10.13.0", "profiles": profiles,
            "gpu": {"name": "NVIDIA L4", "compute_capability": "8.9"},
            "source_onnx": {"file": f"{model}.fp16.onnx",
                            "sha256": sha256_file(export_dir / f"{model}.fp16.onnx")}})


def test_tensorrt_repo_from_plans(export_dir, tmp_path):
    engines = tmp_path / "engines"
    _fake_plans(export_dir, engines, [{"batch": [1, 2, 4], "tokens": [2, 16, 32]}])
    out = build_model_repository(TritonRepoConfig(onnx_dir=export_dir, out=tmp_path / "repo",
                                                  backend="tensorrt", engine_dir=engines))
    img = parse_pbtxt((out / "image_encoder" / "config.pbtxt").read_text())
    assert img["platform"] == "tensorrt_plan" and img["max_batch_size"] == 4
    assert (out / "image_encoder" / "1" / "model.plan").read_bytes() == b"plan-image_encoder"
    assert "TensorRT 10.13.0" in (out / "README.md").read_text()

    # a profile capped at batch 2 caps max_batch_size; asking for more is a clear error
    engines2 = tmp_path / "engines2"
    _fake_plans(export_dir, engines2, [{"batch": [1, 2, 2], "tokens": [2, 16, 32]}])
    with pytest.raises(VsrnError, match="--max-batch 4 exceeds the largest batch 2"):
        build_model_repository(TritonRepoConfig(onnx_dir=export_dir, out=tmp_path / "repo2",
                                                backend="tensorrt", engine_dir=engines2, max_batch=4))
    # a changed plan is refused
    (engines / "text_encoder.fp16.plan").write_bytes(b"tampered")
    with pytest.raises(VsrnError, match="changed since it was built"):
        build_model_repository(TritonRepoConfig(onnx_dir=export_dir, out=tmp_path / "repo3",
                                                backend="tensorrt", engine_dir=engines))
    assert not (tmp_path / "repo2").exists() and not (tmp_path / "repo3").exists()


def test_max_batch_beyond_the_export_is_refused(export_dir, tmp_path):
    result = _invoke("--onnx-dir", str(export_dir), "--out", str(tmp_path / "repo"), "--max-batch", "128")
    assert result.exit_code == 2
    assert "exceeds the largest batch 4" in result.output
    assert not (tmp_path / "repo").exists()


def test_tampered_export_exits_2_and_writes_nothing(export_dir, tmp_path):
    bad = tmp_path / "export"
    shutil.copytree(export_dir, bad)
    with open(bad / "text_encoder.onnx", "ab") as f:
        f.write(b"\0")
    out = tmp_path / "repo"
    result = _invoke("--onnx-dir", str(bad), "--out", str(out))
    assert result.exit_code == 2
    assert "changed since export" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no repo, no temp folder


def test_refuses_a_foreign_non_empty_out_unless_overwrite_which_keeps_foreign_files(export_dir, tmp_path):
    out = tmp_path / "repo"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = _invoke("--onnx-dir", str(export_dir), "--out", str(out))
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert (out / "keep.txt").read_text() == "mine"
    assert _invoke("--onnx-dir", str(export_dir), "--out", str(out), "--overwrite").exit_code == 0
    # --overwrite writes the repository into the folder; what vsrn-deploy did not write stays
    assert (out / "keep.txt").read_text() == "mine" and (out / "image_encoder" / "config.pbtxt").is_file()


def test_render_config_lists_several_trt_profiles():
    spec = {"inputs": [{"name": "x", "dtype": "float", "shape": ["batch", 3]}],
            "outputs": [{"name": "y", "dtype": "float", "shape": ["batch", 2]}]}
    cfg = parse_pbtxt(render_config("m", "tensorrt", spec, max_batch=64, preferred=(), max_queue_delay_us=0,
                                    instances=1, kind="gpu", profiles=(0, 1)))
    assert cfg["instance_group"] == [{"count": 1, "kind": "KIND_GPU", "profile": ["0", "1"]}]
    assert "preferred_batch_size" not in cfg["dynamic_batching"]


@pytest.mark.parametrize("backend", ["onnxruntime", "python", "tensorrt"])
def test_every_flavour_has_the_tokenizer_and_the_caption_ensemble(export_dir, tmp_path, backend):
    engines = tmp_path / "engines"
    if backend == "tensorrt":
        _fake_plans(export_dir, engines, [{"batch": [1, 2, 4], "tokens": [2, 16, 32]}])
    out = build_model_repository(TritonRepoConfig(onnx_dir=export_dir, out=tmp_path / "repo", backend=backend,
                                                  engine_dir=engines, max_tokens=40))
    tok = parse_pbtxt((out / "tokenizer" / "config.pbtxt").read_text())
    assert tok["backend"] == "python" and tok["max_batch_size"] == 4
    assert tok["input"] == [{"name": "captions", "data_type": "TYPE_STRING", "dims": [1]}]
    assert tok["output"] == [{"name": "token_ids", "data_type": "TYPE_INT64", "dims": [-1]},
                             {"name": "lengths", "data_type": "TYPE_INT64", "dims": [1]}]
    params = {p["key"]: p["value"]["string_value"] for p in tok["parameters"]}
    # 32 bytes per token: a huge string is refused before it is tokenised
    assert params == {"max_tokens": "40", "pad_to_multiple": "8", "max_caption_bytes": "1280"}
    assert tok["instance_group"] == [{"count": 1, "kind": "KIND_CPU"}]
    # batched like the encoders: concurrent caption requests reach one execute()
    assert tok["dynamic_batching"] == {"max_queue_delay_microseconds": 100}  # 8 and 32 exceed max batch 4
    txt = parse_pbtxt((out / "text_encoder" / "config.pbtxt").read_text())
    ragged = [t["name"] for t in txt["input"] if t.get("allow_ragged_batch") == "true"]
    # only the python backend's model.py pads requests of different widths into one batch
    assert ragged == (["token_ids"] if backend == "python" else [])
    # the tokenizer carries its own copy of the package's tokenisation and the export's vocabulary
    assert (out / "tokenizer" / "1" / "vsrn_tokens.py").read_bytes() == \
        (Path(__file__).parents[2] / "vsrn_deploy" / "core" / "tokens.py").read_bytes()
    assert (out / "tokenizer" / "1" / "vocab.json").read_bytes() == (export_dir / "vocab.json").read_bytes()
    model_py = (out / "tokenizer" / "1" / "model.py").read_text()
    assert "class TritonPythonModel" in model_py and "import torch" not in model_py

    ens = parse_pbtxt((out / "caption_encoder" / "config.pbtxt").read_text())
    assert ens["platform"] == "ensemble" and ens["max_batch_size"] == 4
    assert ens["input"] == [{"name": "captions", "data_type": "TYPE_STRING", "dims": [1]}]
    assert ens["output"] == [{"name": "text_embedding", "data_type": "TYPE_FP32",
                              "dims": [VSRNConfig.tiny().embed_size]}]
    steps = ens["ensemble_scheduling"]["step"]
    assert [s["model_name"] for s in steps] == ["tokenizer", "text_encoder"]
    assert steps[0]["output_map"] == [{"key": "token_ids", "value": "_token_ids"},
                                      {"key": "lengths", "value": "_lengths"}]
    assert steps[1]["input_map"] == steps[0]["output_map"]
    assert (out / "caption_encoder" / "1").is_dir()


def test_python_backend_runs_the_graphs_in_onnxruntime(export_dir, tmp_path):
    result = _invoke("--onnx-dir", str(export_dir), "--out", str(tmp_path / "repo"), "--backend", "python",
                     "--kind", "cpu")
    assert result.exit_code == 0, result.output
    out = tmp_path / "repo"
    for model in ("image_encoder", "text_encoder"):
        cfg = parse_pbtxt((out / model / "config.pbtxt").read_text())
        assert cfg["backend"] == "python" and "platform" not in cfg
        assert sha256_file(out / model / "1" / "model.onnx") == sha256_file(export_dir / f"{model}.onnx")
        model_py = (out / model / "1" / "model.py").read_text()
        assert "onnxruntime" in model_py and "import torch" not in model_py
        params = {p["key"]: p["value"]["string_value"] for p in cfg["parameters"]}
        assert params["providers"] == "CPUExecutionProvider"
    txt = parse_pbtxt((out / "text_encoder" / "config.pbtxt").read_text())
    params = {p["key"]: p["value"]["string_value"] for p in txt["parameters"]}
    assert (params["tokens_input"], params["lengths_input"]) == ("token_ids", "lengths")
    assert [t.get("allow_ragged_batch") for t in txt["input"]] == ["true", None]
    readme = (out / "README.md").read_text()
    assert "nvidia-pytriton==0.7.0" in readme and "pip install 'numpy<2' nltk onnxruntime" in readme
    # `vsrn-deploy serve` (which sets the server's environment) leads; the raw command carries that
    # environment on its own line, with a libpython folder that the line before it computes
    assert readme.index("vsrn-deploy serve --repo") < readme.index("tritonserver --model-repository=")
    lines = readme.splitlines()
    raw = next(i for i, line in enumerate(lines) if "$S/bin/tritonserver" in line)
    environment = "PATH=$VENV/bin:$PATH LD_LIBRARY_PATH=$L:$LD_LIBRARY_PATH"
    assert lines[raw].startswith(f"{environment} $S/bin/tritonserver"), lines[raw]
    assert lines[raw - 1].startswith("L=$(")
    venv = Path(sys.executable).parent.parent
    libdir = subprocess.run(["bash", "-c", f"{lines[raw - 1]}; echo $L"], env={"VENV": str(venv)},
                            capture_output=True, text=True, timeout=60).stdout.strip()
    assert Path(libdir).is_dir() and list(Path(libdir).glob("libpython3*")), libdir


def test_too_small_max_tokens_is_refused(export_dir, tmp_path):
    result = _invoke("--onnx-dir", str(export_dir), "--out", str(tmp_path / "repo"), "--max-tokens", "2")
    assert result.exit_code == 2 and "--max-tokens must be >= 3" in result.output


def test_rewriting_a_repository_replaces_the_tokenizer_and_ensemble_too(export_dir, tmp_path):
    out = tmp_path / "repo"
    assert _invoke("--onnx-dir", str(export_dir), "--out", str(out), "--max-tokens", "40").exit_code == 0
    assert _invoke("--onnx-dir", str(export_dir), "--out", str(out), "--max-tokens", "24").exit_code == 0
    params = parse_pbtxt((out / TOKENIZER / "config.pbtxt").read_text())["parameters"]
    assert any(p["key"] == "max_tokens" and p["value"]["string_value"] == "24" for p in params), params
    # into someone else's folder with --overwrite: the whole repository lands, their files stay
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    assert _invoke("--onnx-dir", str(export_dir), "--out", str(mine), "--overwrite").exit_code == 0
    assert (mine / "keep.txt").read_text() == "mine"
    for model in (TOKENIZER, CAPTION_ENCODER):
        assert (mine / model / "config.pbtxt").is_file(), model


@pytest.mark.parametrize("backend", ["onnxruntime", "python"])
def test_every_config_is_a_valid_triton_model_config(export_dir, tmp_path, backend):
    """Each config.pbtxt parses as Triton's own ModelConfig message (the schema the server reads), so a
    misspelt field or a wrong value type fails here rather than when a server loads the repository."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    out = build_model_repository(TritonRepoConfig(onnx_dir=export_dir, out=tmp_path / "repo", backend=backend,
                                                  kind="cpu"))
    for model in ("image_encoder", "text_encoder", "tokenizer", "caption_encoder"):
        config = text_format.Parse((out / model / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
        assert config.name == model and config.max_batch_size == 4
        if model != "caption_encoder":
            assert config.HasField("dynamic_batching"), model
