"""What a benchmark reads about the machine: per-process CPU seconds (Linux /proc)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from vsrn_deploy.bench.machine import process_cpu_seconds

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux /proc")


def test_process_cpu_seconds_counts_a_busy_child_and_not_an_idle_one():
    # one child spins for 0.6 s of CPU, the other sleeps: both are children of this process
    spin = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass\ntime.sleep(30)"
    busy = subprocess.Popen([sys.executable, "-c", spin])
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        deadline = time.monotonic() + 20
        while True:
            found = process_cpu_seconds(os.getpid())
            assert found is not None and os.getpid() in found
            if found.get(busy.pid, ([], 0.0))[1] >= 0.55 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        cmdline, busy_seconds = found[busy.pid]
        assert cmdline[0] == sys.executable and busy_seconds >= 0.55
        assert found[idle.pid][1] < busy_seconds  # the sleeper used only its start-up
    finally:
        busy.kill()
        idle.kill()
        busy.wait()
        idle.wait()


def test_process_cpu_seconds_of_a_gone_process_is_none():
    assert process_cpu_seconds(2**22 + 7) is None  # above the kernel's largest pid
