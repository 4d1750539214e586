"""The benchmark: latency percentiles and throughput of each backend, encoder and batch size.

Every (encoder, backend) runner is activated once; then, batch size by batch size, each backend
is warmed up and timed on the SAME inputs, so ratios between backends are measured side by side
(on a shared or throttling machine, interleaving keeps slow phases from favouring one backend).
Each timed call is `runner.infer(feed)` followed by `runner.synchronize()`, timed with
`time.perf_counter` (or CUDA events around the call when the device is a GPU).

Throughput is `batch / p50 latency`, and the roofline columns use it too: on a shared machine the
median is the figure least moved by other work.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vsrn_deploy.backend.base import BACKENDS, ENCODERS, Runner
from vsrn_deploy.bench import flops as _flops
from vsrn_deploy.bench.machine import (
    load_average,
    machine_info,
    measure_int8_matmul_peak,
    measure_matmul_peak,
)
from vsrn_deploy.core import backends as _backends
from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.model.config import VSRNConfig

SCHEMA = "vsrn-deploy.bench/1"
#: The backends that run an export's graphs (the benchmark exports the model for them when needed).
ORT_BACKENDS = _backends.EXPORT_BACKENDS
_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1}  # int8: every weight matrix INT8

_log = logging.getLogger(__name__)  # progress lines; the command line shows them on stderr


# the longest time budget per backend and batch (an hour): longer measurements ask for --iters
MAX_SECONDS = 3600.0


@dataclass(frozen=True)
class BenchConfig:
    """What to benchmark and how.

    Attributes:
        encoders: "image" and/or "text".
        backends: backend names from `vsrn_deploy.backend.base.BACKENDS`.
        batches: batch sizes.
        warmup: untimed calls before timing each (backend, batch).
        iters: timed calls per (backend, batch); None: time for `seconds` instead.
        seconds: time budget per (backend, batch) when `iters` is None (at least `min_iters` calls).
        min_iters: the fewest timed calls under a time budget.
        threads: intra-op threads for torch and onnxruntime (None: their defaults).
        device: "cpu" or "cuda".
        dtype: compute precision of the backends that take one (the table's `takes_dtype`:
            torch-deploy, torch-compile): "fp32", "fp16", "bf16"; None: their precision on the device.
        checkpoint: a checkpoint to load; None: a randomly initialised model.
        onnx_dir: an export to run the ort backends on; a missing or empty folder: export the
            benchmarked model there first; None or another model's export: export to a temporary
            folder first.
        tiny: use `VSRNConfig.tiny()` sizes for the random model (tests and smoke runs).
        min_tokens, max_tokens: caption lengths (with <start> and <end>) are drawn uniformly from
            this range, mixed within each batch.
        seed: seed of the random model and inputs.
        peak_seconds: time budget of the matmul-peak measurement.
    """

    encoders: tuple[str, ...] = ENCODERS
    backends: tuple[str, ...] = _backends.defaults("bench")
    batches: tuple[int, ...] = (1, 8, 32, 128)
    warmup: int = 5
    iters: int | None = None
    seconds: float | None = 2.0
    min_iters: int = 5
    threads: int | None = None
    device: str = "cpu"
    dtype: str | None = None
    checkpoint: str | None = None
    onnx_dir: str | None = None
    tiny: bool = False
    min_tokens: int = 8
    max_tokens: int = 20
    seed: int = 0
    peak_seconds: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = []
        bad = [b for b in self.backends if b not in BACKENDS]
        if bad:
            problems.append(f"unknown backend(s) {bad}; choose from {list(BACKENDS)}")
        if not self.backends:
            problems.append("no backend given")
        bad = [e for e in self.encoders if e not in ENCODERS]
        if bad or not self.encoders:
            problems.append(f"encoders must be among {list(ENCODERS)}, got {list(self.encoders)}")
        if not self.batches or any(b < 1 for b in self.batches):
            problems.append(f"batch sizes must be >= 1, got {list(self.batches)}")
        if self.warmup < 0:
            problems.append(f"warmup must be >= 0, got {self.warmup}")
        if self.iters is not None and self.iters < 1:
            problems.append(f"iters must be >= 1, got {self.iters}")
        if self.iters is None and (self.seconds is None or not 0 <= self.seconds <= MAX_SECONDS):  # NaN too
            problems.append(f"give iters >= 1 or seconds in [0, {MAX_SECONDS:g}] (with min_iters calls at "
                            f"least), got seconds={self.seconds}")
        if self.min_iters < 1:
            problems.append(f"min_iters must be >= 1, got {self.min_iters}")
        if self.threads is not None and self.threads < 1:
            problems.append(f"threads must be >= 1, got {self.threads}")
        if self.device not in ("cpu", "cuda"):
            problems.append(f"device must be 'cpu' or 'cuda', got {self.device!r}")
        if not 2 <= self.min_tokens <= self.max_tokens:
            problems.append(f"need 2 <= min_tokens <= max_tokens, got {self.min_tokens}..{self.max_tokens}")
        if self.dtype not in (None, "fp32", "fp16", "bf16"):
            problems.append(f"dtype must be fp32, fp16 or bf16, got {self.dtype!r}")
        if self.tiny and self.checkpoint:
            problems.append("--tiny sizes a random model; it cannot be combined with --checkpoint")
        if problems:
            raise VsrnError("invalid benchmark settings: " + "; ".join(problems))


# --------------------------------------------------------------------------------------- statistics


def latency_stats(samples_ms: Sequence[float]) -> dict[str, float]:
    """Percentiles (linear interpolation, as numpy's default) and mean of latencies in ms.

    Args:
        samples_ms: one latency per timed call.

    Returns:
        {"p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "max_ms", "iters"}.
    """
    if len(samples_ms) == 0:
        raise ValueError("no latency samples")
    arr = np.asarray(samples_ms, dtype=np.float64)
    p50, p90, p99 = np.percentile(arr, [50, 90, 99])
    return {"p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99),
            "mean_ms": float(arr.mean()), "min_ms": float(arr.min()), "max_ms": float(arr.max()),
            "iters": int(arr.size)}


# ------------------------------------------------------------------------------------------ inputs


def image_feed(cfg: VSRNConfig, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """`batch` images of `synthetic_inputs` region features: {"region_features": (B, k, F)}."""
    from vsrn_deploy.data import synthetic_inputs

    return synthetic_inputs.image_feed(
        synthetic_inputs.region_features(batch, cfg.num_regions, cfg.img_dim, seed))


def text_feed(cfg: VSRNConfig, batch: int, seed: int = 0, min_tokens: int = 8,
              max_tokens: int = 20) -> dict[str, np.ndarray]:
    """`batch` captions of realistic, mixed lengths, padded to the longest, as a serving batcher would.

    COCO captions have 10-14 words on average; lengths (with `<start>` and `<end>`) are drawn
    uniformly from [min_tokens, max_tokens] (`vsrn_deploy.data.synthetic_inputs.captions`).

    Returns:
        {"token_ids": (batch, T) int64, "lengths": (batch,) int64}.
    """
    from vsrn_deploy.data import synthetic_inputs

    return synthetic_inputs.text_feed(synthetic_inputs.captions(
        batch, cfg.vocab_size, min_tokens=min_tokens, max_tokens=max_tokens, seed=seed + 1, extremes=False))


# ------------------------------------------------------------------------------------------- timing


def _sync_timer(runner: Runner, device: str) -> Callable[[Callable[[], Any]], float]:
    """A function that runs one call and returns its latency in ms, synchronised."""
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            def cuda_timed(call: Callable[[], Any]) -> float:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                call()
                runner.synchronize()
                end.record()
                end.synchronize()
                return float(start.elapsed_time(end))

            return cuda_timed

    def cpu_timed(call: Callable[[], Any]) -> float:
        t0 = time.perf_counter()
        call()
        runner.synchronize()
        return (time.perf_counter() - t0) * 1e3

    return cpu_timed


def time_runner(runner: Runner, feed: dict[str, np.ndarray], *, warmup: int = 5, iters: int | None = None,
                seconds: float | None = 2.0, min_iters: int = 5, max_iters: int = 100_000,
                device: str = "cpu") -> list[float]:
    """Warm up, then time `runner.infer(feed)` call by call.

    Args:
        runner: an active runner.
        feed: its inputs.
        warmup: untimed calls first.
        iters: exactly this many timed calls; None: call for `seconds` (at least `min_iters`).
        seconds: the time budget when `iters` is None.
        min_iters, max_iters: bounds on the number of timed calls under a time budget.
        device: "cuda" times with CUDA events, otherwise perf_counter.

    Returns:
        Latencies in ms, one per timed call.
    """
    timed = _sync_timer(runner, device)

    def call() -> Any:
        return runner.infer(feed)

    for _ in range(warmup):
        call()
    runner.synchronize()
    samples: list[float] = []
    if iters is not None:
        for _ in range(iters):
            samples.append(timed(call))
        return samples
    budget = float(seconds or 0.0)
    start = time.perf_counter()
    while len(samples) < min_iters or (time.perf_counter() - start < budget and len(samples) < max_iters):
        samples.append(timed(call))
    return samples


# ------------------------------------------------------------------------------------------- models


def random_model(cfg: VSRNConfig, seed: int = 0) -> Any:
    """A randomly initialised eval-mode VSRN (no caption generator) at `cfg`'s sizes.

    The residual BatchNorms start at zero in a fresh model (each GCN layer is the identity); they
    are given trained-looking values so every layer carries signal, as in a released model.
    """
    import torch

    from vsrn_deploy.model import VSRN

    torch.manual_seed(seed)
    model = VSRN(cfg, with_caption=False)
    with torch.no_grad():
        for layer in model.img_enc.gcn_layers:
            bn = layer.W[1]
            bn.weight.uniform_(0.05, 0.2)
            bn.bias.uniform_(-0.01, 0.01)
            bn.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _export_matches(onnx_dir: Path, cfg: VSRNConfig, source_sha: str | None,
                    precisions: set[str]) -> str | None:
    """None when `onnx_dir` holds an export usable here, else the reason it does not."""
    from vsrn_deploy.artifacts.export import usable_export

    manifest, reason = usable_export(onnx_dir)
    if manifest is None:
        return reason
    sizes = ("vocab_size", "img_dim", "embed_size", "word_dim", "num_regions", "gcn_layers",
             "text_layers", "img_pool", "fc_norm", "final_bn")
    theirs = manifest.get("config") or {}
    differ = [s for s in sizes if theirs.get(s) != getattr(cfg, s)]
    if differ:
        return f"the export in {onnx_dir} has other model sizes ({', '.join(differ)})"
    if source_sha is not None and (manifest.get("source") or {}).get("sha256") != source_sha:
        return f"the export in {onnx_dir} was made from another checkpoint"
    graphs = manifest.get("graphs") or {}
    for enc in ("image_encoder", "text_encoder"):
        for precision in precisions:
            name = (graphs.get(enc) or {}).get(precision)
            if not name or not (onnx_dir / name).is_file():
                return f"{onnx_dir} lacks the {precision} {enc} graph"
    return None


def _export_to(model: Any, source: dict[str, Any] | None, out_dir: Path, precisions: set[str]) -> None:
    """Export the in-memory `model` with the project's exporter (its checks included).

    No vocabulary is written: timing needs token ids only.
    """
    try:
        from vsrn_deploy.export import ExportConfig, export_loaded
    except ImportError as exc:
        raise VsrnError(f"the ort backends need the ONNX exporter, which failed to import ({exc}); "
                        "pass --onnx-dir with an export, or drop the ort backends") from None
    extra = sorted(precisions - {"fp32"})
    precision = extra[0] if len(extra) == 1 else ("all" if extra else "fp32")
    # The exporter's parity checks stay on, but on small sets: its FP16 retrieval and calibration
    # checks on hundreds of full-size images take many minutes on a CPU, and a benchmark needs graphs
    # that compute the right function, not a fresh accuracy study.
    light = {"max_batch": 4, "calibration_samples": 8, "retrieval_images": 20}
    known = {f.name for f in dataclasses.fields(ExportConfig)}
    options = {k: v for k, v in light.items() if k in known}
    t0 = time.perf_counter()
    export_loaded(model, None, out_dir, ExportConfig(precision=precision, **options), source=source)
    _log.info(f"exported ({precision}) in {time.perf_counter() - t0:.0f} s")


# ----------------------------------------------------------------------------------------- the run


def _torch_dtype_name(bench: BenchConfig, backend: str) -> str:
    return bench.dtype or _backends.get(backend).precision_on(bench.device)


def _precision_of(runner: Runner, backend: str, device: str) -> str:
    """The precision a runner computes in: its own `precision`, its torch `dtype`, or the table's."""
    value = getattr(runner, "precision", None)
    if isinstance(value, str) and value:
        return value
    dtype = str(getattr(runner, "dtype", "") or "")
    # bfloat16 before float16: "torch.bfloat16" ends with "float16" too
    for name, short in (("bfloat16", "bf16"), ("float16", "fp16"), ("float32", "fp32")):
        if dtype.endswith(name):
            return short
    return _backends.get(backend).precision_on(device)


def add_roofline(row: dict[str, Any], cfg: VSRNConfig, feed: dict[str, np.ndarray],
              peak: dict[str, Any]) -> None:
    """Add FLOPs, achieved GFLOP/s, share of the measured peak and (batch 1) weight bandwidth to `row`.

    Args:
        row: a result row with encoder, backend, batch, precision and p50_ms (updated in place).
            `flops_per_item` is what the backend executes (the deploy form does fewer matmuls
            than the authors' formulation); `model_flops_per_item` is the model's nominal count.
            A row may name its `form` ("authors" or "deploy"); by default its backend's (the table's
            `form`: only `torch` runs the authors' formulation).
        cfg: the model's sizes.
        feed: the inputs timed (text: the padded width and lengths set the FLOPs).
        peak: {"float32": {"gflops": ...}, optionally "float16": {...}} measured in the same run.
    """
    batch = row["batch"]
    seconds = row["p50_ms"] / 1e3
    # the reference torch model runs the authors' formulation; the others the deploy form
    form = row.setdefault("form", _backends.get(row["backend"]).form if row.get("backend") in BACKENDS
                          else "deploy")
    if row["encoder"] == "image":
        per_item = float(_flops.image_encoder_flops(cfg, form))
        row["model_flops_per_item"] = float(_flops.image_encoder_flops(cfg))
    else:
        width = int(feed["token_ids"].shape[1])
        per_item = _flops.text_encoder_flops(cfg, width)  # executed: the batch runs padded
        row["tokens"] = width
        row["mean_tokens"] = float(feed["lengths"].mean())
    row["flops_per_item"] = per_item
    row["gflops"] = per_item * batch / seconds / 1e9
    peak_key = "float16" if row["precision"] in ("fp16", "bf16") and "float16" in peak else "float32"
    if row["precision"] == "int8" and "int8" in peak:
        peak_key = "int8"
    row["pct_of_peak"] = 100.0 * row["gflops"] / peak[peak_key]["gflops"]
    if batch == 1:
        nbytes = _BYTES.get(row["precision"], 4)
        if row["encoder"] == "image":
            unique = _flops.image_encoder_weight_params(cfg, form) * nbytes
            streamed = _flops.image_encoder_streamed_weight_bytes(cfg, nbytes, form)
        else:
            width = int(feed["token_ids"].shape[1])
            unique = (3 * cfg.embed_size * (cfg.word_dim + cfg.embed_size)) * nbytes
            streamed = _flops.text_encoder_streamed_weight_bytes(cfg, width, nbytes)
        row["weight_bytes"] = unique
        row["weight_gbps"] = unique / seconds / 1e9
        row["streamed_weight_bytes"] = streamed
        row["streamed_weight_gbps"] = streamed / seconds / 1e9


def run_benchmark(bench: BenchConfig) -> dict[str, Any]:
    """Run the benchmark and return the report (see `SCHEMA`).

    Args:
        bench: the settings.

    Returns:
        {"schema", "created", "machine", "model", "settings", "results": [row, ...], "skipped":
        [...]}; a row has encoder, backend, precision, batch, p50_ms, p90_ms, p99_ms, mean_ms,
        min_ms, max_ms, iters, items_per_s, flops_per_item, gflops, pct_of_peak (and at batch 1
        weight_bytes, weight_gbps, streamed_weight_bytes, streamed_weight_gbps; text rows tokens and
        mean_tokens). A backend that cannot run here (torch-compile failing, TensorRT missing) is
        listed under "skipped" with the reason instead.
    """
    import torch

    from vsrn_deploy.backend.registry import make_runner

    if bench.device == "cuda" and not torch.cuda.is_available():
        raise VsrnError("--device cuda, but torch sees no CUDA GPU; run on a GPU machine or use --device cpu")
    if bench.onnx_dir and any(b in ORT_BACKENDS for b in bench.backends) \
            and (Path(bench.onnx_dir) / "manifest.json").is_file():
        from vsrn_deploy.artifacts.export import verify_export

        verify_export(bench.onnx_dir)  # a graph changed since export is refused, never timed
    previous_threads = torch.get_num_threads()
    # One thread count for everything timed: the peaks, torch and ONNX Runtime. Left to their own
    # defaults they differ (ONNX Runtime counts physical cores, torch logical ones), and a peak timed
    # with fewer threads than the run gave shares of "peak" above 100 %.
    bench = dataclasses.replace(bench, threads=bench.threads or previous_threads)
    torch.set_num_threads(bench.threads)

    model_info: dict[str, Any]
    if bench.checkpoint:
        from vsrn_deploy.model.checkpoint import load_checkpoint

        loaded = load_checkpoint(bench.checkpoint)
        model, cfg = loaded.model, loaded.config
        source_sha: str | None = loaded.sha256
        model_info = {"source": "checkpoint", "checkpoint": str(bench.checkpoint), "sha256": loaded.sha256,
                      "kind": loaded.kind}
    else:
        cfg = VSRNConfig.tiny() if bench.tiny else VSRNConfig()
        model = random_model(cfg, bench.seed)
        source_sha = None
        model_info = {"source": "random init", "sizes": "tiny" if bench.tiny else "paper (COCO)"}
    model_info["config"] = asdict(cfg)
    model = model.eval()
    if hasattr(model, "caption"):
        model.caption = None  # the generator is not benchmarked; free its memory

    peak = {"float32": measure_matmul_peak(bench.threads, seconds=bench.peak_seconds, device=bench.device)}
    if bench.device == "cuda":
        peak["float16"] = measure_matmul_peak(bench.threads, n=4096, seconds=bench.peak_seconds,
                                              device="cuda", dtype="float16")
    _log.info(f"matmul peak (fp32, n=2048, {bench.threads or torch.get_num_threads()} threads): "
        f"{peak['float32']['gflops']:.1f} GFLOP/s")
    if any(_backends.get(b).precision_on(bench.device) == "int8" for b in bench.backends) \
            and bench.device == "cpu":
        peak["int8"] = measure_int8_matmul_peak(bench.threads, seconds=bench.peak_seconds)
        peak["int8"]["gflops"] = peak["int8"]["gops"]  # the rows' rate column is ops per second
        _log.info(f"int8 GEMM peak (onnxruntime MatMulInteger, n=2048): {peak['int8']['gops']:.1f} GOP/s")
    machine = machine_info(bench.threads, bench.device)
    machine["matmul_peak"] = peak
    load_start = load_average()

    report: dict[str, Any] = {"schema": SCHEMA,
                              "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                              "machine": machine, "model": model_info,
                              "settings": {k: v for k, v in asdict(bench).items() if k != "extra"},
                              "results": [], "skipped": []}
    report["settings"].update(bench.extra)

    with contextlib.ExitStack() as stack:
        stack.callback(torch.set_num_threads, previous_threads)
        onnx_dir = _prepare_onnx(bench, model, cfg, source_sha, report, stack)
        for encoder in bench.encoders:
            _bench_encoder(encoder, bench, model, cfg, onnx_dir, peak, report, make_runner)
    if load_start is not None:
        # a busy machine slows every backend: the reader should know how busy it was
        machine["load_average"] = [load_start, load_average()]
    return report


def _prepare_onnx(bench: BenchConfig, model: Any, cfg: VSRNConfig, source_sha: str | None,
                  report: dict[str, Any], stack: contextlib.ExitStack) -> str | None:
    """The export folder the ort backends run on.

    --onnx-dir holding a matching export: used as is. --onnx-dir missing or empty: the benchmarked
    model is exported there (and kept, so the next run reuses it). Otherwise (no --onnx-dir, or one
    holding another model's export): exported to a temporary folder, removed after the run.
    """
    wanted = [b for b in bench.backends if b in ORT_BACKENDS]
    if not wanted:
        return None
    precisions = {_backends.get(b).precision for b in wanted}
    source = None
    if bench.checkpoint:
        source = {"path": str(bench.checkpoint), "sha256": source_sha, "kind": report["model"].get("kind")}
    reason = "no --onnx-dir given"
    if bench.onnx_dir:
        target = Path(bench.onnx_dir)
        if not target.exists() or (target.is_dir() and not any(target.iterdir())):
            _log.info(f"{target} holds no export: exporting the benchmarked model there "
                f"({', '.join(sorted(precisions))})")
            _export_to(model, source, target, precisions)
            report["model"]["onnx"] = {"dir": str(target), "exported_here": True,
                                       "reason": f"{target} held no export"}
            return str(target)
        reason = _export_matches(target, cfg, source_sha, precisions)
        if reason is None:
            report["model"]["onnx"] = {"dir": str(target), "exported_here": False}
            return str(target)
    tmp = Path(tempfile.mkdtemp(prefix="vsrn-bench-"))
    stack.callback(shutil.rmtree, tmp, ignore_errors=True)
    _log.info(f"{reason}: exporting the benchmarked model to a temporary folder "
              f"({', '.join(sorted(precisions))})")
    _export_to(model, source, tmp / "onnx", precisions)
    report["model"]["onnx"] = {"dir": None, "exported_here": True, "reason": reason}
    return str(tmp / "onnx")


def _bench_encoder(encoder: str, bench: BenchConfig, model: Any, cfg: VSRNConfig, onnx_dir: str | None,
                   peak: dict[str, Any], report: dict[str, Any], make_runner: Callable[..., Runner]) -> None:
    """Activate every backend's runner for `encoder`, then time them batch by batch."""
    runners: dict[str, Runner] = {}
    with contextlib.ExitStack() as stack:
        for backend in bench.backends:
            try:
                kwargs: dict[str, Any] = {}
                if _backends.get(backend).takes_dtype:
                    kwargs["dtype"] = _torch_dtype_name(bench, backend)
                runner = make_runner(backend, encoder, model=model, onnx_dir=onnx_dir or "export",
                                     device=bench.device, threads=bench.threads, **kwargs)
                runner.activate()
            except Exception as exc:  # noqa: BLE001 - a backend that cannot run here is reported, not fatal
                if not isinstance(exc, VsrnError) and not _backends.get(backend).best_effort:
                    raise
                _skip(report, encoder, backend, None, exc)
                continue
            stack.callback(runner.deactivate)
            runners[backend] = runner
        for batch in bench.batches:
            feed = (image_feed(cfg, batch, bench.seed) if encoder == "image" else
                    text_feed(cfg, batch, bench.seed, bench.min_tokens, bench.max_tokens))
            for backend, runner in runners.items():
                try:
                    samples = time_runner(runner, feed, warmup=bench.warmup, iters=bench.iters,
                                          seconds=bench.seconds, min_iters=bench.min_iters,
                                          device=bench.device)
                except Exception as exc:  # noqa: BLE001 - best-effort backends' failures are recorded
                    if not _backends.get(backend).best_effort:
                        raise
                    _skip(report, encoder, backend, batch, exc)
                    continue
                row: dict[str, Any] = {"encoder": encoder, "backend": backend,
                                       "precision": _precision_of(runner, backend, bench.device),
                                       "batch": batch, "device": bench.device}
                row.update(latency_stats(samples))
                row["items_per_s"] = batch / (row["p50_ms"] / 1e3)
                add_roofline(row, cfg, feed, peak)
                report["results"].append(row)
                _log.info(f"{encoder:5s} {backend:13s} batch {batch:4d}: p50 {row['p50_ms']:9.2f} ms  "
                    f"p99 {row['p99_ms']:9.2f} ms  {row['items_per_s']:9.1f} items/s  "
                    f"{row['gflops']:7.1f} GFLOP/s ({row['pct_of_peak']:.0f}% of peak)")


def _skip(report: dict[str, Any], encoder: str, backend: str, batch: int | None, exc: BaseException) -> None:
    reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
    report["skipped"].append({"encoder": encoder, "backend": backend, "batch": batch, "reason": reason})
    _log.warning(f"skipped {backend} ({encoder}{'' if batch is None else f', batch {batch}'}): {reason}")
