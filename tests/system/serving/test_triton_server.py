"""A real Triton server (tritonserver 2.51 from the nvidia-pytriton wheel, installed by the set-up) on a
`triton-repo --backend python` repository: it loads, answers like ONNX Runtime over HTTP JSON, HTTP
binary and gRPC, refuses malformed requests with 4xx and keeps serving, and batches 200 concurrent
requests correctly. The server is started once for the module on 127.0.0.1 and stopped by its pid."""

from __future__ import annotations

import time

import numpy as np
import pytest

from vsrn_deploy.core.contract import IMAGE, TEXT, UNK_ID
from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.core.tokens import unusable_query
from vsrn_deploy.data.vocab import load_vocab
from vsrn_deploy.export.test_vectors import read_test_vectors
from vsrn_deploy.serving.triton_repo import (
    CAPTION_ENCODER,
    CAPTIONS,
    TOKENIZER,
    TritonRepoConfig,
    build_model_repository,
)

pytestmark = pytest.mark.triton

MAX_BATCH = 8
TOL = 1e-5
PROTOCOLS = ("http-json", "http-binary", "grpc")


@pytest.fixture(scope="module")
def server(tiny_export, tmp_path_factory):
    """tritonserver on a python-backend repository of the tiny export; stopped by pid at teardown."""
    from vsrn_deploy.serving.triton_server import start_server

    repo = build_model_repository(TritonRepoConfig(
        onnx_dir=tiny_export, out=tmp_path_factory.mktemp("triton") / "repo", backend="python", kind="cpu",
        max_batch=MAX_BATCH, max_queue_delay_us=20_000, max_tokens=64))
    try:
        srv = start_server(repo, timeout=120)
    except VsrnError as exc:  # set-up did not install the server, or it does not load the repository
        pytest.fail(str(exc))
    yield srv
    pid = srv.pid
    assert srv.stop() == 0, srv.log_tail()
    with pytest.raises(ProcessLookupError):
        import os

        os.kill(pid, 0)


@pytest.fixture(scope="module")
def reference(tiny_export):
    """ONNX Runtime sessions on the exported graphs, and the vocabulary."""
    import onnxruntime as ort

    sessions = {spec.graph: ort.InferenceSession(str(tiny_export / f"{spec.graph}.onnx"),
                                                 providers=["CPUExecutionProvider"])
                for spec in (IMAGE, TEXT)}
    vectors = read_test_vectors(tiny_export)
    ids, lengths = vectors["caption_token_ids"], vectors["caption_lengths"]
    refused = {i: problem for i, caption in enumerate(vectors["captions"])
               if (problem := unusable_query(ids[i, :lengths[i]].tolist(), caption, UNK_ID))}
    return {"sessions": sessions, "vocab": load_vocab(tiny_export / "vocab.json"), "vectors": vectors,
            "refused": refused}  # case index -> search's message, for the cases without a known word


class Client:
    """One request API over tritonclient's HTTP (JSON or binary tensors) and gRPC clients."""

    def __init__(self, server, protocol: str) -> None:
        self.protocol = protocol
        if protocol == "grpc":
            import tritonclient.grpc as mod

            self.client = mod.InferenceServerClient(server.grpc_url)
        else:
            import tritonclient.http as mod

            self.client = mod.InferenceServerClient(server.http_url, concurrency=16, network_timeout=60)
        self.mod = mod
        self.binary = protocol == "http-binary"

    def inputs(self, feeds: dict[str, np.ndarray], datatypes: dict[str, str] | None = None) -> list:
        from tritonclient.utils import np_to_triton_dtype

        out = []
        for name, array in feeds.items():
            dtype = (datatypes or {}).get(name) or np_to_triton_dtype(array.dtype)
            item = self.mod.InferInput(name, list(array.shape), dtype)
            if self.protocol == "grpc":
                item.set_data_from_numpy(array)
            else:
                item.set_data_from_numpy(array, binary_data=self.binary)
            out.append(item)
        return out

    def outputs(self, names) -> list:
        if self.protocol == "grpc":
            return [self.mod.InferRequestedOutput(n) for n in names]
        return [self.mod.InferRequestedOutput(n, binary_data=self.binary) for n in names]

    def infer(self, model: str, feeds: dict[str, np.ndarray], outputs, **kw) -> dict[str, np.ndarray]:
        result = self.client.infer(model, self.inputs(feeds, kw.get("datatypes")),
                                   outputs=self.outputs(outputs))
        return {n: result.as_numpy(n) for n in outputs}

    def close(self) -> None:
        self.client.close()


