"""Property-based checks of tokenisation and caption files: any text, never a crash.

Arbitrary unicode (control characters, byte-order marks, CRLF, empty lines, lone surrogates are
not text and stay out) goes through `Vocabulary.encode` and the one caption-file reader.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.data.vocab import Vocabulary
from vsrn_deploy.io.inputs import read_caption_lines

pytestmark = pytest.mark.faults

VOCAB = Vocabulary.from_words(["<pad>", "<start>", "<end>", "<unk>", "a", "red", "cube", "on", "the", "left"])
# text with the awkward parts over-represented: BOMs, CR/LF, tabs, NUL and other control characters
AWKWARD = st.sampled_from(["\ufeff", "\r\n", "\n", "\r", "\t", "\x00", "\x0b", "\x1c", "\u2028", "\u200b",
                           " ", "A Red cube", "ÉCOLE", "猫", "🙂", "'s", "--", "..."])
TEXT = st.lists(st.one_of(st.text(st.characters(blacklist_categories=("Cs",)), max_size=12), AWKWARD),
                max_size=12).map("".join)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(TEXT)
def test_encode_never_crashes_and_keeps_start_and_end(caption):
    ids = VOCAB.encode(caption)
    assert ids[0] == VOCAB("<start>") and ids[-1] == VOCAB("<end>")
    assert all(0 <= i < len(VOCAB) for i in ids)
    assert VOCAB("<pad>") not in ids
    assert VOCAB.encode("\ufeff" + caption) == ids  # a BOM in front changes nothing


@FAST
@given(st.lists(TEXT, max_size=6), st.booleans(), st.booleans())
def test_caption_files_read_or_refuse_in_one_line(tmp_path_factory, lines, bom, crlf):
    path = tmp_path_factory.mktemp("caps") / "caps.txt"
    body = ("\r\n" if crlf else "\n").join(lines)
    path.write_bytes((("\ufeff" if bom else "") + body).encode("utf-8", "surrogatepass"))
    try:
        captions = read_caption_lines(path)
    except VsrnError as exc:
        assert "\n" not in str(exc)
        return
    assert captions and all(c and c == c.strip() for c in captions)
    assert not any("\ufeff" in c or "\n" in c or c.endswith("\r") for c in captions)
    for caption in captions:
        ids = VOCAB.encode(caption)
        assert ids[0] == VOCAB("<start>") and ids[-1] == VOCAB("<end>")
