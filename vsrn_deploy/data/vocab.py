"""The word vocabulary: the authors' tokenisation, their pickles (read safely) and vocab.json.

This module never imports torch: the serving runtime tokenises captions with it.

The authors' vocabularies (`<data_name>_vocab.pkl`) are pickles of a `Vocabulary` object written by
a Python 2 script, so the class is recorded as `__main__.Vocabulary` and words are byte strings.
`load_vocab` reads them with a restricted unpickler that can build that one class and nothing else.
vsrn-deploy's own format is `vocab.json`: ``{"format": "vsrn-deploy-vocab", "version": 1,
"words": [...]}`` with a word's id equal to its position.
"""

from __future__ import annotations

import json
import os
import pickle
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.core.tokens import END, PAD, SPECIAL_TOKENS, START, UNK, pad_ids, tokenize  # noqa: F401
from vsrn_deploy.core.tokens import encode as _encode
from vsrn_deploy.io.files import atomic_write_bytes, atomic_write_text
from vsrn_deploy.io.safe_pickle import decode_py2_str, restricted_loads

__all__ = ["PAD", "START", "END", "UNK", "SPECIAL_TOKENS", "Vocabulary", "load_vocab", "build_vocab",
           "save_authors_pickle", "tokenize", "VOCAB_JSON_FORMAT"]

VOCAB_JSON_FORMAT = "vsrn-deploy-vocab"


