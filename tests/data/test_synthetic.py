"""The synthetic precomp generator: layout, determinism, feature statistics, relational captions."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.data import synthetic
from vsrn_deploy.data.precomp import PrecompSplit
from vsrn_deploy.data.vocab import load_vocab


def _make(out: Path, seed: int = 0, **kw) -> Path:
    args = {"n_train": 8, "n_dev": 4, "n_test": 4, "num_regions": 12, "feature_dim": 64, "seed": seed}
    args.update(kw)
    return synthetic.generate_dataset(out, **args)


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


def test_layout_and_reader(tmp_path: Path) -> None:
    folder = _make(tmp_path)
    assert folder == tmp_path / "synth_precomp"
    for split, n in (("train", 8), ("dev", 4), ("test", 4)):
        s = PrecompSplit(folder, split)
        assert (s.n_images, len(s), s.captions_per_image) == (n, 5 * n, 5)
        assert s.features.shape == (n, 12, 64) and s.features.dtype == np.float32
        assert s.boxes is not None and s.boxes.shape == (n, 12, 4)
    vocab = load_vocab(synthetic.default_vocab_path(folder))
    train = PrecompSplit(folder, "train")
    unk = vocab("<unk>")
    assert all(unk not in vocab.encode(c) for c in train.captions)  # the vocab covers every word


def test_deterministic_by_seed(tmp_path: Path) -> None:
    a = _digest(_make(tmp_path / "a", seed=5))
    b = _digest(_make(tmp_path / "b", seed=5))
    c = _digest(_make(tmp_path / "c", seed=6))
    assert a == b and a != c


def test_features_look_like_bottom_up_features(tmp_path: Path) -> None:
    feats = np.asarray(PrecompSplit(_make(tmp_path, n_train=16, feature_dim=512), "train").features)
    assert feats.min() >= 0  # ReLU features
    zero = (feats == 0).mean()
    assert 0.5 < zero < 0.95  # sparse: most entries are zero
    assert 0.1 < feats.mean() < 1.0 and feats.max() > 5  # real-looking magnitudes


def test_captions_use_real_words_and_describe_the_groups(tmp_path: Path) -> None:
    assert synthetic.check_words_in_authors_vocab() == []  # every word is in the authors' vocab
    split = PrecompSplit(_make(tmp_path, n_train=4, n_dev=1, n_test=1), "train")
    # one group of 4: same two nouns and colours, different binding / sides
    words = [set(split.captions[5 * i].split()) for i in range(4)]
    assert len({frozenset(w & set(synthetic.NOUNS)) for w in words}) == 1
    assert len({frozenset(w & set(synthetic.COLOURS)) for w in words}) == 1
    assert len(set(split.captions[0::5]) | set(split.captions[1::5])) > 4
    firsts = {split.captions[5 * i] for i in range(4)}
    assert len(firsts) == 4


def test_bad_arguments_and_rerun(tmp_path: Path) -> None:
    with pytest.raises(VsrnError, match="num_regions"):
        synthetic.generate_dataset(tmp_path, n_train=2, num_regions=2)
    first = _digest(_make(tmp_path))
    (tmp_path / "synth_precomp" / "mine.txt").write_text("a user's note")
    (tmp_path / "vocab" / "mine.json").write_text("a user's vocabulary")
    again = _make(tmp_path, seed=1)  # its own earlier dataset: rewritten without overwrite
    assert _digest(again) != first and PrecompSplit(again, "train").n_images == 8
    assert (again / "mine.txt").read_text() == "a user's note"  # a file it did not list stays
    assert (tmp_path / "vocab" / "mine.json").read_text() == "a user's vocabulary"
    _make(tmp_path, overwrite=True, seed=2)
    assert not list(tmp_path.rglob(".*"))  # no temp folders or files left
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("not make-data's")
    with pytest.raises(VsrnError, match="not written by vsrn-deploy make-data"):
        _make(tmp_path, data_name="other", overwrite=True)


def test_a_users_vocabulary_file_is_not_replaced_without_overwrite(tmp_path: Path) -> None:
    """make-data wrote vocab/<name>_vocab.json over whatever was there (a user's own vocabulary)."""
    vocab = tmp_path / "vocab" / "synth_precomp_vocab.json"
    vocab.parent.mkdir()
    vocab.write_text('{"words": ["mine"]}')
    with pytest.raises(VsrnError, match="vocab.json exists"):
        _make(tmp_path)
    assert vocab.read_text() == '{"words": ["mine"]}' and not (tmp_path / "synth_precomp").exists()
    _make(tmp_path, overwrite=True)  # asked for: replaced
    assert "mine" not in vocab.read_text()
    _make(tmp_path, seed=1)  # its own (synthetic.json records its sha256): replaced on a rerun
    vocab.write_text(vocab.read_text() + " ")  # changed since: the user's now
    with pytest.raises(VsrnError, match="changed since"):
        _make(tmp_path, seed=2)
    assert vocab.read_text().endswith(" ")


@pytest.mark.parametrize("sizes, needle", [
    ({"num_regions": 2**31 - 1}, "over its limit of 1.0 TiB"),
    ({"n_train": 10**7, "num_regions": 10**4}, "over its limit of 1.0 TiB"),
    ({"feature_dim": 2**31 - 1, "n_train": 10**6}, "over its limit of 1.0 TiB"),
])
def test_a_size_too_large_to_write_is_one_line_before_writing(tmp_path: Path, sizes, needle) -> None:
    with pytest.raises(VsrnError, match=needle) as info:
        _make(tmp_path / "d", **sizes)
    assert "\n" not in str(info.value) and "pass smaller sizes" in str(info.value)
    assert not (tmp_path / "d").exists()


def test_a_size_over_the_free_space_is_refused(tmp_path: Path, monkeypatch) -> None:
    need = synthetic.dataset_bytes(8, 4, 4, 12, 64)
    monkeypatch.setattr(synthetic.shutil, "disk_usage", lambda p: type("U", (), {"free": need - 1})())
    with pytest.raises(VsrnError, match="too large for the disk of"):
        _make(tmp_path / "d")
    monkeypatch.setattr(synthetic.shutil, "disk_usage", lambda p: type("U", (), {"free": need})())
    _make(tmp_path / "d")
