"""docs/serving.md, run against the real server: its `triton-repo` and `vsrn-deploy serve` steps as
written (the ports swapped for free ones), then its three client snippets (TritonClient, raw
tritonclient, curl), whose embeddings must equal ONNX Runtime on the exported graphs within 1e-5.
The same server then shows that the caption path batches (tokenizer and text encoder: at most one
execution per four requests at 16 in flight), that oversized caption requests are refused with 400
while it keeps serving, and that SIGTERM stops `serve` with exit 130 and leaves no server process.
One server for the module."""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from vsrn_deploy.core.contract import IMAGE, TEXT
from vsrn_deploy.data.vocab import load_vocab
from vsrn_deploy.serving.triton_server import free_port

pytestmark = pytest.mark.triton

DOC = Path(__file__).resolve().parents[3] / "docs" / "serving.md"
TOL = 1e-5
DOC_HTTP, DOC_GRPC = "8000", "8001"
CAPTIONS = ["a man riding a horse", "two dogs play in the snow"]  # what the snippets send
_FENCE = re.compile(r"^(`{3,})\s*(\w*)\s*$")


def doc_blocks() -> list[tuple[str, str]]:
    """(language, text) of every fenced block of docs/serving.md."""
    blocks, lines, i = [], DOC.read_text(encoding="utf-8").splitlines(), 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        body, i = [], i + 1
        while not lines[i].startswith(match[1]):
            body.append(lines[i])
            i += 1
        blocks.append((match[2], "\n".join(body) + "\n"))
        i += 1
    return blocks


def _block(lang: str, needle: str) -> str:
    found = [text for kind, text in doc_blocks() if kind == lang and needle in text]
    assert len(found) == 1, f"docs/serving.md should have one {lang} block with {needle!r}, has {len(found)}"
    return found[0]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def _ports(text: str, served: dict) -> str:
    """The block with the documented ports replaced by the test server's."""
    text = re.sub(rf"(?<=[:\s]){DOC_HTTP}\b", str(served["http"]), text)
    return re.sub(rf"(?<=[:\s]){DOC_GRPC}\b", str(served["grpc"]), text)


def _run(lang: str, text: str, work: Path) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-c", text] if lang == "python" else ["bash", "-e", "-o", "pipefail", "-c", text]
    result = subprocess.run(argv, cwd=work, env=_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{text}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def served(tiny_export, tmp_path_factory):
    """docs/serving.md's steps 1 and 2 in a folder laid out like a demo run, on free ports."""
    work = tmp_path_factory.mktemp("serve_docs")
    (work / "runs" / "demo").mkdir(parents=True)
    (work / "runs" / "demo" / "export").symlink_to(tiny_export)
    graph = json.loads((tiny_export / "manifest.json").read_text())["graphs"][IMAGE.graph]
    regions, dim = graph["inputs"][0]["shape"][1:]
    features = np.abs(np.random.default_rng(0).standard_normal((5, regions, dim))).astype(np.float32)
    data = work / "runs" / "demo" / "data" / "synth_precomp"
    data.mkdir(parents=True)
    np.save(data / "test_ims.npy", features)
    _run("bash", _block("bash", "vsrn-deploy triton-repo"), work)

    ports = {"http": free_port(), "grpc": free_port()}
    while ports["grpc"] == ports["http"]:
        ports["grpc"] = free_port()
    command = _ports(_block("bash", "vsrn-deploy serve --repo model_repository --http-port"), ports).strip()
    assert "\n" not in command and command.startswith("vsrn-deploy serve")
    proc = subprocess.Popen(shlex.split(command), cwd=work, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + 180
    while not any("Ctrl-C stops it" in line for line in seen):
        try:
            seen.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
        except queue.Empty:
            proc.kill()
            pytest.fail("vsrn-deploy serve did not report ready:\n" + "".join(seen))
        if proc.poll() is not None and lines.empty():
            pytest.fail(f"vsrn-deploy serve exited {proc.returncode}:\n" + "".join(seen))
    pid = int(re.search(r"\(pid (\d+)\)", "".join(seen))[1])
    state = {"work": work, "proc": proc, "lines": seen, "server_pid": pid, "features": features,
             "tiny_export": tiny_export, **ports}
    yield state
    if proc.poll() is None:  # a test failed before the SIGTERM test: stop it anyway
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


@pytest.fixture(scope="module")
def reference(tiny_export):
    import onnxruntime as ort

    sessions = {spec.graph: ort.InferenceSession(str(tiny_export / f"{spec.graph}.onnx"),
                                                 providers=["CPUExecutionProvider"])
                for spec in (IMAGE, TEXT)}
    vocab = load_vocab(tiny_export / "vocab.json")

    def text(captions: list[str]) -> np.ndarray:
        ids, lengths = vocab.encode_batch(captions)
        return sessions[TEXT.graph].run([TEXT.embedding], {"token_ids": ids, "lengths": lengths})[0]

    def image(features: np.ndarray) -> np.ndarray:
        return sessions[IMAGE.graph].run([IMAGE.embedding], {IMAGE.inputs[0].name: features})[0]

    return {"text": text, "image": image}


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def test_serve_prints_the_urls_and_every_model_ready(served):
    out = "".join(served["lines"])
    assert f"http://127.0.0.1:{served['http']}" in out and f"127.0.0.1:{served['grpc']}" in out
    for model in ("caption_encoder", "image_encoder", "text_encoder", "tokenizer"):
        assert re.search(rf"^  {model} version 1: READY$", out, re.M), out


def test_tritonclient_snippet_equals_onnxruntime(served, reference):
    text = _block("python", "from vsrn_deploy.client import TritonClient")
    _run("python", _ports(text, served), served["work"])
    texts = np.load(served["work"] / "caption_embeddings.npy")
    images = np.load(served["work"] / "image_embeddings.npy")
    assert _max_diff(texts, reference["text"](CAPTIONS)) <= TOL
    assert _max_diff(images, reference["image"](served["features"][:4])) <= TOL


def test_client_over_grpc_as_the_snippet_says(served, reference):
    """The snippet's comment: the same client over gRPC."""
    from vsrn_deploy.client import TritonClient

    with TritonClient(f"127.0.0.1:{served['grpc']}", protocol="grpc") as client:
        # 11 captions: more than the repository's max batch (8), so two requests
        captions = [CAPTIONS[i % 2] + f" number {i}" for i in range(11)]
        assert _max_diff(client.encode_captions(captions), reference["text"](captions)) <= TOL
        features = served["features"]
        assert _max_diff(client.encode_images(features), reference["image"](features)) <= TOL


def test_raw_tritonclient_snippet_equals_onnxruntime(served, reference):
    text = _block("python", "import tritonclient.grpc as grpcclient")
    _run("python", _ports(text, served), served["work"])
    got = np.load(served["work"] / "raw_caption_embeddings.npy")
    assert _max_diff(got, reference["text"](CAPTIONS)) <= TOL


def test_curl_snippet_equals_onnxruntime(served, reference):
    result = _run("bash", _ports(_block("bash", "curl -s -X POST"), served), served["work"])
    answer = json.loads(result.stdout[result.stdout.index("{"):])
    (output,) = answer["outputs"]
    assert output["name"] == TEXT.embedding and output["datatype"] == "FP32"
    got = np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])
    assert _max_diff(got, reference["text"](CAPTIONS)) <= TOL


