"""A repository that carries its own Python (`triton-repo --python-env`, EXECUTION_ENV_PATH) served by
the real server (tritonserver 2.51) whose stub Python is a bare venv with no packages: the models answer
like ONNX Runtime, `serve` does not warn about the bare Python, and the same repository without the
packed environment fails to load there. The archive is the set-up's venv-pack of .venv/triton-python
(.ci/setup.d/33-triton-python-pack.sh)."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vsrn_deploy.core.contract import IMAGE, TEXT
from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.core.tokens import encode, read_word2idx
from vsrn_deploy.serving.triton_repo import (
    CAPTION_ENCODER,
    ENV_FILE,
    TOKENIZER,
    TritonRepoConfig,
    build_model_repository,
)
from vsrn_deploy.serving.triton_server import free_port, start_server

pytestmark = pytest.mark.triton

ARCHIVE = Path(__file__).resolve().parents[3] / ".venv" / "triton-python.tar.gz"
TOL = 1e-5


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory) -> Path:
    """A venv of the base Python with nothing installed (not even pip)."""
    base = subprocess.run([sys.executable, "-c", "import sys; print(sys._base_executable)"],
                          capture_output=True, text=True, check=True).stdout.strip()
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    probe = subprocess.run([str(python), "-c", "import numpy"], capture_output=True, text=True)
    assert probe.returncode != 0, "the bare venv must not see numpy"
    return python


def _config(export: Path, out: Path, **kw) -> TritonRepoConfig:
    return TritonRepoConfig(onnx_dir=export, out=out, backend="python", kind="cpu", max_batch=8, **kw)


def test_packed_environment_serves_with_a_bare_python_and_equals_onnxruntime(tiny_export, tmp_path,
                                                                             bare_python, caplog):
    import onnxruntime as ort
    import tritonclient.http as th

    from vsrn_deploy.serving.serve import serve

    if not ARCHIVE.is_file():
        pytest.fail(f"{ARCHIVE} is missing: run bash .ci/setup (its 33-triton-python-pack.sh makes it)")
    repo = build_model_repository(_config(tiny_export, tmp_path / "repo", python_env=ARCHIVE))
    assert (repo / ENV_FILE).read_bytes() == ARCHIVE.read_bytes()

    sessions = {s.graph: ort.InferenceSession(str(tiny_export / f"{s.graph}.onnx"),
                                              providers=["CPUExecutionProvider"]) for s in (IMAGE, TEXT)}
    word2idx = read_word2idx(tiny_export / "vocab.json")
    captions = ["a man riding a horse", "two dogs play in the snow"]
    rng = np.random.default_rng(0)
    shape = sessions[IMAGE.graph].get_inputs()[0].shape
    feats = rng.random((3, *shape[1:]), dtype=np.float32)
    checked = []

    def check(server) -> None:
        client = th.InferenceServerClient(server.http_url)
        try:
            item = th.InferInput("captions", [len(captions), 1], "BYTES")
            item.set_data_from_numpy(np.array([[c.encode()] for c in captions], dtype=object))
            got = client.infer(CAPTION_ENCODER, [item]).as_numpy(TEXT.embedding)
            for row, caption in enumerate(captions):
                ids = np.array([encode(word2idx, caption)], dtype=np.int64)
                want = sessions[TEXT.graph].run([TEXT.embedding], {
                    "token_ids": ids, "lengths": np.array([ids.shape[1]], dtype=np.int64)})[0]
                assert np.max(np.abs(got[row] - want[0])) <= TOL, caption
            item = th.InferInput(IMAGE.inputs[0].name, list(feats.shape), "FP32")
            item.set_data_from_numpy(feats)
            got = client.infer(IMAGE.graph, [item]).as_numpy(IMAGE.outputs[0].name)
            want = sessions[IMAGE.graph].run([IMAGE.outputs[0].name], {IMAGE.inputs[0].name: feats})[0]
            assert np.max(np.abs(got - want)) <= TOL
            checked.append(True)
        finally:
            client.close()
        raise KeyboardInterrupt  # serve() stops the server and returns 130

    said: list[str] = []
    with caplog.at_level(logging.WARNING):
        code = serve(repo, http_port=free_port(), grpc_port=free_port(), python=bare_python, say=said.append,
                     ready=check, timeout=180)
    assert code == 130 and checked == [True], said
    assert not [r for r in caplog.records if "numpy" in r.getMessage()], caplog.text  # no warning
    assert all(f"{m} version 1: READY" in "\n".join(said) for m in (IMAGE.graph, TEXT.graph, TOKENIZER))


def test_without_the_packed_environment_the_bare_python_cannot_load_it(tiny_export, tmp_path, bare_python):
    repo = build_model_repository(_config(tiny_export, tmp_path / "repo"))
    for model in (IMAGE.graph, TEXT.graph, CAPTION_ENCODER):  # the tokenizer alone: one stub to start
        shutil.rmtree(repo / model)
    with pytest.raises(VsrnError) as failed:
        start_server(repo, python=bare_python, timeout=120).stop()
    message = str(failed.value)
    assert "model 'tokenizer' failed to load" in message and "No module named 'numpy'" in message, message
