"""The version of vsrn-deploy: pyproject.toml is the one place it is written; an installed package
(editable included) reads it from its distribution's metadata."""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("vsrn-deploy")
except metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
