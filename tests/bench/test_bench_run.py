"""run_benchmark on tiny models: the report's fields and shapes (never speed), markdown and PNG."""

from __future__ import annotations

import json

import pytest

from vsrn_deploy.bench import (
    BenchConfig,
    flops,
    plot_report,
    run_benchmark,
    to_markdown,
    write_json,
    write_markdown,
)
from vsrn_deploy.bench.core import _export_matches, add_roofline, image_feed
from vsrn_deploy.model.config import VSRNConfig

ROW_KEYS = {"encoder", "backend", "precision", "batch", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "iters",
            "items_per_s", "flops_per_item", "gflops", "pct_of_peak"}


@pytest.fixture(scope="module")
def torch_report():
    cfg = BenchConfig(backends=("torch", "torch-deploy", "trt"), batches=(1, 3), warmup=1, iters=3,
                      seconds=None, tiny=True, threads=1, peak_seconds=0.05)
    return run_benchmark(cfg)


def test_report_has_a_row_per_encoder_backend_and_batch(torch_report):
    rows = torch_report["results"]
    keys = {(r["encoder"], r["backend"], r["batch"]) for r in rows}
    assert keys == {(e, b, n) for e in ("image", "text") for b in ("torch", "torch-deploy") for n in (1, 3)}
    for r in rows:
        assert ROW_KEYS <= set(r)
        assert r["iters"] == 3
        assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
        assert r["items_per_s"] == pytest.approx(r["batch"] / (r["p50_ms"] / 1e3))
        assert r["precision"] == "fp32"
        assert r["gflops"] == pytest.approx(r["flops_per_item"] * r["items_per_s"] / 1e9)
        if r["batch"] == 1:
            assert r["weight_gbps"] > 0 and r["streamed_weight_bytes"] >= r["weight_bytes"]
        else:
            assert "weight_gbps" not in r
        if r["encoder"] == "text":
            assert 8 <= r["mean_tokens"] <= r["tokens"] <= 20


def test_report_records_machine_versions_model_and_skips(torch_report):
    m = torch_report["machine"]
    assert m["cpu"] and m["threads"] == 1 and m["matmul_peak"]["float32"]["gflops"] > 0
    assert {"python", "torch", "numpy"} <= set(m["versions"])
    assert "hostname" not in json.dumps(m).lower()
    assert torch_report["model"]["source"] == "random init"
    assert torch_report["model"]["config"]["embed_size"] == VSRNConfig.tiny().embed_size
    skipped = torch_report["skipped"]
    assert {(s["encoder"], s["backend"]) for s in skipped} == {("image", "trt"), ("text", "trt")}
    assert all(s["reason"] for s in skipped)