class Vocabulary:
    """Word <-> id mapping with the authors' special tokens at ids 0..3.

    Attributes:
        word2idx: word -> id.
        idx2word: id -> word.
    """

    def __init__(self, words: Iterable[str] | None = None) -> None:
        self.word2idx: dict[str, int] = {}
        self.idx2word: dict[int, str] = {}
        for word in SPECIAL_TOKENS if words is None else words:
            self.add_word(word)

    # --- the authors' interface -------------------------------------------------------------
    def add_word(self, word: str) -> int:
        """Add `word` if new; return its id."""
        if word not in self.word2idx:
            idx = len(self.word2idx)
            self.word2idx[word] = idx
            self.idx2word[idx] = word
        return self.word2idx[word]

    @property
    def idx(self) -> int:
        """The next free id (the authors' attribute name)."""
        return len(self.word2idx)

    def __call__(self, word: str) -> int:
        """Id of `word`, or the `<unk>` id."""
        return self.word2idx.get(word, self.word2idx[UNK])

    def __len__(self) -> int:
        return len(self.word2idx)

    def __contains__(self, word: object) -> bool:
        return word in self.word2idx

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.word2idx == other.word2idx

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} words)"

    @property
    def words(self) -> list[str]:
        """All words in id order."""
        return [self.idx2word[i] for i in range(len(self))]

    # --- captions ---------------------------------------------------------------------------
    def tokenize(self, caption: str) -> list[str]:
        """Lower-case + nltk word tokenizer, like the authors."""
        return tokenize(caption)

    def encode(self, caption: str) -> list[int]:
        """Caption -> ids: ``<start>`` + token ids (unknown -> ``<unk>``) + ``<end>``."""
        return _encode(self.word2idx, caption)

    def encode_batch(self, captions: Sequence[str],
                     max_tokens: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Captions -> padded ids and lengths, the text encoder's inputs.

        Args:
            captions: the captions.
            max_tokens: cut captions longer than this (keeping ``<end>`` last); None keeps all.
        Returns:
            (token_ids int64 [B, T] padded with 0, lengths int64 [B] counting <start> and <end>).
        """
        encoded = [self.encode(c) for c in captions]
        if max_tokens is not None:
            if max_tokens < 2:
                raise VsrnError(f"max_tokens must be >= 2 (got {max_tokens})")
            encoded = [ids if len(ids) <= max_tokens else ids[: max_tokens - 1] + [ids[-1]]
                       for ids in encoded]
        return pad_ids(encoded)

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        """Ids -> text. With `skip_special`, drops <start>/<pad> and stops at <end>."""
        words = []
        for i in ids:
            word = self.idx2word.get(int(i), UNK)
            if skip_special:
                if word == END:
                    break
                if word in (START, PAD):
                    continue
            words.append(word)
        return " ".join(words)

    # --- files ------------------------------------------------------------------------------
    def to_json_dict(self) -> dict[str, Any]:
        return {"format": VOCAB_JSON_FORMAT, "version": 1, "words": self.words}

    def save_json(self, path: str | os.PathLike[str]) -> Path:
        """Write vsrn-deploy's `vocab.json` atomically; returns the path."""
        path = Path(path)
        text = json.dumps(self.to_json_dict(), ensure_ascii=False, indent=0)
        atomic_write_text(path, text)
        return path

    @classmethod
    def from_words(cls, words: Sequence[str]) -> Vocabulary:
        """Build from a word list in id order, checking the special tokens and duplicates."""
        vocab = cls(words)
        if len(vocab) != len(words):
            raise VsrnError("vocabulary has duplicate words")
        _check_specials(vocab, "vocabulary")
        return vocab


def _check_specials(vocab: Vocabulary, source: str) -> None:
    for expected_id, token in enumerate(SPECIAL_TOKENS):
        if vocab.word2idx.get(token) != expected_id:
            raise VsrnError(f"{source}: '{token}' must have id {expected_id} "
                            f"(found {vocab.word2idx.get(token)})")


def build_vocab(captions: Iterable[str], threshold: int = 4) -> Vocabulary:
    """The authors' vocabulary construction: words seen at least `threshold` times.

    Args:
        captions: training captions.
        threshold: minimum count (the authors use 4).
    Returns:
        A Vocabulary: the four special tokens, then words by decreasing count (ties
        alphabetical, so the result is reproducible; the authors' order was dict order).
    """
    counter: Counter[str] = Counter()
    for caption in captions:
        counter.update(tokenize(caption))
    kept = sorted((w for w, n in counter.items() if n >= threshold and w not in SPECIAL_TOKENS),
                  key=lambda w: (-counter[w], w))
    return Vocabulary([*SPECIAL_TOKENS, *kept])


# --- the authors' pickles -------------------------------------------------------------------
class _PickledVocabulary:
    """Stands in for the authors' `__main__.Vocabulary` while unpickling: it only stores state."""

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _reconstructor(cls: Any, base: Any, state: Any) -> _PickledVocabulary:
    # protocol 0/1 pickles of new-style classes go through copy_reg._reconstructor
    if cls is not _PickledVocabulary or base is not object or state is not None:
        raise pickle.UnpicklingError("unexpected copy_reg._reconstructor call in vocabulary pickle")
    return _PickledVocabulary()


_VOCAB_PICKLE_GLOBALS = {
    ("__main__", "Vocabulary"): _PickledVocabulary,
    ("vocab", "Vocabulary"): _PickledVocabulary,  # if pickled from an importable module
    ("copy_reg", "_reconstructor"): _reconstructor,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("__builtin__", "object"): object,
    ("builtins", "object"): object,
}


def _vocab_from_pickle(data: bytes, source: str) -> Vocabulary:
    obj = restricted_loads(data, _VOCAB_PICKLE_GLOBALS, what="vocabulary pickle", source=source,
                           encoding="bytes")
    if isinstance(obj, _PickledVocabulary):
        state = getattr(obj, "state", None)
    else:
        state = obj  # a bare {'word2idx':..., 'idx2word':...} dict is accepted too
    if not isinstance(state, dict):
        raise VsrnError(f"{source} is a pickle but not a vocabulary (found {type(state).__name__})")
    state = {decode_py2_str(k): v for k, v in state.items() if isinstance(k, str | bytes)}
    word2idx = state.get("word2idx")
    if not isinstance(word2idx, dict):
        raise VsrnError(f"{source}: vocabulary pickle has no word2idx dict")
    pairs = []
    for word, idx in word2idx.items():
        if not isinstance(word, str | bytes) or not isinstance(idx, int):
            raise VsrnError(f"{source}: word2idx must map words to ints (found {word!r}: {idx!r})")
        pairs.append((idx, decode_py2_str(word)))
    pairs.sort()
    if [i for i, _ in pairs] != list(range(len(pairs))):
        raise VsrnError(f"{source}: word ids are not 0..{len(pairs) - 1}")
    vocab = Vocabulary.from_words([w for _, w in pairs])
    idx2word = state.get("idx2word")
    if isinstance(idx2word, dict) and {k: decode_py2_str(v) for k, v in idx2word.items()} != vocab.idx2word:
        raise VsrnError(f"{source}: idx2word and word2idx disagree")
    return vocab


def load_vocab(path: str | os.PathLike[str]) -> Vocabulary:
    """Read the authors' vocabulary pickle (safely) or vsrn-deploy's `vocab.json`.

    Args:
        path: a `.pkl` written by the authors' scripts, or a `vocab.json`.
    Returns:
        The Vocabulary.
    Raises:
        VsrnError: missing, empty, truncated, hostile or malformed file.
    """
    from vsrn_deploy.io.inputs import require_file

    path = require_file(path, "vocabulary file")
    data = path.read_bytes()
    if not data:
        raise VsrnError(f"vocabulary file {path} is empty")
    if data.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] == b"{":
        return _vocab_from_json(data, str(path))
    return _vocab_from_pickle(data, str(path))