@pytest.fixture(scope="module", params=PROTOCOLS)
def client(request, server):
    c = Client(server, request.param)
    yield c
    c.close()


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def _captions(vectors, start: int, count: int) -> np.ndarray:
    return np.array([[c.encode("utf-8")] for c in vectors["captions"][start : start + count]], dtype=object)


def test_every_model_is_ready(server):
    import tritonclient.http as th

    c = th.InferenceServerClient(server.http_url)
    try:
        for model in (IMAGE.graph, TEXT.graph, TOKENIZER, CAPTION_ENCODER):
            assert c.is_model_ready(model), model
        meta = c.get_model_metadata(CAPTION_ENCODER)
        assert [(t["name"], t["datatype"]) for t in meta["inputs"]] == [(CAPTIONS, "BYTES")]
        assert [(t["name"], t["datatype"]) for t in meta["outputs"]] == [(TEXT.embedding, "FP32")]
    finally:
        c.close()


def test_encoders_equal_onnxruntime(client, reference):
    vectors, sessions = reference["vectors"], reference["sessions"]
    feats = vectors["region_features"][:3]
    got = client.infer(IMAGE.graph, {"region_features": feats}, IMAGE.output_names)
    want = sessions[IMAGE.graph].run(list(IMAGE.output_names), {"region_features": feats})
    for name, ref in zip(IMAGE.output_names, want, strict=True):
        assert _max_diff(got[name], ref) <= TOL, name

    ids, lengths = vectors["token_ids"][:5], vectors["lengths"][:5]
    got = client.infer(TEXT.graph, {"token_ids": ids, "lengths": lengths.reshape(-1, 1)}, TEXT.output_names)
    want = sessions[TEXT.graph].run(None, {"token_ids": ids, "lengths": lengths})[0]
    assert _max_diff(got[TEXT.embedding], want) <= TOL


@pytest.mark.parametrize("start", [0, 40, 100, 200])
def test_caption_encoder_equals_tokeniser_then_onnxruntime(client, reference, start):
    vectors, vocab = reference["vectors"], reference["vocab"]
    captions = _captions(vectors, start, MAX_BATCH)
    got = client.infer(CAPTION_ENCODER, {CAPTIONS: captions}, [TEXT.embedding])[TEXT.embedding]
    ids, lengths = vocab.encode_batch([c[0].decode() for c in captions])
    want = reference["sessions"][TEXT.graph].run(None, {"token_ids": ids, "lengths": lengths})[0]
    assert _max_diff(got, want) <= TOL


def test_tokenizer_reproduces_the_exports_tokeniser_cases(server, reference):
    """All 320 cases (punctuation, unicode, unknown words): those with a known word give the ids
    vsrn_deploy's tokeniser gave; those without one are refused, each with search's message."""
    from tritonclient.utils import InferenceServerException

    c = Client(server, "http-binary")
    vectors, refused = reference["vectors"], reference["refused"]
    everything = np.array([[x.encode("utf-8")] for x in vectors["captions"]], dtype=object)
    usable = [i for i in range(len(everything)) if i not in refused]
    assert len(vectors["captions"]) == 320 and 0 < len(refused) < 32, len(refused)  # both kinds are tested
    try:
        for start in range(0, len(usable), MAX_BATCH):
            rows = usable[start : start + MAX_BATCH]
            got = c.infer(TOKENIZER, {CAPTIONS: everything[rows]}, ["token_ids", "lengths"])
            want_len = vectors["caption_lengths"][rows]
            np.testing.assert_array_equal(got["lengths"].reshape(-1), want_len)
            assert got["token_ids"].shape[1] % 8 == 0  # padded to a multiple of 8 for the batcher
            for row, (case, n) in enumerate(zip(rows, want_len, strict=True)):
                np.testing.assert_array_equal(got["token_ids"][row, :n],
                                              vectors["caption_token_ids"][case, :n])
                assert not got["token_ids"][row, n:].any()
        for case, problem in refused.items():
            with pytest.raises(InferenceServerException) as no_word:
                c.infer(TOKENIZER, {CAPTIONS: everything[[case]]}, ["token_ids", "lengths"])
            assert no_word.value.status() == "400", (case, no_word.value)
            assert no_word.value.message().endswith(f"caption 0: {problem}"), (case, no_word.value.message())
    finally:
        c.close()


