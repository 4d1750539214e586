"""Benchmarks of the VSRN encoders across backends: latency percentiles, throughput, roofline.

`run_benchmark(BenchConfig(...))` returns a report dict (the JSON of `vsrn-deploy bench --out`);
`write_json`, `write_markdown` and `plot_report` turn it into files. Importing this package does not
import torch; `run_benchmark` does, when called.
"""

from __future__ import annotations

from vsrn_deploy.bench.core import BenchConfig, latency_stats, run_benchmark
from vsrn_deploy.bench.flops import image_encoder_flops, text_encoder_flops
from vsrn_deploy.bench.plot import plot_report
from vsrn_deploy.bench.report import to_markdown, write_json, write_markdown

__all__ = ["BenchConfig", "run_benchmark", "latency_stats", "image_encoder_flops", "text_encoder_flops",
           "plot_report", "to_markdown", "write_json", "write_markdown"]
