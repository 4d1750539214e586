"""The backend table: every row is well-formed and runnable, and nothing outside the table tests a
backend's name (the facts are read from the rows)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import tomllib

from vsrn_deploy.backend.base import Runner
from vsrn_deploy.core import backends, contract
from vsrn_deploy.core.backends import Needs

ROOT = Path(__file__).resolve().parents[2]


def test_names_enum_and_choices_come_from_the_rows():
    assert backends.NAMES == tuple(b.name for b in backends.rows())
    assert tuple(m.value for m in backends.BackendName) == backends.NAMES
    assert backends.REFERENCE in backends.NAMES and backends.get(backends.REFERENCE).needs is Needs.MODEL
    torch_free = {b.name for b in backends.rows() if b.needs is not Needs.MODEL}
    assert set(backends.choices("torch-free")) == torch_free
    assert set(backends.choices("export")) == {b.name for b in backends.rows() if b.needs is Needs.EXPORT}
    assert "openvino" in backends.choices("torch-free")
    with pytest.raises(ValueError, match="choose from"):
        backends.get("tvm")


@pytest.mark.parametrize("row", backends.rows(), ids=lambda b: b.name)
def test_every_row_is_runnable(row):
    assert row.precision in contract.PRECISIONS and row.devices
    assert row.precision_on("cpu") == row.precision
    assert row.device_for("cpu") in row.devices and row.device_for("cuda:1").split(":")[0] in row.devices
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert row.extra == "" or row.extra in extras, f"{row.name}: no [{row.extra}] extra in pyproject.toml"
    module = row.runner.partition(":")[0]
    assert (ROOT / (module.replace(".", "/") + ".py")).is_file()
    try:
        cls = row.runner_class()
    except ImportError as exc:  # its runtime is an optional extra this environment lacks
        pytest.skip(f"{row.name}: {exc}")
    assert issubclass(cls, Runner)


def test_defaults_are_known_and_validate_includes_the_reference():
    assert backends.REFERENCE in backends.defaults("validate")
    assert len(backends.defaults("index")) == 1
    assert backends.defaults("index")[0] in backends.choices("torch-free")
    for command in ("validate", "bench", "index", "demo-validate", "demo-bench"):
        assert set(backends.defaults(command)) <= set(backends.NAMES)
    with pytest.raises(ValueError):
        backends.defaults("tvm")


def test_parity_reads_the_contract_with_the_rows_own_fp32_bound():
    assert backends.get("ort").parity() == contract.PARITY["fp32"]
    assert backends.get("ort-fp16").parity() == contract.PARITY["fp16"]
    assert backends.get("trt").parity("fp32").max_abs == contract.TRT_FP32_MAX_ABS
    assert backends.get("trt").parity("fp16") == contract.PARITY["fp16"]  # FP16 bounds have no max_abs
    assert backends.get("torch-deploy").precision_on("cuda") == "fp16"


def test_a_bad_row_is_refused():
    with pytest.raises(ValueError, match="precision"):
        backends.Backend("x", backends.Family.TORCH, "fp8", Needs.MODEL, ("cpu",), "m:C", "", "")
    with pytest.raises(ValueError, match="module:Class"):
        backends.Backend("x", backends.Family.TORCH, "fp32", Needs.MODEL, ("cpu",), "m.C", "", "")


def _string_constants(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [c for e in node.elts for c in _string_constants(e)]
    return []


def test_no_code_outside_the_table_tests_a_backend_name():
    """`backend == "trt"`, `b in ("ort-fp16", "ort-int8")`, `b.startswith("ort")`: each is a fact
    that belongs in the table's rows. (`module == "torch"` on an import error names a package.)"""
    found = []
    for path in sorted((ROOT / "vsrn_deploy").rglob("*.py")):
        if path == ROOT / "vsrn_deploy/core/backends.py":
            continue
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            hits: list[str] = []
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                if any("split(" in (ast.get_source_segment(source, s) or "") for s in sides):
                    continue  # a module name (ImportError.name), not a backend
                hits = [c for s in sides for c in _string_constants(s) if c in backends.NAMES]
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr in ("startswith", "endswith"):
                hits = [c for a in node.args for c in _string_constants(a)
                        if len(c) >= 3 and any(n.startswith(c) for n in backends.NAMES)]
            if hits:
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                found.append(f"{where}: {ast.get_source_segment(source, node)}")
    assert not found, "backend names tested outside core/backends.py:\n" + "\n".join(found)