def _stats(client, model: str) -> tuple[int, int]:
    stats = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
    return int(stats.get("inference_count", 0)), int(stats.get("execution_count", 0))


def test_caption_path_batches_at_16_in_flight(served, reference):
    """128 single-caption requests to caption_encoder, 16 in flight: the tokenizer and the text encoder
    each ran at most one execution per four requests, and every answer is right."""
    import tritonclient.grpc as tg

    captions = [f"{CAPTIONS[i % 2]} {'and a cat ' * (i % 3)}".strip() for i in range(128)]
    want = reference["text"](captions)
    client = tg.InferenceServerClient(f"127.0.0.1:{served['grpc']}")
    done: queue.Queue = queue.Queue()
    slots = threading.Semaphore(16)
    try:
        before = {m: _stats(client, m) for m in ("tokenizer", TEXT.graph)}
        for i, caption in enumerate(captions):
            slots.acquire()
            item = tg.InferInput("captions", [1, 1], "BYTES")
            item.set_data_from_numpy(np.array([[caption.encode()]], dtype=object))

            def report(result, error, i=i):
                done.put((i, result, error))
                slots.release()

            client.async_infer("caption_encoder", [item], report,
                               outputs=[tg.InferRequestedOutput(TEXT.embedding)])
        for _ in captions:
            i, result, error = done.get(timeout=60)
            assert error is None, error
            assert _max_diff(result.as_numpy(TEXT.embedding)[0], want[i]) <= TOL, i
        after = {m: _stats(client, m) for m in ("tokenizer", TEXT.graph)}
    finally:
        client.close()
    for model in ("tokenizer", TEXT.graph):
        inferences = after[model][0] - before[model][0]
        executions = after[model][1] - before[model][1]
        assert inferences == len(captions), (model, inferences)
        assert executions * 4 <= inferences, f"{model}: {executions} executions for {inferences} requests"


def test_oversized_caption_requests_get_400_and_the_server_keeps_serving(served, reference):
    import tritonclient.http as th
    from tritonclient.utils import InferenceServerException

    client = th.InferenceServerClient(f"127.0.0.1:{served['http']}", network_timeout=30)
    try:
        for captions, why in (([["a dog"]] * 9, "batch"), ([["word " * 2000]], "bytes")):
            item = th.InferInput("captions", [len(captions), 1], "BYTES")
            item.set_data_from_numpy(np.array([[c.encode() for c in row] for row in captions], dtype=object))
            t0 = time.perf_counter()
            with pytest.raises(InferenceServerException) as refused:
                client.infer("caption_encoder", [item])
            assert refused.value.status() == "400", (why, refused.value)
            assert time.perf_counter() - t0 < 10, why
            assert why not in ("bytes",) or "max_caption_bytes" in refused.value.message()
        item = th.InferInput("captions", [2, 1], "BYTES")
        item.set_data_from_numpy(np.array([[c.encode()] for c in CAPTIONS], dtype=object))
        got = client.infer("caption_encoder", [item]).as_numpy(TEXT.embedding)
    finally:
        client.close()
    assert _max_diff(got, reference["text"](CAPTIONS)) <= TOL


def test_sigterm_stops_serve_with_130_and_no_server_left(served):
    """Last in the module: it ends the shared server."""
    proc = served["proc"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 130
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(served["server_pid"], 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    pytest.fail(f"tritonserver (pid {served['server_pid']}) still runs after serve exited")
