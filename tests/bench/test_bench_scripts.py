"""The benchmark scripts in benchmarks/ run end to end at tiny sizes (the GPU one as a CPU dry run)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_bench_script_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_bench_dry_run_exercises_every_variant(tmp_path):
    gpu_bench = _load("gpu_bench")
    # one batch size and short captions keep dynamo's tracing of the unrolled GRUs brief
    argv = ["--dry-run", "--batches", "2", "--max-tokens", "6", "--seconds", "0", "--min-iters", "1",
            "--warmup", "1", "--out-dir", str(tmp_path), "--prefix", "dry"]
    code = gpu_bench.main(argv)
    assert code == 0
    report = json.loads((tmp_path / "dry.json").read_text())
    variants = {(r["encoder"], r["backend"], r["batch"]) for r in report["results"]}
    names = ("torch", "torch-fp16", gpu_bench.GRAPH, "torch-compile-fp16")
    assert variants == {(e, n, b) for e in ("image", "text") for n in names for b in (2,)}
    for r in report["results"]:
        assert r["min_cosine"] > 0.99, r  # every variant computes the same embedding
        assert r["p50_ms"] > 0 and r["items_per_s"] > 0
    md = (tmp_path / "dry.md").read_text()
    assert "Targets" in md and gpu_bench.GRAPH in md
    assert (tmp_path / "dry.png").is_file()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown when there is no GPU")
def test_gpu_bench_without_cuda_says_so(capsys, tmp_path):
    assert _load("gpu_bench").main(["--out-dir", str(tmp_path)]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_cpu_encoder_script_smoke(tmp_path):
    script = _load("bench_encoders")
    code = script.main(["--tiny", "--backends", "torch,torch-deploy", "--batches", "1,32", "--seconds", "0",
                        "--min-iters", "1", "--warmup", "0", "--threads", "1", "--peak-seconds", "0.01",
                        "--out-dir", str(tmp_path),
                        "--prefix", "smoke"])
    assert code == 0
    report = json.loads((tmp_path / "smoke.json").read_text())
    assert report["settings"]["script"] == "benchmarks/bench_encoders.py"
    md = (tmp_path / "smoke.md").read_text()
    assert "### Targets" in md and "theoretical FP32 peak" in md
    assert (tmp_path / "smoke.png").is_file()


def test_int8_bench_smoke_run(tmp_path):
    bench_int8 = _load("bench_int8")
    assert bench_int8.main(["--tiny", "--rounds", "1", "--block", "3", "--out-dir", str(tmp_path), "--work",
                            str(tmp_path / "work")]) == 0
    report = json.loads((tmp_path / "int8_cpu_tiny.json").read_text())
    got = {(r["encoder"], r["backend"], r["batch"]) for r in report["results"]}
    assert {("image", b, n) for b in ("torch", "ort", "ort-int8", "ort-int8-static", "ort-int4-recurrent")
            for n in (1,)} <= got
    assert {("text", b, n) for b in ("ort", "ort-loop-fp32", "ort-int8") for n in (1, 32)} <= got
    assert report["machine"]["peaks"]["int8"]["gops"] > 0 and report["load_average"]["start"] is not None
    assert report["roofline"]["image/ort-int8"]["gop_per_s_b32"] > 0
    for r in report["results"]:  # a steady state and a cold call, timed apart
        assert r["iters"] >= 1 and r["cold_iters"] >= 1 and r["cold_p50_ms"] > 0
    floor = report["floor"]
    cfg = report["model"]["config"]
    assert floor["image_steps"] == cfg["num_regions"] - 1
    assert floor["matrix_bytes"] == 3 * cfg["embed_size"] ** 2
    assert floor["image_recurrence_ms"] == pytest.approx(floor["image_steps"] * floor["gemv"]["ms"])
    assert set(floor["image_parts_ms"]) == {"fc", "gcn projections", "gru input projection", "gru recurrence"}
    assert floor["image_floor_ms"] == pytest.approx(sum(floor["image_parts_ms"].values()))
    assert floor["read"]["gb_per_s"] > 0
    md = (tmp_path / "int8_cpu_tiny.md").read_text()
    assert "Targets" in md and "Roofline" in md and "ort-int8" in md and "batch-1 floor" in md
