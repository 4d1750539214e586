"""What a benchmark ran on: CPU/GPU model, core and thread counts, package versions, matmul peak.

Nothing here records the host name or user: results files are committed and shared.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import time
from collections.abc import Callable, Iterator
from typing import Any

from vsrn_deploy.core.backends import Family

# the backends' runtimes (the table's families name their packages) and what else the timings depend on
_PACKAGES = ("numpy", "onnx", *(f.value for f in Family), "onnxruntime-gpu", "vsrn-deploy")


def cpu_model() -> str:
    """The CPU model name (from /proc/cpuinfo on Linux, else `platform.processor()`)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


_SIMD_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni",
               "avx_vnni", "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve")


def cpu_flags() -> list[str]:
    """The SIMD features of the CPU that decide the matmul kernels (Linux; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith(("flags", "features")):
                    have = set(line.split(":", 1)[1].split())
                    return [f for f in _SIMD_FLAGS if f in have]
    except OSError:
        pass
    return []


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none): other work competing for the CPU."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def process_cpu_seconds(pid: int) -> dict[int, tuple[list[str], float]] | None:
    """CPU seconds (user + system) used so far by process `pid` and by each of its children, by pid,
    with the command line: where a server's time goes (its own threads, the worker processes it
    started). Linux /proc only: None elsewhere, or when `pid` is gone. A child that exits between
    two readings drops out of the later one.
    """
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    found: dict[int, tuple[list[str], float]] = {}
    try:
        entries = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return None
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()  # the name in (...) may hold spaces
            # after the name: state, ppid, ..., utime and stime are fields 14 and 15 of proc(5)
            if entry != pid and int(fields[1]) != pid:
                continue  # the command line is read for the process and its children only
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except (OSError, IndexError):
            continue  # exited meanwhile, or not ours to read
        found[entry] = (cmdline, (int(fields[11]) + int(fields[12])) / tick)
    return found if pid in found else None


def physical_cores() -> int | None:
    """Physical cores visible to this process (Linux: distinct (package, core) pairs), else None."""
    try:
        cores = set()
        package = core = None
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key == "physical id":
                    package = value.strip()
                elif key == "core id":
                    core = value.strip()
                elif not line.strip() and core is not None:
                    cores.add((package, core))
                    package = core = None
        if core is not None:
            cores.add((package, core))
        return len(cores) or None
    except OSError:
        return None


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that set the speed (only those installed)."""
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def gpu_info() -> dict[str, Any] | None:
    """Name, memory and CUDA version of GPU 0 when torch sees one; None otherwise."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return {"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
            "capability": f"{props.major}.{props.minor}", "cuda": torch.version.cuda,
            "count": torch.cuda.device_count()}


def machine_info(threads: int | None = None, device: str = "cpu") -> dict[str, Any]:
    """A host-name-free description of the machine a benchmark ran on.

    Args:
        threads: the intra-op thread count the benchmark used (None: the library default).
        device: "cpu" or "cuda".

    Returns:
        {"cpu", "cpu_flags", "physical_cores", "logical_cpus", "threads", "os", "arch", "device",
        "gpu", "versions"}.
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "physical_cores": physical_cores(),
        "logical_cpus": usable,
        "threads": threads,
        "os": f"{platform.system()} {platform.release()}",
        "arch": platform.machine(),
        "device": device,
        "gpu": gpu_info() if device.startswith("cuda") else None,
        "versions": package_versions(),
    }


