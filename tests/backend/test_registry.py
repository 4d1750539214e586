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
