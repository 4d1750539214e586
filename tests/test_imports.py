"""Every module of the package imports on a machine without the optional GPU packages."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import vsrn_deploy

MODULES = sorted(m.name for m in pkgutil.walk_packages(vsrn_deploy.__path__, "vsrn_deploy."))


@pytest.mark.parametrize("name", MODULES)
def test_module_imports_without_optional_packages(name):
    importlib.import_module(name)


def test_top_level_api_is_lazy():
    import subprocess
    import sys

    code = "import sys, vsrn_deploy; print('torch' in sys.modules, callable(vsrn_deploy.load_model))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "True"], out.stderr


def _imports(path) -> set[str]:
    """vsrn_deploy modules a source file imports (module level or inside functions)."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vsrn_deploy"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("vsrn_deploy"))
    return found


@pytest.mark.parametrize(("lower", "upper"), [
    ("backend", "vsrn_deploy.engine"),  # engine/ builds plans with backend/'s pieces, never the reverse
    ("io", "vsrn_deploy.model.checkpoint"),  # io/ is the bottom layer checkpoint.py reads through
])
def test_dependencies_point_one_way(lower, upper):
    from pathlib import Path

    folder = Path(vsrn_deploy.__file__).parent / lower
    offenders = {p.name: sorted(i for i in _imports(p) if i.startswith(upper)) for p in folder.glob("*.py")}
    assert not {k: v for k, v in offenders.items() if v}


def test_the_bottom_layer_imports_nothing_above_it():
    from pathlib import Path

    root = Path(vsrn_deploy.__file__).parent
    allowed = ("vsrn_deploy.core", "vsrn_deploy.io", "vsrn_deploy.evaluation.recall",
               "vsrn_deploy.data.vocab")
    bottom = [*sorted((root / "core").glob("*.py")), *sorted((root / "io").glob("*.py")),
              root / "evaluation" / "compare.py", root / "data" / "synthetic_inputs.py"]
    for path in bottom:
        above = [i for i in _imports(path) if not i.startswith(allowed) and i != "vsrn_deploy"]
        assert not above, (path.name, above)


def test_the_package_root_holds_only_its_entry_points():
    """Every module lives in the folder of its layer (docs/architecture.md draws them)."""
    from pathlib import Path

    root = Path(vsrn_deploy.__file__).parent
    assert sorted(p.name for p in root.glob("*.py")) == ["__init__.py", "__main__.py"]
