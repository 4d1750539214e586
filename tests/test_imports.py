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
