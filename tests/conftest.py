"""Fixtures shared across the test folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_vocab_dir() -> Path:
    """The authors' vocabulary pickles: shared/vocab inside the checkout or beside it.

    CI always lays shared/ beside the clone (<clone>/../shared), so there a missing folder is a
    failure; a checkout elsewhere skips these tests with the reason.
    """
    for candidate in (REPO / "shared" / "vocab", REPO.parent / "shared" / "vocab"):
        if candidate.is_dir():
            return candidate
    message = f"shared/vocab (the authors' vocabulary pickles) not found in {REPO} or beside it"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message + "; CI provides it")
