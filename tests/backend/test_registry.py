"""make_runner: names, errors, torch-free serving imports, and every backend agreeing on one batch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from vsrn_deploy.backend.registry import make_runner
from vsrn_deploy.core.errors import VsrnError


def test_unknown_backend_and_encoder():
    with pytest.raises(VsrnError, match="unknown backend"):
        make_runner("tvm", "image")
    with pytest.raises(VsrnError, match="unknown encoder"):
        make_runner("ort", "audio")


def test_torch_backend_needs_a_model():
    with pytest.raises(VsrnError, match="--checkpoint"):
        make_runner("torch", "image")


def test_trt_without_plans_names_the_build_command(tmp_path):
    with pytest.raises(VsrnError, match="vsrn-deploy build-engine"):
        make_runner("trt", "image", engine_dir=tmp_path)


def test_serving_runners_never_import_torch():
    code = (
        "import sys\n"
        "import vsrn_deploy.backend.onnxrt, vsrn_deploy.backend.trt, vsrn_deploy.backend.cuda\n"
        "import vsrn_deploy.backend.registry, vsrn_deploy.backend.sidecar, vsrn_deploy.engine.builder\n"
        "import vsrn_deploy.engine.profiles\n"
        "bad = [m for m in ('torch', 'tensorrt', 'cuda') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"


def test_ort_runner_infers_without_torch(tmp_path, tiny_graphs):
    code = (
        "import sys, numpy as np\n"
        "from vsrn_deploy.backend import make_runner\n"
        f"with make_runner('ort', 'text', onnx_dir={str(tiny_graphs)!r}) as r:\n"
        "    out = r.infer({'token_ids': np.array([[1, 5, 2]]), 'lengths': np.array([3])})\n"
        "assert out['text_embedding'].shape[0] == 1\n"
        "assert 'torch' not in sys.modules\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("encoder", ["image", "text"])
def test_backends_share_outputs(encoder, tiny_model, tiny_graphs, image_feed, text_feed):
    feed = image_feed if encoder == "image" else text_feed
    outs = {}
    for backend in ("torch", "torch-deploy", "ort"):
        with make_runner(backend, encoder, model=tiny_model, onnx_dir=tiny_graphs) as runner:
            outs[backend] = runner.infer(feed)
            assert runner.name == f"{backend}:{encoder}"
    for backend in ("torch-deploy", "ort"):
        assert outs[backend].keys() == outs["torch"].keys()
        for name, ref in outs["torch"].items():
            np.testing.assert_allclose(outs[backend][name], ref, atol=1e-5, rtol=0)


def test_torch_deploy_bf16_on_cpu_is_close(tiny_model, image_feed):
    with make_runner("torch", "image", model=tiny_model) as ref, \
            make_runner("torch-deploy", "image", model=tiny_model, dtype="bf16") as low:
        a = ref.infer(image_feed)["image_embedding"]
        b = low.infer(image_feed)["image_embedding"]
    assert b.dtype == np.float32
    assert 0 < np.abs(a - b).max() < 0.1


def test_runner_used_before_activate(tiny_model, image_feed):
    runner = make_runner("torch", "image", model=tiny_model)
    with pytest.raises(RuntimeError, match="before activate"):
        runner.infer(image_feed)


def test_torch_runner_leaves_the_callers_model_alone(tiny_model, image_feed):
    with make_runner("torch", "image", model=tiny_model, dtype="bf16") as runner:
        runner.infer(image_feed)
    import torch

    assert {p.dtype for p in tiny_model.parameters()} == {torch.float32}


class _EchoRunner:
    """A runner class for a row added in a test: records what the registry built it from."""

    def __init__(self, encoder, graph, *, device, threads, row):
        self.encoder, self.graph, self.device, self.threads, self.row = encoder, graph, device, threads, row


def test_a_new_row_is_all_the_registry_needs(monkeypatch, tiny_graphs):
    """Adding a backend is a row: make_runner builds its runner from the row alone."""
    from vsrn_deploy.core import backends

    row = backends.Backend("echo", backends.Family.ONNXRUNTIME, "fp16", backends.Needs.EXPORT, ("cpu",),
                           f"{__name__}:_EchoRunner", "", "a test row")
    monkeypatch.setitem(backends.BACKENDS, "echo", row)
    runner = make_runner("echo", "text", onnx_dir=tiny_graphs, device="cpu", threads=3)
    assert isinstance(runner, _EchoRunner) and runner.backend == "echo" and runner.row is row
    assert runner.graph.name == "text_encoder.fp16.onnx" and runner.threads == 3  # the row's precision


@pytest.mark.parametrize("name", ["ort", "ort-fp16", "openvino"])
def test_export_runners_take_name_and_precision_from_their_row(name, tiny_graphs):
    from vsrn_deploy.core import backends

    pytest.importorskip(backends.get(name).family.value)  # the runtime: onnxruntime, openvino
    runner = make_runner(name, "image", onnx_dir=tiny_graphs)
    assert runner.name == f"{name}:image" and runner.precision == backends.get(name).precision


def test_a_missing_runtime_module_names_the_extra(monkeypatch):
    from vsrn_deploy.core import backends

    row = backends.Backend("gone", backends.Family.OPENVINO, "fp32", backends.Needs.EXPORT, ("cpu",),
                           "vsrn_deploy.backend.no_such_runtime:Runner", "openvino", "a test row")
    monkeypatch.setitem(backends.BACKENDS, "gone", row)
    with pytest.raises(VsrnError, match=r"pip install 'vsrn-deploy\[openvino\]'"):
        make_runner("gone", "image")
