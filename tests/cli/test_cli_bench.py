"""`vsrn-deploy bench` through the typer app: exit codes and files (tiny model, few calls)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from vsrn_deploy.cli.app import app


def test_bench_tiny_writes_json_markdown_and_plot(tmp_path):
    out, md, png = tmp_path / "b.json", tmp_path / "b.md", tmp_path / "b.png"
    result = CliRunner().invoke(app, ["bench", "--tiny", "--backends", "torch,torch-deploy", "--batch", "1,2",
                                      "--encoder", "text", "--warmup", "1", "--iters", "2", "--threads", "1",
                                      "--out", str(out), "--markdown", str(md), "--plot", str(png)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert {"machine", "results"} <= set(report)
    assert sorted((r["backend"], r["batch"]) for r in report["results"]) == [
        ("torch", 1), ("torch", 2), ("torch-deploy", 1), ("torch-deploy", 2)]
    assert all(r["encoder"] == "text" and r["iters"] == 2 for r in report["results"])
    assert "### text encoder" in md.read_text() and png.stat().st_size > 1000


def test_bad_backend_is_exit_2_without_traceback():
    result = CliRunner().invoke(app, ["bench", "--tiny", "--backends", "torch,tensorflow"])
    assert result.exit_code == 2
    assert "unknown backend" in result.output and "tensorflow" in result.output
    assert "Traceback" not in result.output


def test_iters_and_seconds_together_is_exit_2():
    result = CliRunner().invoke(app, ["bench", "--tiny", "--iters", "3", "--seconds", "1"])
    assert result.exit_code == 2
    assert "not both" in result.output


def test_bad_batch_list_is_exit_2():
    result = CliRunner().invoke(app, ["bench", "--tiny", "--batch", "1,x"])
    assert result.exit_code == 2
    assert "--batch" in result.output
