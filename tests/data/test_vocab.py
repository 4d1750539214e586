"""The vocabulary: the authors' pickles (read safely), vocab.json, tokenisation and encoding."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hostile_payloads import CreatesFile, RunsShell

from vsrn_deploy import load_vocab
from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.data.vocab import PAD, START, UNK, Vocabulary, build_vocab, save_authors_pickle

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("name", "size"), [("coco_precomp", 10006), ("f30k_precomp", 8481)])
def test_shared_authors_pickles_load_with_their_sizes(name, size, shared_vocab_dir):
    vocab = load_vocab(shared_vocab_dir / f"{name}_vocab.pkl")
    assert len(vocab) == size
    assert [vocab(w) for w in ("<pad>", "<start>", "<end>", "<unk>")] == [0, 1, 2, 3]
    assert all(isinstance(w, str) for w in vocab.word2idx)  # Python 2 byte strings decoded
    assert vocab.idx2word[vocab("man")] == "man" and vocab("man") > 3
    ids = vocab.encode("A man riding a horse")
    assert ids[0] == 1 and ids[-1] == 2 and 3 not in ids
    assert vocab.decode(ids) == "a man riding a horse"


def test_authors_tokenisation_and_unknown_words():
    vocab = Vocabulary([PAD, START, "<end>", UNK, "a", "dog", ",", "'s", "frisbee"])
    assert vocab.tokenize("A Dog's frisbee, zorblax.") == ["a", "dog", "'s", "frisbee", ",", "zorblax", "."]
    assert vocab.encode("A Dog's frisbee, zorblax.") == [1, 4, 5, 7, 8, 6, 3, 3, 2]
    assert vocab.decode([1, 4, 5, 2, 0, 0]) == "a dog"
    assert vocab.decode([1, 4, 5, 2], skip_special=False) == "<start> a dog <end>"


def test_encode_batch_pads_with_zero_and_counts_start_end():
    vocab = Vocabulary([PAD, START, "<end>", UNK, "a", "dog"])
    ids, lengths = vocab.encode_batch(["a dog", "dog", "a a a a dog"], max_tokens=5)
    assert ids.dtype == np.int64 and lengths.dtype == np.int64
    assert lengths.tolist() == [4, 3, 5]
    assert ids.tolist() == [[1, 4, 5, 2, 0], [1, 5, 2, 0, 0], [1, 4, 4, 4, 2]]


def test_build_vocab_threshold():
    captions = ["a dog runs", "A dog sits", "a cat", "a dog", "the dog"]
    vocab = build_vocab(captions, threshold=4)
    assert vocab.words == ["<pad>", "<start>", "<end>", "<unk>", "a", "dog"]
    assert len(build_vocab(captions, threshold=1)) == 4 + 6


def test_json_and_authors_pickle_round_trip(tmp_path):
    vocab = Vocabulary([PAD, START, "<end>", UNK, "café", "dog"])
    assert load_vocab(vocab.save_json(tmp_path / "vocab.json")) == vocab
    pkl = save_authors_pickle(vocab, tmp_path / "x_vocab.pkl")
    assert load_vocab(pkl) == vocab
    assert pickle.PROTO + b"\x02" + pickle.GLOBAL + b"__main__\nVocabulary\n" == pkl.read_bytes()[:23]


def test_authors_pickle_is_readable_by_the_authors_script(tmp_path):
    """Their script defines Vocabulary in __main__ and calls pickle.load: simulate that."""
    vocab = Vocabulary([PAD, START, "<end>", UNK, "dog"])
    pkl = save_authors_pickle(vocab, tmp_path / "v.pkl")
    script = (
        "import pickle, sys\n"
        "class Vocabulary(object):\n"
        "    def __call__(self, w): return self.word2idx.get(w, self.word2idx['<unk>'])\n"
        "v = pickle.load(open(sys.argv[1], 'rb'))\n"
        "print(v('dog'), v('cat'), v.idx, v.idx2word[4])\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(pkl)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["4", "3", "5", "dog"]


def test_vocab_never_imports_torch():
    code = ("import sys; from vsrn_deploy.data.vocab import load_vocab, Vocabulary; "
            "Vocabulary().encode('a dog'); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO)
    assert out.stdout.strip() == "False"




@pytest.mark.parametrize("payload", [CreatesFile, RunsShell])
@pytest.mark.parametrize("protocol", [0, 2])
def test_hostile_vocab_pickle_runs_nothing(tmp_path, payload, protocol):
    target = tmp_path / "pwned"
    path = tmp_path / "coco_precomp_vocab.pkl"
    path.write_bytes(pickle.dumps({"word2idx": payload(target)}, protocol=protocol))
    with pytest.raises(VsrnError, match="not allowed"):
        load_vocab(path)
    assert not target.exists()


def test_broken_vocab_files(tmp_path):
    good = save_authors_pickle(Vocabulary([PAD, START, "<end>", UNK, "dog"]), tmp_path / "good.pkl")
    cases = {
        "empty.pkl": (b"", "empty"),
        "truncated.pkl": (good.read_bytes()[:40], "truncated|cannot read"),
        "list.pkl": (pickle.dumps([1, 2, 3], protocol=2), "not a vocabulary"),
        "bad.json": (b"{not json", "not valid JSON"),
        "nospecial.json": (b'{"words": ["a", "b"]}', "'<pad>' must have id 0"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(VsrnError, match=message) as info:
            load_vocab(tmp_path / name)
        assert "\n" not in str(info.value)
    with pytest.raises(VsrnError, match="not found"):
        load_vocab(tmp_path / "missing.pkl")