def _vocab_from_json(data: bytes, source: str) -> Vocabulary:
    try:
        obj = json.loads(data.decode("utf-8").removeprefix("\ufeff"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VsrnError(f"{source} is not valid JSON ({exc})") from None
    except RecursionError:
        raise VsrnError(f"{source} is nested too deeply to be a vocab.json") from None
    if isinstance(obj, dict) and isinstance(obj.get("words"), list):
        words = obj["words"]
    elif isinstance(obj, dict) and isinstance(obj.get("word2idx"), dict):
        try:
            words = [w for w, _ in sorted(obj["word2idx"].items(), key=lambda kv: int(kv[1]))]
        except (TypeError, ValueError):
            raise VsrnError(f"{source}: word2idx must map words to ints") from None
    else:
        raise VsrnError(f"{source} is not a vocab.json (expected a 'words' list)")
    if not all(isinstance(w, str) for w in words):
        raise VsrnError(f"{source}: every word must be a string")
    return Vocabulary.from_words(words)


class _AuthorsVocabularyStub:
    """Pickles as `__main__.Vocabulary` with the authors' attributes (word2idx, idx2word, idx)."""

    def __init__(self, vocab: Vocabulary) -> None:
        self.state = {"word2idx": dict(vocab.word2idx), "idx2word": dict(vocab.idx2word),
                      "idx": vocab.idx}

    def __reduce_ex__(self, protocol: int) -> Any:
        import copyreg

        return copyreg.__newobj__, (type(self),), self.state


class _AuthorsPickler(pickle._Pickler):  # the pure-Python pickler lets us name the class freely
    def save_global(self, obj: Any, name: str | None = None) -> None:
        if obj is _AuthorsVocabularyStub:
            self.write(pickle.GLOBAL + b"__main__\nVocabulary\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)

    dispatch = pickle._Pickler.dispatch.copy()
    dispatch[type] = save_global


def save_authors_pickle(vocab: Vocabulary, path: str | os.PathLike[str]) -> Path:
    """Write `vocab` as the authors' `<data_name>_vocab.pkl` (protocol 2, `__main__.Vocabulary`).

    Their scripts (which define `Vocabulary` in `__main__`) can read the file with plain pickle.

    Args:
        vocab: the vocabulary.
        path: destination `.pkl`.
    Returns:
        The path.
    """
    import io

    buf = io.BytesIO()
    _AuthorsPickler(buf, protocol=2).dump(_AuthorsVocabularyStub(vocab))
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path
