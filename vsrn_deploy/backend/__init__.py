"""Runners: one protocol for every backend of the table in `vsrn_deploy.core.backends`.

This package's `__init__` imports nothing heavy; each backend module imports its runtime lazily.
`make_runner(backend, encoder, ...)` in `registry` is the entry point.
"""

from vsrn_deploy.backend.base import BACKENDS, ENCODERS, Runner
from vsrn_deploy.backend.registry import make_runner

__all__ = ["BACKENDS", "ENCODERS", "Runner", "make_runner"]