@pytest.mark.parametrize("protocol", ["http-binary", "grpc"])
def test_a_caption_of_unknown_words_is_refused_alone_with_searchs_message(server, reference, protocol):
    """One caption without a known word fails its request (400 / INVALID_ARGUMENT, search's message,
    naming the caption by its place), not the other requests batched with it."""
    import tritonclient.grpc as tg
    from tritonclient.utils import InferenceServerException

    vectors, sessions, vocab = reference["vectors"], reference["sessions"], reference["vocab"]
    bad = ["xyzzy qwfpgj, blorf!", "A man riding a horse."]  # the second is fine on its own
    assert unusable_query(vocab.encode(bad[0]), bad[0], UNK_ID) is not None
    c = Client(server, protocol)
    try:
        with pytest.raises(InferenceServerException) as refused:
            c.infer(CAPTION_ENCODER, {CAPTIONS: np.array([[x.encode()] for x in bad], dtype=object)},
                    [TEXT.embedding])
        assert ("INVALID_ARGUMENT" in str(refused.value.status()) if protocol == "grpc"
                else refused.value.status() == "400"), refused.value
        assert ("caption 0: no word of 'xyzzy qwfpgj, blorf!' is in the vocabulary"
                in refused.value.message()), refused.value.message()
    finally:
        c.close()
    # the same caption among concurrent good ones: only its own request fails
    good = vectors["captions"][:7]
    done: list = []
    g = tg.InferenceServerClient(server.grpc_url)
    try:
        for i, caption in enumerate([*good[:3], bad[0], *good[3:]]):
            item = tg.InferInput(CAPTIONS, [1, 1], "BYTES")
            item.set_data_from_numpy(np.array([[caption.encode()]], dtype=object))
            g.async_infer(CAPTION_ENCODER, [item], lambda result, error, i=i: done.append((i, result, error)))
        deadline = time.monotonic() + 60
        while len(done) < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        g.close()
    assert len(done) == 8
    text = sessions[TEXT.graph]
    want = [text.run(None, dict(zip(TEXT.input_names, vocab.encode_batch([x]), strict=True)))[0][0]
            for x in good]
    for i, result, error in done:
        if i == 3:
            assert error is not None and "no word of 'xyzzy qwfpgj, blorf!'" in error.message(), error
        else:
            assert error is None, (i, error)
            assert _max_diff(result.as_numpy(TEXT.embedding)[0], want[i if i < 3 else i - 1]) <= TOL, i


def _malformed(vectors, vocab_size: int):
    feats = vectors["region_features"]
    ids, lengths = vectors["token_ids"][:2], vectors["lengths"][:2].reshape(-1, 1)
    return {
        "wrong shape": (IMAGE.graph, {"region_features": feats[:, :-1]}, None),
        "wrong dtype": (IMAGE.graph, {"region_features": feats.astype(np.float64)}, None),
        "wrong dtype (ids)": (TEXT.graph, {"token_ids": ids.astype(np.int32), "lengths": lengths}, None),
        "batch over max": (IMAGE.graph, {"region_features": np.repeat(feats[:1], MAX_BATCH + 1, 0)}, None),
        "length beyond the ids": (TEXT.graph, {"token_ids": ids, "lengths": lengths + 100}, None),
        "id outside the vocabulary": (TEXT.graph, {"token_ids": ids + vocab_size, "lengths": lengths}, None),
        "empty caption": (CAPTION_ENCODER, {CAPTIONS: np.array([[b""]], dtype=object)}, None),
        "10,000-word caption": (CAPTION_ENCODER, {CAPTIONS: np.array([[b"word1 " * 10_000]], dtype=object)},
                                None),
        "not UTF-8": (TOKENIZER, {CAPTIONS: np.array([[b"\xff\xfe caption"]], dtype=object)}, None),
    }


@pytest.mark.parametrize("case", ["wrong shape", "wrong dtype", "wrong dtype (ids)", "batch over max",
                                  "length beyond the ids", "id outside the vocabulary", "empty caption",
                                  "10,000-word caption", "not UTF-8"])
def test_malformed_request_is_refused_and_the_server_keeps_serving(client, server, reference, case):
    from tritonclient.utils import InferenceServerException

    vectors = reference["vectors"]
    vocab_size = len(reference["vocab"])
    model, feeds, _ = _malformed(vectors, vocab_size)[case]
    outputs = {IMAGE.graph: IMAGE.output_names, TEXT.graph: TEXT.output_names,
               CAPTION_ENCODER: [TEXT.embedding], TOKENIZER: ["token_ids", "lengths"]}[model]
    with pytest.raises(InferenceServerException) as refused:
        client.infer(model, feeds, outputs)
    if case == "not UTF-8" and client.protocol == "http-json":
        # JSON carries text only: the client refuses to send it (binary and gRPC reach the server)
        assert refused.value.status() is None and "UTF-8" in refused.value.message()
    elif client.protocol != "grpc":
        assert refused.value.status() is not None and refused.value.status().startswith("4"), (
            refused.value.status(), refused.value.message())
    else:
        assert "INVALID_ARGUMENT" in str(refused.value.status()), refused.value
    assert server.alive(), server.log_tail()
    # still serving, and still right
    captions = _captions(vectors, 0, 2)
    got = client.infer(CAPTION_ENCODER, {CAPTIONS: captions}, [TEXT.embedding])[TEXT.embedding]
    ids, lengths = reference["vocab"].encode_batch([c[0].decode() for c in captions])
    want = reference["sessions"][TEXT.graph].run(None, {"token_ids": ids, "lengths": lengths})[0]
    assert _max_diff(got, want) <= TOL


