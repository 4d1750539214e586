"""The python-backend models `triton-repo` writes, run in this process with a stand-in for Triton's
`triton_python_backend_utils` (the real one exists only inside the server's stub; the system tests run
them there). Here: what execute() hands ONNX Runtime, which a server's statistics cannot show."""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vsrn_deploy.cli.app import app
from vsrn_deploy.model import VSRN
from vsrn_deploy.model.config import VSRNConfig

sys.path.insert(0, str(Path(__file__).parents[1] / "export"))
from export_helpers import write_vocab  # noqa: E402


class _Tensor:
    def __init__(self, name: str, array: np.ndarray):
        self.name, self.array = name, array

    def as_numpy(self) -> np.ndarray:
        return self.array


class _Response:
    def __init__(self, output_tensors=None, error=None):
        self.outputs = {t.name: t.array for t in output_tensors or []}
        self.error = error


class _Error(Exception):
    INVALID_ARG = 3

    def __init__(self, message: str, code: int = 0):
        super().__init__(message)


def _stand_in() -> types.ModuleType:
    pb = types.ModuleType("triton_python_backend_utils")
    pb.Tensor, pb.InferenceResponse, pb.TritonError = _Tensor, _Response, _Error
    pb.get_input_tensor_by_name = lambda request, name: request.get(name)
    types_ = {"TYPE_FP32": np.float32, "TYPE_INT64": np.int64, "TYPE_STRING": np.object_}
    pb.triton_string_to_numpy = lambda name: types_[name]
    return pb


@pytest.fixture(scope="module")
def text_model(tmp_path_factory, monkeypatch_module):
    """The text_encoder model of a `--backend python` repository, initialised as the server would."""
    from vsrn_deploy.data.vocab import load_vocab
    from vsrn_deploy.export import ExportConfig, export_loaded

    root = tmp_path_factory.mktemp("pymodels")
    torch.manual_seed(0)
    model = VSRN(VSRNConfig.tiny(), with_caption=False).eval()
    vocab = load_vocab(write_vocab(root / "vocab.json", model.config.vocab_size))
    export_loaded(model, vocab, root / "export", ExportConfig(max_batch=4, retrieval_images=20))
    result = CliRunner().invoke(app, ["triton-repo", "--onnx-dir", str(root / "export"), "--out",
                                      str(root / "repo"), "--backend", "python", "--kind", "cpu"])
    assert result.exit_code == 0, result.output
    monkeypatch_module.setitem(sys.modules, "triton_python_backend_utils", _stand_in())
    folder = root / "repo" / "text_encoder"
    spec = importlib.util.spec_from_file_location("vsrn_text_model", folder / "1" / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from google.protobuf import json_format, text_format
    from tritonclient.grpc import model_config_pb2

    # the JSON the server hands initialize(): the config with the proto's field names
    config = json_format.MessageToDict(text_format.Parse((folder / "config.pbtxt").read_text(),
                                                         model_config_pb2.ModelConfig()),
                                       preserving_proto_field_name=True)
    assert config["parameters"]["lengths_input"]["string_value"] == "lengths"
    instance = module.TritonPythonModel()
    instance.initialize({"model_config": json.dumps(config), "model_repository": str(folder),
                         "model_version": "1"})
    return instance


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_text_model_runs_no_step_that_is_padding_only(text_model, monkeypatch):
    """The tokenizer rounds each request's width up to a multiple of 8 so requests batch; the text
    model cuts the merged batch to its longest caption before ONNX Runtime runs, since the GRU steps
    over every column it is given (at paper size, INT8, batch 8: 8.3 ms per batch at the caption
    width, 9.8 ms padded to 8), and the embeddings are those of the unpadded captions."""
    rng = np.random.default_rng(0)
    lengths = [3, 5, 2]
    ids = [np.pad(rng.integers(4, 20, size=(1, n)), [(0, 0), (0, 8 - n)]) for n in lengths]
    requests = [{"token_ids": _Tensor("token_ids", a), "lengths": _Tensor("lengths", np.array([[n]]))}
                for a, n in zip(ids, lengths, strict=True)]
    seen = []
    run = text_model.session.run

    class Watched:  # the session, with each feed it is given recorded
        def run(self, names, feed):
            seen.append(feed)
            return run(names, feed)

    monkeypatch.setattr(text_model, "session", Watched())
    responses = text_model.execute(requests)
    assert [r.error for r in responses] == [None] * 3
    assert [f["token_ids"].shape for f in seen] == [(3, 5)]
    for a, n, response in zip(ids, lengths, responses, strict=True):
        alone = run(None, {"token_ids": a[:, :n], "lengths": np.array([n])})[0]
        np.testing.assert_allclose(response.outputs["text_embedding"], alone, atol=1e-6)
    seen.clear()  # one request on its own is cut too
    text_model.execute(requests[:1])
    assert [f["token_ids"].shape for f in seen] == [(1, 3)]


def test_cpu_instances_share_the_cores_instead_of_each_taking_all(text_model):
    """intra_op_threads "0" (what triton-repo writes) gives each CPU instance cores // instances
    threads (at least 1); a number given is kept; a GPU provider keeps ONNX Runtime's default."""
    import os

    threads = text_model.initialize.__globals__["_threads"]
    cpus = len(os.sched_getaffinity(0))

    def config(count, value="0"):
        return {"parameters": {"intra_op_threads": {"string_value": value}},
                "instance_group": [{"count": count, "kind": "KIND_CPU"}]}

    assert threads(config(1), "CPUExecutionProvider") == cpus
    assert threads(config(2), "CPUExecutionProvider") == max(1, cpus // 2)
    assert threads(config(4 * cpus), "CPUExecutionProvider") == 1
    assert threads(config(2, "3"), "CPUExecutionProvider") == 3
    assert threads(config(2), "CUDAExecutionProvider,CPUExecutionProvider") == 0
    # the instance the server made here: one CPU instance, every core
    assert text_model.session.get_session_options().intra_op_num_threads == cpus
