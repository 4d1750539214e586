"""The openvino backend's cases (`openvino_cases.py`), run in a process of their own.

OpenVINO's CPU runtime and the real TensorRT bindings over their stub libraries (tests/trt_api, the
trt runner tests) do not share one process safely: with both loaded, a later fork (a DataLoader
worker, a subprocess) crashed the test process with SIGSEGV in about half the runs. No user process
holds both (the stub libraries exist only in this test set-up), so the cases run apart, and this
test passes only when every one of them passes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("openvino", reason="no openvino here: pip install 'vsrn-deploy[openvino]'")

CASES = Path(__file__).with_name("openvino_cases.py")


def test_openvino_cases_in_their_own_process():
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(CASES)],
                         capture_output=True, text=True, timeout=900, cwd=CASES.parents[2])
    summary = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 11 and "skipped" not in summary, summary
