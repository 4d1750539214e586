"""`vsrn-deploy triton-repo`: layout, config.pbtxt contents, copied graphs, refusals, atomicity."""

from __future__ import annotations

import json
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

_INT64_FIELDS = {"dims", "shape", "max_queue_delay_microseconds", "model_version", "versions"}


def parse_pbtxt(text: str) -> dict:
    """A config.pbtxt parsed by Triton's own schema (ModelConfig), as a dict with the proto's field
    names; 64-bit integers (which protobuf's JSON mapping writes as strings) back to ints."""
    from google.protobuf import json_format, text_format
    from tritonclient.grpc import model_config_pb2

    message = text_format.Parse(text, model_config_pb2.ModelConfig())

    def ints(value, key=""):
        if isinstance(value, dict):
            return {k: ints(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [ints(v, key) for v in value]
        return int(value) if key in _INT64_FIELDS and isinstance(value, str) else value

    return ints(json_format.MessageToDict(message, preserving_proto_field_name=True))


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
        {"name": "lengths", "data_type": "TYPE_INT64", "dims": [1], "reshape": {}},
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
    params = {k: v["string_value"] for k, v in tok["parameters"].items()}
    # 32 bytes per token: a huge string is refused before it is tokenised
    assert params == {"max_tokens": "40", "pad_to_multiple": "8", "max_caption_bytes": "1280"}
    assert tok["instance_group"] == [{"count": 1, "kind": "KIND_CPU"}]
    # batched like the encoders: concurrent caption requests reach one execute()
    assert tok["dynamic_batching"] == {"max_queue_delay_microseconds": 2000}  # 8 and 32 exceed max batch 4
    txt = parse_pbtxt((out / "text_encoder" / "config.pbtxt").read_text())
    ragged = [t["name"] for t in txt["input"] if t.get("allow_ragged_batch") is True]
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
    assert steps[0]["output_map"] == {"token_ids": "_token_ids", "lengths": "_lengths"}
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
        params = {k: v["string_value"] for k, v in cfg["parameters"].items()}
        assert params["providers"] == "CPUExecutionProvider"
    txt = parse_pbtxt((out / "text_encoder" / "config.pbtxt").read_text())
    params = {k: v["string_value"] for k, v in txt["parameters"].items()}
    assert (params["tokens_input"], params["lengths_input"]) == ("token_ids", "lengths")
    assert [t.get("allow_ragged_batch") for t in txt["input"]] == [True, None]
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
    assert result.exit_code == 2 and "'--max-tokens': must lie in [3, " in result.output


def test_rewriting_a_repository_replaces_the_tokenizer_and_ensemble_too(export_dir, tmp_path):
    out = tmp_path / "repo"
    assert _invoke("--onnx-dir", str(export_dir), "--out", str(out), "--max-tokens", "40").exit_code == 0
    assert _invoke("--onnx-dir", str(export_dir), "--out", str(out), "--max-tokens", "24").exit_code == 0
    params = parse_pbtxt((out / TOKENIZER / "config.pbtxt").read_text())["parameters"]
    assert params["max_tokens"]["string_value"] == "24", params
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


def test_every_model_but_the_ensemble_has_a_warmup_sample_from_a_real_caption(export_dir, tmp_path):
    """The encoders and the tokenizer run one batch-1 sample before they are ready (so the first request
    does not pay for session creation or nltk's import); the text samples are one real caption of the
    export's first words, the image sample zeros. The server check is in tests/system/serving."""
    from vsrn_deploy.core.tokens import encode, read_word2idx

    out = build_model_repository(TritonRepoConfig(onnx_dir=export_dir, out=tmp_path / "repo",
                                                  backend="python", kind="cpu"))
    word2idx = read_word2idx(export_dir / "vocab.json")
    caption = (out / "tokenizer" / "warmup" / "captions").read_bytes()
    size = int.from_bytes(caption[:4], "little")  # TYPE_STRING: 4-byte little-endian length, then bytes
    text = caption[4:].decode("utf-8")
    assert size == len(caption) - 4 and len(text.split()) == 3
    first = [w for w, _ in sorted(word2idx.items(), key=lambda kv: kv[1]) if not w.startswith("<")][:3]
    assert text.split() == first
    ids = encode(word2idx, text)
    assert 3 not in ids  # no <unk>: every word is known

    tok = parse_pbtxt((out / "tokenizer" / "config.pbtxt").read_text())
    assert tok["model_warmup"] == [{"name": "vsrn_warmup", "batch_size": 1, "count": 1, "inputs": {
        "captions": {"data_type": "TYPE_STRING", "dims": [1], "input_data_file": "captions"}}}]
    txt = parse_pbtxt((out / "text_encoder" / "config.pbtxt").read_text())
    (sample,) = txt["model_warmup"]
    assert sample["inputs"] == {
        "token_ids": {"data_type": "TYPE_INT64", "dims": [8], "input_data_file": "token_ids"},
        "lengths": {"data_type": "TYPE_INT64", "dims": [1], "input_data_file": "lengths"}}
    token_ids = np.frombuffer((out / "text_encoder" / "warmup" / "token_ids").read_bytes(), dtype="<i8")
    lengths = np.frombuffer((out / "text_encoder" / "warmup" / "lengths").read_bytes(), dtype="<i8")
    assert token_ids.tolist() == ids + [0] * (8 - len(ids)) and lengths.tolist() == [len(ids)]
    img = parse_pbtxt((out / "image_encoder" / "config.pbtxt").read_text())
    cfg = VSRNConfig.tiny()
    assert img["model_warmup"][0]["inputs"] == {"region_features": {
        "data_type": "TYPE_FP32", "dims": [cfg.num_regions, cfg.img_dim], "zero_data": True}}
    assert "model_warmup" not in parse_pbtxt((out / "caption_encoder" / "config.pbtxt").read_text())
    # the warmup files are the repository's own (listed in its marker)
    files = json.loads((out / "vsrn_repo.json").read_text())["files"]
    assert {"tokenizer/warmup/captions", "text_encoder/warmup/token_ids",
            "text_encoder/warmup/lengths"} <= set(files)


def test_tensorrt_warmup_width_lies_inside_the_plans_token_range(export_dir, tmp_path):
    engines = tmp_path / "engines"
    _fake_plans(export_dir, engines, [{"batch": [1, 2, 4], "tokens": [16, 16, 32]}])
    out = build_model_repository(TritonRepoConfig(onnx_dir=export_dir, out=tmp_path / "repo",
                                                  backend="tensorrt", engine_dir=engines))
    txt = parse_pbtxt((out / "text_encoder" / "config.pbtxt").read_text())
    assert txt["model_warmup"][0]["inputs"]["token_ids"]["dims"] == [16]
    assert (out / "text_encoder" / "warmup" / "token_ids").stat().st_size == 16 * 8


def test_every_config_pins_the_written_version_and_a_new_version_keeps_the_old_one(export_dir, tmp_path):
    """Version policy: --model-version N writes <model>/N/ and every config serves N only, so a user's
    other version folder is never served instead; an earlier run's version stays byte-identical."""
    out = tmp_path / "repo"
    assert _invoke("--onnx-dir", str(export_dir), "--out", str(out), "--backend", "python",
                   "--kind", "cpu").exit_code == 0
    before = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.glob("*/1/*")}
    (out / "image_encoder" / "7").mkdir()
    (out / "image_encoder" / "7" / "model.onnx").write_bytes(b"a user's own version")
    result = _invoke("--onnx-dir", str(export_dir), "--out", str(out), "--backend", "python", "--kind", "cpu",
                     "--model-version", "2")
    assert result.exit_code == 0, result.output
    assert {p.relative_to(out).as_posix(): p.read_bytes() for p in out.glob("*/1/*")} == before
    assert (out / "image_encoder" / "7" / "model.onnx").read_bytes() == b"a user's own version"
    copied = sha256_file(out / "text_encoder" / "2" / "model.onnx")
    assert copied == sha256_file(export_dir / "text_encoder.onnx")
    for model in ("image_encoder", "text_encoder", "tokenizer", "caption_encoder"):
        cfg = parse_pbtxt((out / model / "config.pbtxt").read_text())
        assert cfg["version_policy"] == {"specific": {"versions": [2]}}, model
        assert (out / model / "2").is_dir()
    steps = parse_pbtxt((out / "caption_encoder" / "config.pbtxt").read_text())["ensemble_scheduling"]["step"]
    assert [s["model_version"] for s in steps] == [2, 2]
    marker = json.loads((out / "vsrn_repo.json").read_text())
    assert marker["model_version"] == 2
    assert "image_encoder/1/model.onnx" in marker["files"]  # still ours: a later run may replace it
    assert "image_encoder/7/model.onnx" not in marker["files"]
    assert "version 2" in (out / "README.md").read_text()
    # back to 1: rewritten from the export, 2 kept
    assert _invoke("--onnx-dir", str(export_dir), "--out", str(out), "--backend", "python", "--kind", "cpu"
                   ).exit_code == 0
    assert parse_pbtxt((out / "tokenizer" / "config.pbtxt").read_text())["version_policy"] == {
        "specific": {"versions": [1]}}
    assert (out / "tokenizer" / "2" / "model.py").is_file()
    bad = _invoke("--onnx-dir", str(export_dir), "--out", str(tmp_path / "r0"), "--model-version", "0")
    assert bad.exit_code == 2 and "'--model-version': must lie in [1, " in bad.output


def test_without_tritonclient_one_line_names_the_serving_extra(export_dir, tmp_path):
    code = ("import sys; sys.modules['tritonclient'] = None; sys.modules['tritonclient.grpc'] = None\n"
            "from vsrn_deploy.cli.app import main; sys.argv = ['vsrn-deploy', 'triton-repo', '--onnx-dir', "
            f"{str(export_dir)!r}, '--out', {str(tmp_path / 'repo')!r}]; main()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "pip install 'vsrn-deploy[serving]'" in lines[0]
    assert not (tmp_path / "repo").exists()


def _archive(path: Path, members: dict[str, bytes]) -> Path:
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


_SITE = "lib/python3.11/site-packages"


def _fake_env(numpy: str = "1.26.4", modules=("numpy", "onnxruntime", "nltk")) -> dict[str, bytes]:
    members = {f"{_SITE}/{m}/__init__.py": b"" for m in modules}
    if "numpy" in modules:
        members[f"{_SITE}/numpy-{numpy}.dist-info/METADATA"] = b""
    return {"bin/activate": b"", **members}


def test_python_env_archive_is_carried_once_and_named_by_every_python_model(export_dir, tmp_path):
    from vsrn_deploy.serving.triton_server import carries_python_env

    env = _archive(tmp_path / "env.tar.gz", _fake_env())
    out = tmp_path / "repo"
    result = _invoke("--onnx-dir", str(export_dir), "--out", str(out), "--backend", "python", "--kind", "cpu",
                     "--python-env", str(env))
    assert result.exit_code == 0, result.output
    assert (out / "tokenizer" / "python_env" / "vsrn-python.tar.gz").read_bytes() == env.read_bytes()
    for model in ("image_encoder", "text_encoder", "tokenizer"):
        params = parse_pbtxt((out / model / "config.pbtxt").read_text())["parameters"]
        assert params["EXECUTION_ENV_PATH"] == {
            "string_value": "$$TRITON_MODEL_DIRECTORY/../tokenizer/python_env/vsrn-python.tar.gz"}, model
    marker = json.loads((out / "vsrn_repo.json").read_text())
    assert marker["python_env"]["sha256"] == sha256_file(env)
    assert marker["python_env"]["packed_from"] == "archive"
    readme = (out / "README.md").read_text()
    assert "nvcr.io/nvidia/tritonserver:24.10-py3 tritonserver --model-repository=/models" in readme
    assert "pip install" not in readme.split("nvidia-pytriton")[0]  # the container line installs nothing
    assert carries_python_env(out)
    # onnxruntime backend: only the tokenizer is a python model, and only it names the environment
    ort_repo = build_model_repository(TritonRepoConfig(onnx_dir=export_dir, out=tmp_path / "ort",
                                                       python_env=env))
    assert "EXECUTION_ENV_PATH" in (ort_repo / "tokenizer" / "config.pbtxt").read_text()
    assert "EXECUTION_ENV_PATH" not in (ort_repo / "image_encoder" / "config.pbtxt").read_text()
    assert carries_python_env(ort_repo)
    plain = build_model_repository(TritonRepoConfig(onnx_dir=export_dir, out=tmp_path / "plain"))
    assert not carries_python_env(plain)


@pytest.mark.parametrize(("members", "message"), [
    (_fake_env(modules=("numpy", "nltk")), "lacks onnxruntime"),
    (_fake_env(numpy="2.1.0"), "has numpy 2.1.0"),
    ({"lib/python3.12/site-packages/numpy/__init__.py": b""}, "holds no Python 3.11 site-packages"),
    (None, "is not a readable .tar.gz"),
])
def test_a_python_env_archive_without_what_the_models_import_is_one_error_line(export_dir, tmp_path,
                                                                                members, message):
    env = tmp_path / "env.tar.gz"
    if members is None:
        env.write_bytes(b"not gzip")
    else:
        _archive(env, members)
    out = tmp_path / "repo"
    result = _invoke("--onnx-dir", str(export_dir), "--out", str(out), "--backend", "python", "--python-env",
                     str(env), "--kind", "cpu")
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.output
    assert not out.exists()


def test_a_venv_folder_is_checked_then_packed_with_venv_pack(export_dir, tmp_path):
    base = subprocess.run([sys.executable, "-c", "import sys; print(sys._base_executable)"],
                          capture_output=True, text=True, check=True).stdout.strip()
    venv = tmp_path / "venv"
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    # a bare venv lacks what the models import: refused before anything is written
    result = _invoke("--onnx-dir", str(export_dir), "--out", str(tmp_path / "repo"), "--backend", "python",
                     "--kind", "cpu", "--python-env", str(venv))
    assert result.exit_code == 2 and "numpy is not installed" in result.output, result.output
    assert not (tmp_path / "repo").exists()
    not_a_venv = tmp_path / "folder"
    not_a_venv.mkdir()
    result = _invoke("--onnx-dir", str(export_dir), "--out", str(tmp_path / "repo"), "--python-env",
                     str(not_a_venv))
    assert result.exit_code == 2 and "not a venv made by `python -m venv`" in result.output, result.output
    # stand-ins of the three packages (importable, with a version): venv-pack packs the venv for real
    site = next((venv / "lib").glob("python3.*/site-packages"))
    for name, version in (("numpy", "1.26.4"), ("onnxruntime", "1.20.0"), ("nltk", "3.9")):
        (site / name).mkdir()
        (site / name / "__init__.py").write_text(f"__version__ = {version!r}\n")
    out = build_model_repository(TritonRepoConfig(onnx_dir=export_dir, out=tmp_path / "repo",
                                                  backend="python", kind="cpu", python_env=venv))
    import tarfile

    with tarfile.open(out / "tokenizer" / "python_env" / "vsrn-python.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"bin/activate", "pyvenv.cfg", f"{site.relative_to(venv)}/numpy/__init__.py"} <= names
    assert json.loads((out / "vsrn_repo.json").read_text())["python_env"]["packed_from"] == "venv"