def _timed_calls(call: Callable[[], Any], seconds: float, *, warmup: int, min_calls: int,
                 max_calls: int) -> list[float]:
    """Seconds of consecutive calls of `call` after `warmup` untimed ones: at least `min_calls`, then
    more while the time budget `seconds` lasts (at most `max_calls`); sorted, fastest first."""
    for _ in range(warmup):
        call()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_calls or (time.perf_counter() - start < seconds and len(times) < max_calls):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return sorted(times)


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op threads set to `threads` (None: left as they are) for the block."""
    import torch

    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def measure_matmul_peak(threads: int | None = None, n: int = 2048, seconds: float = 1.0,
                        device: str = "cpu", dtype: str = "float32") -> dict[str, Any]:
    """Measure a square matmul's FLOP rate on this machine: the 'peak' of the roofline columns.

    An n x n x n GEMM through torch's BLAS (the same library the torch backends use) at the given
    thread count, warmed up, timed with perf_counter over about `seconds`; the best of the timed
    repetitions is the peak (the least disturbed by other work on a shared machine).

    Args:
        threads: intra-op threads (None: leave torch's setting).
        n: matrix size.
        seconds: time budget of the timed part.
        device: "cpu" or "cuda".
        dtype: "float32", "float16" or "bfloat16".

    Returns:
        {"gflops": best GFLOP/s, "median_gflops", "n", "dtype", "threads", "device"}.
    """
    import torch

    with _torch_threads(threads):
        gen = torch.Generator().manual_seed(0)
        a = torch.randn(n, n, generator=gen).to(device=device, dtype=getattr(torch, dtype))
        b = torch.randn(n, n, generator=gen).to(device=device, dtype=getattr(torch, dtype))
        sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

        def call() -> None:
            torch.mm(a, b)
            sync()

        times = _timed_calls(call, seconds, warmup=2, min_calls=3, max_calls=200)
    flops = 2.0 * n**3
    return {"gflops": flops / times[0] / 1e9, "median_gflops": flops / times[len(times) // 2] / 1e9,
            "n": n, "dtype": dtype, "threads": threads, "device": device}


def measure_int8_matmul_peak(
    threads: int | None = None, n: int = 2048, seconds: float = 1.0
) -> dict[str, Any]:
    """Measure ONNX Runtime's INT8 GEMM rate on this CPU: the peak of the INT8 rows' roofline.

    One uint8 x int8 -> int32 `MatMulInteger` of n x n x n, the kernel family the INT8 graphs run
    (ONNX Runtime picks AVX2, AVX-VNNI, AVX512-VNNI or AMX code by the CPU's features), timed like
    `measure_matmul_peak`: best of the repetitions, 2 n^3 operations each.

    Returns:
        {"gops": best GOP/s, "median_gops", "n", "dtype": "int8", "threads", "device": "cpu"}.
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.integers(-127, 128, (n, n), dtype=np.int8), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "int8_gemm",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [n, n])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [n, n])], initializer=[weight])
    from vsrn_deploy.backend.onnxrt import cpu_session

    sess = cpu_session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), threads)
    feed = {"a": rng.integers(0, 256, (n, n), dtype=np.uint8)}
    times = _timed_calls(lambda: sess.run(None, feed), seconds, warmup=2, min_calls=3, max_calls=200)
    ops = 2.0 * n**3
    return {"gops": ops / times[0] / 1e9, "median_gops": ops / times[len(times) // 2] / 1e9, "n": n,
            "dtype": "int8", "threads": threads, "device": "cpu"}


def measure_read_bandwidth(nbytes: int, threads: int | None = None, seconds: float = 1.0) -> dict[str, Any]:
    """GB/s at which this CPU reads a buffer of `nbytes` again and again (torch's sum, `threads`).

    A buffer the size of a weight matrix that is re-read at every step (the INT8 recurrent matrix)
    sits in whatever cache level holds it: this is about the rate a recurrence can stream it at.
    """
    import torch

    with _torch_threads(threads):
        x = torch.ones(max(1, nbytes // 4), dtype=torch.float32)
        times = _timed_calls(x.sum, seconds, warmup=3, min_calls=5, max_calls=2000)
    return {"bytes": 4 * x.numel(), "gb_per_s": 4 * x.numel() / times[len(times) // 2] / 1e9,
            "threads": threads, "device": "cpu"}


def measure_int8_gemv(k: int, n: int, threads: int | None = None, seconds: float = 1.0,
                      m: int = 1) -> dict[str, Any]:
    """An INT8 MatMul as the INT8 graphs run it: float (m, k) x int8 (k, n), weights warm.

    The pattern quantize_dynamic writes (DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul, fused
    by ONNX Runtime into one DynamicQuantizeMatMul); m = 1 is one batch-1 step of an INT8 recurrence.
    Median of consecutive calls.

    Returns:
        {"ms": median ms per call, "gb_per_s": int8 weight bytes / time, "m", "k", "n", "threads"}.
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.integers(-127, 128, (k, n), dtype=np.int8), "w"),
             numpy_helper.from_array(np.zeros(n, dtype=np.int8), "w_zero"),
             numpy_helper.from_array(np.full(n, 1e-3, dtype=np.float32), "w_scale")]
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
             helper.make_node("MatMulInteger", ["xq", "w", "xz", "w_zero"], ["acc"]),
             helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["xs", "w_scale"], ["s"]),
             helper.make_node("Mul", ["accf", "s"], ["y"])]
    graph = helper.make_graph(nodes, "int8_matmul",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    from vsrn_deploy.backend.onnxrt import cpu_session

    sess = cpu_session(model, threads)
    feed = {"x": rng.standard_normal((m, k)).astype(np.float32)}
    times = _timed_calls(lambda: sess.run(None, feed), seconds, warmup=3, min_calls=5, max_calls=2000)
    sec = times[len(times) // 2]
    return {"ms": sec * 1e3, "gb_per_s": k * n / sec / 1e9, "m": m, "k": k, "n": n, "threads": threads,
            "device": "cpu"}
