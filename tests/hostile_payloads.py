"""Pickle payloads that would leave a file behind if a loader ever executed them."""

from __future__ import annotations

import os
from pathlib import Path


class CreatesFile:
    """Unpickling calls open(target, "w")."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


class RunsShell:
    """Unpickling runs a shell command that touches target."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))
