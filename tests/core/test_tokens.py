"""vsrn_deploy.core.tokens: the self-contained tokenisation the Triton tokenizer carries is the package's."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vsrn_deploy.core import tokens
from vsrn_deploy.data.vocab import Vocabulary


def test_encode_is_vocabulary_encode(tmp_path):
    vocab = Vocabulary(["<pad>", "<start>", "<end>", "<unk>", "a", "dog", ",", "runs", "."])
    vocab.save_json(tmp_path / "vocab.json")
    word2idx = tokens.read_word2idx(tmp_path / "vocab.json")
    for caption in ["A dog, runs.", "a DOG runs fast", "", "über dog!"]:
        assert tokens.encode(word2idx, caption) == vocab.encode(caption)
    assert tokens.encode(word2idx, "A dog, runs.") == [1, 4, 5, 6, 7, 8, 2]


def test_read_word2idx_checks_the_special_tokens(tmp_path):
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps({"words": ["<start>", "<pad>", "<end>", "<unk>"]}))
    with pytest.raises(ValueError, match="'<pad>' must have id 0"):
        tokens.read_word2idx(path)


def test_the_module_imports_nothing_of_the_package():
    """triton-repo copies tokens.py alone beside the tokenizer model: it must stand alone."""
    code = ("import sys, runpy; runpy.run_path(sys.argv[1]); "
            "print(sorted(m for m in sys.modules if m.startswith(('vsrn_deploy', 'torch'))))")
    out = subprocess.run([sys.executable, "-c", code, tokens.__file__], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_one_rule_for_unusable_queries():
    """Search and the Triton tokenizer refuse the same captions (the tokenizer embedded a caption of
    unknown words only, which search refused)."""
    from vsrn_deploy.core.tokens import encode, unusable_query

    word2idx = {"<pad>": 0, "<start>": 1, "<end>": 2, "<unk>": 3, "dog": 4}
    assert unusable_query(encode(word2idx, "a dog"), "a dog") is None
    assert "empty" in unusable_query(encode(word2idx, "  "), "  ")
    assert "no word of 'zzz qqq'" in unusable_query(encode(word2idx, "zzz qqq"), "zzz qqq")
    assert "no word" in unusable_query([1, 2], ".")
