"""The INT8 graphs served by a real Triton server: `triton-repo --backend python --precision int8` on
a tiny INT8 export loads in tritonserver 2.51 and answers like ONNX Runtime on the INT8 graphs (not
the FP32 ones), image, text and the caption ensemble."""

from __future__ import annotations

import numpy as np
import pytest

from vsrn_deploy.core.contract import IMAGE, TEXT, onnx_name
from vsrn_deploy.data.vocab import load_vocab
from vsrn_deploy.export.test_vectors import read_test_vectors
from vsrn_deploy.serving.triton_repo import (
    CAPTION_ENCODER,
    CAPTIONS,
    TritonRepoConfig,
    build_model_repository,
)

pytestmark = pytest.mark.triton

TOL = 1e-5


@pytest.fixture(scope="module")
def server(int8_export, tmp_path_factory, running_server):
    repo = build_model_repository(TritonRepoConfig(
        onnx_dir=int8_export, out=tmp_path_factory.mktemp("triton_int8") / "repo", backend="python",
        kind="cpu", precision="int8", max_batch=8, max_tokens=64))
    with running_server(repo) as srv:
        yield srv


def _infer(server, model: str, feeds: dict[str, np.ndarray], outputs) -> dict[str, np.ndarray]:
    import tritonclient.http as th
    from tritonclient.utils import np_to_triton_dtype

    client = th.InferenceServerClient(server.http_url)
    try:
        inputs = []
        for name, array in feeds.items():
            item = th.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
            item.set_data_from_numpy(array, binary_data=True)
            inputs.append(item)
        result = client.infer(model, inputs, outputs=[th.InferRequestedOutput(n) for n in outputs])
        return {n: result.as_numpy(n) for n in outputs}
    finally:
        client.close()


def _sessions(folder, precision: str):
    import onnxruntime as ort

    return {spec.graph: ort.InferenceSession(str(folder / onnx_name(spec.graph, precision)),
                                             providers=["CPUExecutionProvider"]) for spec in (IMAGE, TEXT)}


def test_int8_repository_serves_the_int8_graphs(server, int8_export):
    vectors = read_test_vectors(int8_export)
    int8, fp32 = _sessions(int8_export, "int8"), _sessions(int8_export, "fp32")
    feats = vectors["region_features"][:4]
    got = _infer(server, IMAGE.graph, {"region_features": feats}, IMAGE.output_names)
    want = int8[IMAGE.graph].run(None, {"region_features": feats})
    for name, ref in zip(IMAGE.output_names, want, strict=True):
        assert np.abs(got[name] - ref).max() <= TOL, name
    other = fp32[IMAGE.graph].run([IMAGE.embedding], {"region_features": feats})[0]
    assert np.abs(got[IMAGE.embedding] - other).max() > TOL  # the INT8 graph, not the FP32 one

    ids, lengths = vectors["token_ids"][:5], vectors["lengths"][:5]
    got = _infer(server, TEXT.graph, {"token_ids": ids, "lengths": lengths.reshape(-1, 1)}, [TEXT.embedding])
    want = int8[TEXT.graph].run(None, {"token_ids": ids, "lengths": lengths})[0]
    assert np.abs(got[TEXT.embedding] - want).max() <= TOL

    vocab = load_vocab(int8_export / "vocab.json")
    captions = np.array([[c.encode("utf-8")] for c in vectors["captions"][:6]], dtype=object)
    got = _infer(server, CAPTION_ENCODER, {CAPTIONS: captions}, [TEXT.embedding])[TEXT.embedding]
    ids, lengths = vocab.encode_batch([c[0].decode() for c in captions])
    want = int8[TEXT.graph].run(None, {"token_ids": ids, "lengths": lengths})[0]
    assert np.abs(got - want).max() <= TOL
