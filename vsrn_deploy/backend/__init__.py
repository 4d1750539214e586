"""Runners: one protocol for every backend (torch, torch-deploy, torch-compile, ort, ort-fp16, trt).

This package's `__init__` imports nothing heavy; each backend module imports its runtime lazily.
"""

from vsrn_deploy.backend.base import BACKENDS, ENCODERS, Runner

__all__ = ["BACKENDS", "ENCODERS", "Runner"]
