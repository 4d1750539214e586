"""Fixtures of the serving tests: one tiny FP32 export (with its test vectors), written once."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "export"))


def _export(root: Path, precision: str, seed: int) -> Path:
    from export_helpers import tiny_model, write_vocab

    from vsrn_deploy.data.vocab import load_vocab
    from vsrn_deploy.export import ExportConfig, export_loaded

    model = tiny_model(seed)
    vocab = load_vocab(write_vocab(root / "vocab.json", model.config.vocab_size))
    out = root / "export"
    export_loaded(model, vocab, out, ExportConfig(precision=precision, max_batch=8))
    return out


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory) -> Path:
    """A tiny FP32 export (graphs, vocab.json, test_vectors/, manifest.json), max batch 8."""
    return _export(tmp_path_factory.mktemp("serving"), "fp32", 0)


@pytest.fixture(scope="session")
def int8_export(tmp_path_factory) -> Path:
    """A tiny INT8 export (the FP32 and INT8 graphs, ...), max batch 8."""
    return _export(tmp_path_factory.mktemp("serving_int8"), "int8", 2)
