"""Fixtures of the serving tests: one tiny FP32 export (with its test vectors), written once."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "export"))


# English words the docs (docs/serving.md's snippets) and these tests send, so that their captions
# have known words: the Triton tokenizer refuses a caption whose every word is unknown, as search does.
ENGLISH = ("a", "man", "riding", "horse", "two", "dogs", "play", "in", "the", "snow", "and", "cat", "dog",
           "one", "number", "he", "said", "hello", "twice", "it", "life", "separated", "words")


def write_serving_vocab(path: Path, size: int) -> Path:
    """A vocab.json of `size` words: the four special tokens, ENGLISH, then word0, word1, ..."""
    from vsrn_deploy.data.vocab import Vocabulary

    words = ["<pad>", "<start>", "<end>", "<unk>", *ENGLISH]
    words += [f"word{i}" for i in range(size - len(words))]
    assert len(words) == size, (len(words), size)
    Vocabulary.from_words(words).save_json(path)
    return path


def _export(root: Path, precision: str, seed: int) -> Path:
    from export_helpers import tiny_model

    from vsrn_deploy.data.vocab import load_vocab
    from vsrn_deploy.export import ExportConfig, export_loaded

    model = tiny_model(seed)
    vocab = load_vocab(write_serving_vocab(root / "vocab.json", model.config.vocab_size))
    out = root / "export"
    export_loaded(model, vocab, out, ExportConfig(precision=precision, max_batch=8))
    return out


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory) -> Path:
    """A tiny FP32 export (graphs, vocab.json with ENGLISH, test_vectors/, manifest.json), max batch 8."""
    return _export(tmp_path_factory.mktemp("serving"), "fp32", 0)


@pytest.fixture(scope="session")
def int8_export(tmp_path_factory) -> Path:
    """A tiny INT8 export (the FP32 and INT8 graphs, ...), max batch 8."""
    return _export(tmp_path_factory.mktemp("serving_int8"), "int8", 2)


@pytest.fixture(scope="session")
def all_export(tmp_path_factory) -> Path:
    """A tiny export with the FP32, FP16 and INT8 graphs (and test_vectors/), max batch 8."""
    return _export(tmp_path_factory.mktemp("serving_all"), "all", 0)


@pytest.fixture(scope="session")
def running_server():
    """`with running_server(repo) as srv:` tritonserver on `repo` (a load failure fails the test with the
    server's reason); at the end it must stop with status 0."""
    @contextlib.contextmanager
    def run(repo: Path):
        from vsrn_deploy.core.errors import VsrnError
        from vsrn_deploy.serving.triton_server import start_server

        try:
            srv = start_server(repo, timeout=120)
        except VsrnError as exc:  # set-up did not install the server, or it does not load the repository
            pytest.fail(str(exc))
        yield srv
        assert srv.stop() == 0, srv.log_tail()

    return run
