"""Caption -> token ids, the authors' rule, in one self-contained file (numpy and nltk only).

`vsrn_deploy.data.vocab.Vocabulary` tokenises through these functions, and `vsrn-deploy triton-repo`
copies this very file beside the Triton `tokenizer` model, so a server without vsrn-deploy installed
tokenises exactly like the package. Hence: no import of the package here, standard library, numpy
and nltk only.

Rule: lower-case, nltk's word tokenizer (`preserve_line=True`: no sentence splitter, so no punkt
data files; captions are single sentences), each token's id from the vocabulary (``<unk>`` for
unknown words), ``<start>`` first and ``<end>`` last; a batch is padded with ``<pad>`` (id 0).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

PAD = "<pad>"
START = "<start>"
END = "<end>"
UNK = "<unk>"
SPECIAL_TOKENS = (PAD, START, END, UNK)  # ids 0, 1, 2, 3


def tokenize(caption: str) -> list[str]:
    """The authors' tokenisation: lower-case, then nltk's word tokenizer."""
    from nltk.tokenize import word_tokenize  # imported on use: nltk is slow to import

    # a byte-order mark (U+FEFF, e.g. at the start of a file saved by Notepad) is no part of a word
    return word_tokenize(caption.replace("\ufeff", " ").lower(), preserve_line=True)


def encode(word2idx: Mapping[str, int], caption: str) -> list[int]:
    """Caption -> ids: ``<start>`` + token ids (unknown -> ``<unk>``) + ``<end>``."""
    unk = word2idx[UNK]
    return [word2idx[START], *(word2idx.get(t, unk) for t in tokenize(caption)), word2idx[END]]


def unusable_query(ids: Sequence[int], caption: str, unk_id: int = 3) -> str | None:
    """Why a caption cannot be searched with, or None: the one rule of every caption path (search,
    the Triton tokenizer). An empty caption, or one whose every word is unknown, embeds to the same
    vector as any other such caption: it would answer with confident nonsense.

    Args:
        ids: the caption's ids as `encode` returns them (``<start>`` ... ``<end>``).
        caption: the text (for the message).
        unk_id: the id of ``<unk>``.
    """
    if not caption.strip():
        return "the query is empty; give a caption such as 'a dog on a bench'"
    words = list(ids)[1:-1]
    if not words or all(i == unk_id for i in words):
        return f"no word of {caption!r} is in the vocabulary; use words of the training captions"
    return None


def pad_ids(rows: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Id lists -> (token_ids int64 [B, T] padded with 0 (``<pad>``), lengths int64 [B]).

    T is the longest row (at least 2, room for ``<start>`` and ``<end>``).
    """
    lengths = np.array([len(ids) for ids in rows], dtype=np.int64)
    token_ids = np.zeros((len(rows), int(lengths.max(initial=2))), dtype=np.int64)  # (B, T)
    for row, ids in enumerate(rows):
        token_ids[row, : len(ids)] = ids
    return token_ids, lengths


def read_word2idx(path: str | Path) -> dict[str, int]:
    """word -> id of a vsrn-deploy `vocab.json` (``{"words": [...]}``, id = position).

    The full reader with checks and the authors' pickles is `vsrn_deploy.data.vocab.load_vocab`; this one
    serves a Triton model reading the vocab.json that `triton-repo` checked when it copied it.
    """
    words = json.loads(Path(path).read_text(encoding="utf-8"))["words"]
    word2idx = {w: i for i, w in enumerate(words)}
    for expected, token in enumerate(SPECIAL_TOKENS):
        if word2idx.get(token) != expected:
            raise ValueError(f"{path}: '{token}' must have id {expected}")
    return word2idx