def test_json_markdown_and_png_are_written(torch_report, tmp_path):
    out = write_json(torch_report, tmp_path / "r.json")
    assert json.loads(out.read_text())["results"] == torch_report["results"]
    md = write_markdown(torch_report, tmp_path / "r.md").read_text()
    assert md == to_markdown(torch_report)
    assert "| backend | precision | batch | p50 ms | p90 ms | p99 ms | items/s | GFLOP/s | % of peak" in md
    assert md.count("| torch-deploy | fp32 |") == 4 and "Skipped: trt" in md
    png = plot_report(torch_report, tmp_path / "r.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_roofline_bandwidth_uses_the_row_precision():
    cfg = VSRNConfig()
    peak = {"float32": {"gflops": 100.0}, "float16": {"gflops": 400.0}}
    feed = image_feed(VSRNConfig.tiny(), 1)  # only the text encoder reads the feed
    fp32 = {"encoder": "image", "backend": "torch", "batch": 1, "precision": "fp32", "p50_ms": 100.0}
    fp16 = dict(fp32, precision="fp16")
    add_roofline(fp32, cfg, feed, peak)
    add_roofline(fp16, cfg, feed, peak)
    assert fp32["gflops"] == pytest.approx(69.88, abs=0.01)  # 6.988 GFLOP in 0.1 s
    assert fp32["pct_of_peak"] == pytest.approx(69.88, abs=0.01)
    assert fp16["pct_of_peak"] == pytest.approx(fp32["pct_of_peak"] / 4)
    assert fp32["weight_bytes"] == 2 * fp16["weight_bytes"] == 23 * 2048 * 2048 * 4
    assert fp32["weight_gbps"] == pytest.approx(fp32["weight_bytes"] / 0.1 / 1e9)
    # the deploy form executes fewer matmuls (W folded into g): its row counts those
    ort = {"encoder": "image", "backend": "ort", "batch": 1, "precision": "fp32", "p50_ms": 100.0}
    add_roofline(ort, cfg, feed, peak)
    assert ort["form"] == "deploy" and ort["model_flops_per_item"] == fp32["flops_per_item"]
    assert ort["flops_per_item"] == flops.image_encoder_flops(cfg, "deploy") < fp32["flops_per_item"]
    assert ort["weight_bytes"] == 19 * 2048 * 2048 * 4


@pytest.mark.export
def test_ort_backends_export_into_an_empty_onnx_dir_then_reuse_it(tmp_path, caplog):
    caplog.set_level("INFO", logger="vsrn_deploy")
    export_dir = tmp_path / "exp"
    cfg = BenchConfig(encoders=("image", "text"), backends=("torch", "ort", "ort-fp16", "ort-int8"),
                      batches=(2,), warmup=1, iters=2, seconds=None, tiny=True, threads=1, peak_seconds=0.05,
                      onnx_dir=str(export_dir))
    report = run_benchmark(cfg)
    assert report["model"]["onnx"] == {"dir": str(export_dir), "exported_here": True,
                                       "reason": f"{export_dir} held no export"}
    assert any("exporting" in m for m in caplog.messages)
    assert (export_dir / "manifest.json").is_file()
    got = {(r["encoder"], r["backend"], r["precision"]) for r in report["results"]}
    assert got == {(e, b, p) for e in ("image", "text") for b, p in
                   (("torch", "fp32"), ("ort", "fp32"), ("ort-fp16", "fp16"), ("ort-int8", "int8"))}
    int8_peak = report["machine"]["matmul_peak"]["int8"]["gops"]
    for row in (r for r in report["results"] if r["backend"] == "ort-int8"):
        assert row["pct_of_peak"] == pytest.approx(100.0 * row["gflops"] / int8_peak)
    again = run_benchmark(BenchConfig(encoders=("image",), backends=("ort",), batches=(1,), warmup=0, iters=1,
                                      seconds=None, tiny=True, peak_seconds=0.01, onnx_dir=str(export_dir)))
    assert again["model"]["onnx"] == {"dir": str(export_dir), "exported_here": False}
    assert [r["backend"] for r in again["results"]] == ["ort"]


def test_an_export_of_other_sizes_or_checkpoint_does_not_match(tmp_path):
    cfg = VSRNConfig.tiny()
    graphs = {"image_encoder": {"fp32": "i.onnx"}, "text_encoder": {"fp32": "t.onnx"}}
    (tmp_path / "i.onnx").write_bytes(b"x")
    (tmp_path / "t.onnx").write_bytes(b"x")
    files = {name: {"sha256": "0" * 64, "bytes": 1} for name in ("i.onnx", "t.onnx")}
    manifest = {"config": cfg.to_dict(), "source": {"sha256": "aa"}, "files": files, "graphs": graphs}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert _export_matches(tmp_path, cfg, None, {"fp32"}) is None
    assert _export_matches(tmp_path, cfg, "aa", {"fp32"}) is None
    assert "another checkpoint" in _export_matches(tmp_path, cfg, "bb", {"fp32"})
    assert "fp16" in _export_matches(tmp_path, cfg, None, {"fp16"})
    assert "embed_size" in _export_matches(tmp_path, cfg.replace(embed_size=32), None, {"fp32"})
    assert "holds no export" in _export_matches(tmp_path / "nothing", cfg, None, {"fp32"})
    (tmp_path / "manifest.json").write_text(json.dumps({"graphs": graphs}))  # not an export's manifest
    assert "not a vsrn-deploy export manifest" in _export_matches(tmp_path, cfg, None, {"fp32"})


def test_a_checkpoint_is_benchmarked_and_named(tmp_path):
    from vsrn_deploy.bench.core import random_model
    from vsrn_deploy.model.checkpoint import save_checkpoint

    ckpt = save_checkpoint(tmp_path / "m.pt", random_model(VSRNConfig.tiny(embed_size=12)))
    cfg = BenchConfig(encoders=("text",), backends=("torch",), batches=(2,), warmup=0, iters=1, seconds=None,
                      checkpoint=str(ckpt), peak_seconds=0.01)
    report = run_benchmark(cfg)
    model = report["model"]
    assert model["source"] == "checkpoint" and model["checkpoint"] == str(ckpt)
    assert len(model["sha256"]) == 64 and model["config"]["embed_size"] == 12
    assert [(r["backend"], r["batch"]) for r in report["results"]] == [("torch", 2)]


def test_peaks_and_runs_share_one_thread_count_when_none_is_given():
    """Without --threads the peaks and the runs used to take different library defaults (ONNX Runtime
    physical cores, torch logical CPUs), and "% of peak" read 123 % and 160 %."""
    import torch

    cfg = BenchConfig(backends=("torch",), encoders=("text",), batches=(1,), warmup=0, iters=1,
                      seconds=None, tiny=True, threads=None, peak_seconds=0.02)
    report = run_benchmark(cfg)
    threads = torch.get_num_threads()
    assert report["machine"]["threads"] == threads
    assert report["machine"]["matmul_peak"]["float32"]["threads"] == threads
    assert report["settings"]["threads"] == threads


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), -1.0, 3600.5])
def test_a_time_budget_beyond_its_bounds_is_refused(seconds):
    """NaN compares false with everything: it must not slip through as a budget that never ends."""
    from vsrn_deploy.bench.core import MAX_SECONDS
    from vsrn_deploy.core.errors import VsrnError

    with pytest.raises(VsrnError, match="seconds in"):
        BenchConfig(seconds=seconds, iters=None)
    assert BenchConfig(seconds=MAX_SECONDS, iters=None).seconds == MAX_SECONDS
