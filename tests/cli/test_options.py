"""The shared options: choices read from the tables, one backend parser, --precision everywhere,
--version, and -v/-q steering the one logging handler."""

from __future__ import annotations

import json
import logging
import re

import pytest
import typer
from typer.testing import CliRunner

import vsrn_deploy
from vsrn_deploy.cli import options
from vsrn_deploy.cli.app import app, setup_logging
from vsrn_deploy.core import backends as table
from vsrn_deploy.core import contract

WIDE = {"COLUMNS": "400"}  # one help row per option: no choice is wrapped across lines


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env=WIDE)


def test_version_prints_the_package_version_and_exits_0():
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"vsrn-deploy {vsrn_deploy.__version__}"


def test_choices_are_the_tables():
    assert [m.value for m in options.BackendName] == list(table.choices("all"))
    assert [m.value for m in options.TorchFreeBackend] == list(table.choices("torch-free"))
    assert [m.value for m in options.Precision] == list(contract.PRECISIONS)
    assert [m.value for m in options.ExportPrecision] == [*contract.PRECISIONS, "all"]
    assert [m.value for m in options.PlanPrecision] == list(contract.PLAN_PRECISIONS)


@pytest.mark.parametrize("command", ["attention", "index", "search"])
def test_torch_free_commands_offer_every_torch_free_backend_and_no_other(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0, result.output
    rows = [line.strip("│ ") for line in result.output.splitlines() if line.startswith("│")]
    row = next(line for line in rows if line.startswith("--backend "))
    offered = re.search(r"\[?<?([\w|-]+)>?\]?", row.split("--backend", 1)[1]).group(1).split("|")
    assert offered == list(table.choices("torch-free"))
    assert all(table.get(name).torch_free for name in offered)


def test_backends_help_lists_every_backend_of_the_table():
    result = invoke("validate", "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert f"from: {', '.join(table.choices('all'))}." in text


def _assert_usage_error_listing(result, wrong: str, choices: tuple[str, ...]) -> None:
    """Exit 2 and one `error: ...` line (like every user error) naming the wrong value and the choices."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "Usage:" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert wrong in lines[0]
    for name in choices:
        assert name in lines[0], (name, lines[0])
    assert "--help" in lines[0]  # where to read the choices again


@pytest.mark.parametrize("command", [
    ["validate", "--backends", "torch,tensorflow"],
    ["bench", "--tiny", "--backends", "tensorflow"],
])
def test_an_unknown_name_in_backends_exits_2_listing_the_choices(command):
    result = invoke(*command)
    _assert_usage_error_listing(result, "'tensorflow'", table.choices("all"))
    assert "unknown backend" in result.output


@pytest.mark.parametrize("command", [
    ["index", "--images", "x.npy", "--out", "idx"],
    ["attention", "--images", "x.npy", "--boxes", "b.npy", "--image-id", "0", "--out", "m.png"],
])
@pytest.mark.parametrize("wrong", ["torch", "tensorflow"])
def test_a_backend_torch_free_commands_do_not_run_exits_2_listing_the_choices(command, wrong):
    result = invoke(*command, "--backend", wrong)
    _assert_usage_error_listing(result, f"'{wrong}'", table.choices("torch-free"))


def test_an_empty_backends_list_exits_2():
    result = invoke("validate", "--backends", " , ")
    assert result.exit_code == 2 and "no backend named" in result.output


def test_the_backends_parser_keeps_order_and_drops_repeats():
    assert options.parse_backends(" ort ,torch,ort,") == ("ort", "torch")


def _captured_build(monkeypatch):
    from vsrn_deploy.engine import builder

    seen = []

    def fake_build_engines(onnx_dir, out_dir, settings, *, encoders):
        seen.append(settings)
        return []

    monkeypatch.setattr(builder, "build_engines", fake_build_engines)
    return seen


def test_build_engine_fp16_is_precision_fp16(monkeypatch, tmp_path):
    seen = _captured_build(monkeypatch)
    runs = (["--fp16"], ["--precision", "fp16"], ["--fp16", "--precision", "fp16"], [],
            ["--precision", "fp32"])
    for args in runs:
        result = invoke("build-engine", "--onnx-dir", str(tmp_path), *args)
        assert result.exit_code == 0, (args, result.output)
    assert [s.precision for s in seen] == ["fp16", "fp16", "fp16", "fp32", "fp32"]
    assert seen[0] == seen[1]  # the alias and the option build the very same thing


def test_build_engine_fp16_with_precision_fp32_exits_2(monkeypatch, tmp_path):
    seen = _captured_build(monkeypatch)
    result = invoke("build-engine", "--fp16", "--precision", "fp32")
    assert result.exit_code == 2 and "disagree" in result.output and not seen
    result = invoke("build-engine", "--precision", "int8")
    assert result.exit_code == 2 and "'int8'" in result.output and not seen


BENCH = ["bench", "--tiny", "--backends", "torch-deploy", "--encoder", "text", "--batch", "1",
         "--warmup", "0", "--iters", "1", "--threads", "1"]


def test_bench_precision_sets_what_torch_deploy_computes_in(tmp_path):
    out = tmp_path / "b.json"
    result = invoke(*BENCH, "--precision", "bf16", "--out", str(out))
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["results"]
    assert [(r["backend"], r["precision"]) for r in rows] == [("torch-deploy", "bf16")]


def test_bench_dtype_is_gone():
    result = invoke(*BENCH, "--dtype", "bf16")
    assert result.exit_code == 2 and result.output.startswith("error: No such option: --dtype")


def test_quiet_drops_progress_lines_and_keeps_results():
    loud = invoke(*BENCH)
    quiet = invoke("-q", *BENCH)
    assert loud.exit_code == 0 and quiet.exit_code == 0, (loud.output, quiet.output)
    assert "matmul peak" in loud.stderr and "torch-deploy" in loud.stderr  # progress: on stderr
    assert quiet.stderr == ""
    assert "### text encoder" in quiet.stdout  # the result table still goes to stdout


def test_no_arguments_still_shows_the_help():
    result = invoke()
    assert "Usage: vsrn-deploy" in result.output and "build-engine" in result.output


def test_verbose_and_quiet_together_exit_2():
    result = invoke("-v", "-q", "make-data", "--help")
    assert result.exit_code == 2 and "not both" in result.output


def test_logging_setup_keeps_one_handler_and_sets_the_level():
    logger = logging.getLogger("vsrn_deploy")
    before = list(logger.handlers), logger.level
    try:
        for level in (logging.DEBUG, logging.WARNING, logging.INFO):
            setup_logging(level)
            assert logger.level == level
        ours = [h for h in logger.handlers if h not in before[0]]
        assert len(ours) == 1
    finally:
        logger.handlers[:] = before[0]
        logger.setLevel(before[1])


def test_each_progress_line_is_printed_once_even_when_a_library_logs_through_the_root():
    """A library calling logging.info() directly runs basicConfig on the root logger when it has no
    handler; then every vsrn_deploy line was printed twice ("INFO:vsrn_deploy...:" after the plain one),
    as `vsrn-deploy demo` did from the export on."""
    import subprocess
    import sys

    code = ("import logging, sys\n"
            "from vsrn_deploy.cli.app import setup_logging\n"
            "setup_logging(logging.INFO)\n"
            "logging.info('a library line')\n"
            "logging.getLogger('vsrn_deploy.x').info('progress')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stderr.splitlines() == ["progress"], out.stderr


# --- numeric bounds: refused at the command line, before any work ------------------------------------

@pytest.mark.parametrize(("args", "flag", "value", "allowed"), [
    (["train", "--data", "nowhere"], "--lr", "nan", "(0, 10]"),
    (["train", "--data", "nowhere"], "--lr", "0", "(0, 10]"),
    (["train", "--data", "nowhere"], "--lr", "inf", "(0, 10]"),
    (["train", "--data", "nowhere"], "--embed-size", "65537", "[1, 65536]"),
    (["train", "--data", "nowhere"], "--word-dim", "0", "[1, 65536]"),
    (["train", "--data", "nowhere"], "--caption-hidden", "9223372036854775808", "[1, 65536]"),
    (["train", "--data", "nowhere"], "--gcn-layers", "65", "[0, 64]"),
    (["train", "--data", "nowhere"], "--margin", "-inf", "[0, 2]"),
    (["train", "--data", "nowhere"], "--grad-clip", "nan", "[0, 1000000]"),
    (["train", "--data", "nowhere"], "--epochs", "2147483648", "[1, 2147483647]"),
    (["train", "--data", "nowhere"], "--workers", "257", "[0, 256]"),
    (["train", "--data", "nowhere"], "--max-train-images", "0", "[1, 2147483647]"),
    (["bench", "--tiny"], "--seconds", "inf", "[0, 3600]"),
    (["bench", "--tiny"], "--seconds", "-0.5", "[0, 3600]"),
    (["bench", "--tiny"], "--iters", "0", "[1, 2147483647]"),
    (["evaluate", "nowhere.pt", "--data", "nowhere"], "--max-images", "-1", "[1, 2147483647]"),
    (["build-engine"], "--workspace", "1048577", "[1, 1048576]"),
    (["build-engine"], "--opt-level", "6", "[0, 5]"),
    (["build-engine"], "--min-tokens", "0", "[1, 2147483647]"),
    (["triton-repo"], "--model-version", "0", "[1, 9223372036854775807]"),
    (["triton-repo"], "--model-version", "9223372036854775808", "[1, 9223372036854775807]"),
])
def test_a_number_outside_its_range_is_one_line_naming_the_range(args, flag, value, allowed, tmp_path):
    result = invoke(*args, flag, value)
    assert result.exit_code == 2, result.output
    assert result.output.splitlines() == [result.output.strip()], result.output
    line = result.output.strip()
    assert line.startswith(f"error: Invalid value for '{flag}': must lie in {allowed}"), line
    assert "Traceback" not in result.output


def test_bounded_takes_its_edges_and_refuses_just_beyond():
    closed = options.bounded("h", 1, 8).callback
    assert [closed(v) for v in (1, 8, None)] == [1, 8, None]
    open_low = options.bounded("h", 0, 1.5, above=True).callback
    assert open_low(1.5) == 1.5 and open_low(5e-324) == 5e-324
    for check, value in ((closed, 0), (closed, 9), (open_low, 0.0), (open_low, float("nan")),
                         (open_low, float("inf")), (open_low, 1.5000001)):
        with pytest.raises(typer.BadParameter, match="must lie in"):
            check(value)
