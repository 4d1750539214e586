"""perf_analyzer (Triton's load generator, tritonclient 2.51; `.ci/setup.d/32-perf-analyzer.sh`
installs it) against a real tritonserver on the repository `triton-repo --backend python --kind cpu`
ships with its default batching settings: 16 caption requests in flight on `caption_encoder` reach the
tokenizer and the text encoder in batches (each ran at most once per 4 requests, the server's own
statistics say), and a short run on `image_encoder` succeeds. Short count windows on the tiny export."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from vsrn_deploy.core.contract import IMAGE, TEXT, UNK_ID
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

REPO = Path(__file__).resolve().parents[3]
PERF_ANALYZER = REPO / ".venv" / "perf-analyzer" / "perf_analyzer"
CONCURRENCY = 16
MIN_BATCH = 4  # each model runs at most once per this many requests


@pytest.fixture(scope="module")
def perf_analyzer() -> Path:
    if not PERF_ANALYZER.is_file():  # the set-up installs it in CI: missing is a broken set-up, not a skip
        pytest.fail(f"no perf_analyzer at {PERF_ANALYZER}; install it with: bash .ci/setup "
                    "(.ci/setup.d/32-perf-analyzer.sh)")
    return PERF_ANALYZER


@pytest.fixture(scope="module")
def server(tiny_export, tmp_path_factory, running_server):
    """tritonserver on a python-backend CPU repository of the tiny export with the shipped batching
    defaults (max batch 8 from the export; preferred sizes and queue delay not given)."""
    repo = build_model_repository(TritonRepoConfig(
        onnx_dir=tiny_export, out=tmp_path_factory.mktemp("triton_pa") / "repo", backend="python",
        kind="cpu"))
    with running_server(repo) as srv:
        yield srv


def _stats(server) -> dict[str, tuple[int, int]]:
    """(inference_count, execution_count) of every model, from the server's statistics."""
    import tritonclient.grpc as tg

    client = tg.InferenceServerClient(server.grpc_url)
    try:
        rows = client.get_inference_statistics(as_json=True)["model_stats"]
    finally:
        client.close()
    return {r["name"]: (int(r.get("inference_count", 0)), int(r.get("execution_count", 0))) for r in rows}


def _run(binary: Path, server, model: str, work: Path, *extra: str) -> dict[str, str]:
    """One short perf_analyzer run at CONCURRENCY over gRPC; its CSV row (asserts exit 0)."""
    report = work / f"{model}.csv"
    cmd = [str(binary), "-m", model, "-u", server.grpc_url, "-i", "grpc",
           "--concurrency-range", str(CONCURRENCY), "--measurement-mode", "count_windows",
           "--measurement-request-count", "64", "--stability-percentage", "1000", "--max-trials", "3",
           "-f", str(report), *extra]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"perf_analyzer on {model} exited {done.returncode}:\n" \
        f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}\n{server.log_tail()}"
    with open(report, newline="") as f:
        return next(csv.DictReader(f))


def test_caption_encoder_batches_under_perf_analyzer(perf_analyzer, server, tiny_export, tmp_path):
    vectors = read_test_vectors(tiny_export)
    vocab = load_vocab(tiny_export / "vocab.json")
    # the tokenizer refuses a caption without a known word: perf_analyzer gets only usable ones
    captions = [c for c in vectors["captions"] if not unusable_query(vocab.encode(c), c, UNK_ID)]
    assert len(captions) >= 8, captions
    data = tmp_path / "captions.json"
    data.write_text(json.dumps({"data": [{CAPTIONS: {"content": [c], "shape": [1]}} for c in captions]}))

    before = _stats(server)
    row = _run(perf_analyzer, server, CAPTION_ENCODER, tmp_path, "--input-data", str(data))
    after = _stats(server)

    assert float(row["Inferences/Second"]) > 0, row
    for model in (TOKENIZER, TEXT.graph):
        inferences = after[model][0] - before[model][0]
        executions = after[model][1] - before[model][1]
        assert inferences >= 64, (model, inferences)  # at least one count window went through it
        assert executions * MIN_BATCH <= inferences, (
            f"{model}: {executions} executions for {inferences} requests "
            f"({inferences / max(1, executions):.2f} per execution, want >= {MIN_BATCH})")


def test_image_encoder_under_perf_analyzer(perf_analyzer, server, tmp_path):
    before = _stats(server)[IMAGE.graph]
    row = _run(perf_analyzer, server, IMAGE.graph, tmp_path)
    after = _stats(server)[IMAGE.graph]
    assert float(row["Inferences/Second"]) > 0, row
    assert after[0] - before[0] >= 64, (before, after)


def test_bench_triton_reports_where_the_cores_went(perf_analyzer, tmp_path):
    """benchmarks/bench_triton.py end to end on the tiny model (one round, short windows): its report
    says, per process, how much CPU the server, each python model and perf_analyzer took, and the
    encoders' items per CPU-second beside the direct client's; its direct rate is over the batch sizes
    the server ran."""
    out = tmp_path / "tiny"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_triton.py"), "--tiny", "--rounds",
                           "1", "--requests", "50", "--seconds", "0.5", "--perf-analyzer", str(perf_analyzer),
                           "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.with_suffix(".json").read_text())
    captions, images = report["summary"]["captions"], report["summary"]["images"]
    for name in ("tritonserver", TOKENIZER, TEXT.graph, "perf_analyzer"):
        assert captions["cores"][name] > 0, (name, captions["cores"])
    assert images["cores"][IMAGE.graph] > 0
    assert images["cores"].get(TOKENIZER, 0.0) < captions["cores"][TOKENIZER]
    cpus = report["machine"]["logical_cpus"]
    for summary in (captions, images):
        assert sum(summary["cores"].values()) <= cpus * 1.1, summary["cores"]  # shares of the machine
        assert summary["items_per_cpu_s"]["triton_encoder"] > 0 and summary["items_per_cpu_s"]["direct"] > 0
        assert 0 < summary["direct_cores"] <= cpus * 1.1
    # the direct side runs the batch sizes the server ran, weighted by the server's executions at each
    for summary, encoder in ((captions, TEXT.graph), (images, IMAGE.graph)):
        assert sum(summary["batches"].values()) == summary["counts"][encoder]["executions"]
        (row,) = report["rounds_per_kind"]["captions" if encoder == TEXT.graph else "images"]
        rates = row["direct_items_per_s_by_batch"].values()
        assert set(row["direct_items_per_s_by_batch"]) == set(row["batches"])
        assert min(rates) * 0.999 <= row["direct_items_per_s"] <= max(rates) * 1.001
    md = out.with_suffix(".md").read_text()
    assert f"Where the {cpus} cores went" in md and "| caption_encoder | " in md