def test_200_concurrent_requests_are_batched_and_all_correct(server, reference):
    """100 single-image and 100 single-caption requests in flight together (gRPC, asynchronous):
    every answer equals ONNX Runtime's row, and the dynamic batcher merged requests."""
    import queue

    import tritonclient.grpc as tg

    vectors, sessions, vocab = reference["vectors"], reference["sessions"], reference["vocab"]
    rng = np.random.default_rng(0)
    feats = np.abs(rng.standard_normal((100, *vectors["region_features"].shape[1:]))).astype(np.float32)
    usable = [x for i, x in enumerate(vectors["captions"]) if i not in reference["refused"]]
    captions = [usable[i % len(usable)] for i in range(100)]
    want_img = sessions[IMAGE.graph].run(["image_embedding"], {"region_features": feats})[0]
    want_txt = np.concatenate([sessions[TEXT.graph].run(None, dict(zip(
        TEXT.input_names, vocab.encode_batch([c]), strict=True)))[0] for c in captions])

    c = tg.InferenceServerClient(server.grpc_url)
    done: queue.Queue = queue.Queue()
    try:
        before = {m: _counts(c, m) for m in (IMAGE.graph, TEXT.graph)}
        t0 = time.perf_counter()
        for i in range(100):
            img = tg.InferInput("region_features", [1, *feats.shape[1:]], "FP32")
            img.set_data_from_numpy(feats[i : i + 1])
            c.async_infer(IMAGE.graph, [img], _reporter(done, "image", i),
                          outputs=[tg.InferRequestedOutput("image_embedding")])
            cap = tg.InferInput(CAPTIONS, [1, 1], "BYTES")
            cap.set_data_from_numpy(np.array([[captions[i].encode()]], dtype=object))
            c.async_infer(CAPTION_ENCODER, [cap], _reporter(done, "text", i))
        seen = set()
        for _ in range(200):
            kind, i, result, error = done.get(timeout=60)
            assert error is None, error
            seen.add((kind, i))
            if kind == "image":
                assert _max_diff(result.as_numpy("image_embedding")[0], want_img[i]) <= TOL, i
            else:
                assert _max_diff(result.as_numpy(TEXT.embedding)[0], want_txt[i]) <= TOL, i
        elapsed = time.perf_counter() - t0
        after = {m: _counts(c, m) for m in (IMAGE.graph, TEXT.graph)}
    finally:
        c.close()
    assert len(seen) == 200
    assert elapsed < 60  # a bound against a hang, not a speed target (benchmarks/bench_triton.py)
    inferences = after[IMAGE.graph][0] - before[IMAGE.graph][0]
    executions = after[IMAGE.graph][1] - before[IMAGE.graph][1]
    assert inferences == 100
    assert executions < inferences, "the dynamic batcher merged no image requests"
    assert after[TEXT.graph][0] - before[TEXT.graph][0] == 100


def _reporter(done, kind: str, i: int):
    """A tritonclient.grpc callback (called with result=, error=) that queues what came back."""
    return lambda result, error: done.put((kind, i, result, error))


def _counts(client, model: str) -> tuple[int, int]:
    """(inference_count, execution_count) of a model, over gRPC."""
    stats = client.get_inference_statistics(model, as_json=True)["model_stats"][0]  # strings; absent: 0
    return int(stats.get("inference_count", 0)), int(stats.get("execution_count", 0))


def test_repository_readme_says_how_to_start_the_server(server):
    repo = server.log_path.with_name(server.log_path.name.removesuffix(".log"))
    readme = (repo / "README.md").read_text()
    for needle in (f"vsrn-deploy serve --repo {repo.resolve()}", "nvcr.io/nvidia/tritonserver",
                   "nvidia-pytriton==0.7.0", "--backend-directory",
                   f"`{CAPTION_ENCODER}` (ensemble)", "'numpy<2' nltk onnxruntime"):
        assert needle in readme, needle
