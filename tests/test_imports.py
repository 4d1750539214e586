"""Every module of the package imports on a machine without the optional GPU packages."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

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


ROOT = Path(vsrn_deploy.__file__).parent
# The layers, bottom first (docs/architecture.md draws them): a folder imports only from layers below
# its own. client/ (for users' programs) and attention/ (a public alias of search.attention) stand aside.
LAYERS = [("core",), ("io",), ("artifacts", "evaluation"), ("data",), ("model",), ("backend",),
          ("export", "engine", "search", "serving"), ("bench", "distributed", "training"), ("jobs",),
          ("cli",)]
ASIDE = {"client": {"core"}, "attention": {"search"}}


def folder_imports() -> dict[str, set[str]]:
    """vsrn_deploy folder -> the other vsrn_deploy folders its modules import (any import, anywhere)."""
    found: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).parts
        if len(rel) == 1 or "triton_models" in rel:  # the root's entry points; Triton's model files
            continue
        for module in _imports(path):
            parts = module.split(".")
            if len(parts) > 1 and parts[1] != rel[0] and (ROOT / parts[1]).is_dir():
                found.setdefault(rel[0], set()).add(parts[1])
    return found


def test_every_folder_imports_only_from_layers_below_it():
    level = {name: n for n, layer in enumerate(LAYERS) for name in layer}
    folders = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(level) | set(ASIDE), "a new folder: give it a layer here and in the docs"
    for folder, imported in folder_imports().items():
        if folder in ASIDE:
            assert imported <= ASIDE[folder], (folder, imported)
            continue
        upward = sorted(f for f in imported if f in ASIDE or level[f] >= level[folder])
        assert not upward, f"{folder}/ imports {upward}, which are not below it"


def test_the_architecture_page_states_the_real_imports():
    """docs/architecture.md's table of who imports whom is the code's, folder by folder."""
    import re

    page = (ROOT.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    stated = {}
    for row in re.findall(r"^\| `(\w+)/` \| ([^|]*) \|", page, flags=re.M):
        stated[row[0]] = set(re.findall(r"`(\w+)`", row[1])) - {"nothing"}
    actual = folder_imports()
    assert stated == {f: actual.get(f, set()) for f in stated} and set(stated) >= set(actual), \
        (stated, actual)


def test_the_package_root_holds_only_its_entry_points():
    """Every module lives in the folder of its layer (docs/architecture.md draws them)."""
    from pathlib import Path

    root = Path(vsrn_deploy.__file__).parent
    assert sorted(p.name for p in root.glob("*.py")) == ["__init__.py", "__main__.py"]
