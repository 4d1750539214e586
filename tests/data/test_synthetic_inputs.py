"""The one synthetic-input generator: region features like real ones, captions of mixed lengths."""

from __future__ import annotations

import numpy as np

from vsrn_deploy.data.synthetic_inputs import captions, region_features, text_feed


def test_synthetic_inputs_look_like_region_features():
    x = region_features(4, 36, 256, seed=1)
    assert x.dtype == np.float32 and x.shape == (4, 36, 256)
    assert x.min() >= 0 and 0.5 < (x == 0).mean() < 0.7 and x.max() > 5
    caps = captions(15, 50, min_tokens=3, max_tokens=12)
    assert len(caps) == 15 and all(c[0] == 1 and c[-1] == 2 and 3 <= len(c) <= 12 for c in caps)
    assert {len(c) for c in caps} >= {3, 12}  # shortest and longest both present


def test_captions_draw_words_from_a_vocabulary_and_pad_into_the_text_feed():
    from vsrn_deploy.data.vocab import build_vocab

    vocab = build_vocab(["a dog runs on the grass"], threshold=1)
    caps = captions(6, len(vocab), max_tokens=8, seed=2, vocab=vocab)
    assert all(c[0] == 1 and c[-1] == 2 and 2 <= len(c) <= 8 for c in caps)
    assert all(4 <= i < len(vocab) for c in caps for i in c[1:-1])
    feed = text_feed(caps)
    assert list(feed) == ["token_ids", "lengths"]
    assert feed["token_ids"].shape == (6, max(len(c) for c in caps))
    assert feed["lengths"].tolist() == [len(c) for c in caps]
