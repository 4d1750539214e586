"""Test vectors beside the exported graphs, for clients in other languages (examples/cpp reads them).

`write_test_vectors(export_dir, vocab, config)` writes `test_vectors/` into an export folder and
returns the manifest `files` entries of what it wrote (they are export artifacts with a sha256).
Layout, chosen so a C++ reader needs no library:

    test_vectors/index.txt              one line per array: `<name> <dtype> <rank> <dim0> ...`
                                         (lines starting with # are comments); the array is in
                                         `<name>.bin`: raw little-endian, C order, no header
    test_vectors/region_features.bin    float32 [images, regions, feature_dim]   image_encoder input
    test_vectors/image_embedding.bin    float32 [images, embed_dim]              expected outputs
    test_vectors/region_embeddings.bin  float32 [images, regions, embed_dim]
    test_vectors/token_ids.bin          int64 [captions, tokens]                 text_encoder inputs
    test_vectors/lengths.bin            int64 [captions]
    test_vectors/text_embedding.bin     float32 [captions, embed_dim]            expected output
    test_vectors/captions.txt           tokeniser cases: UTF-8, one caption per line ("\\n" only)
    test_vectors/caption_token_ids.bin  int64 [cases, tokens] their ids (vsrn_deploy tokenisation,
    test_vectors/caption_lengths.bin    int64 [cases]          padded with 0) and lengths

The expected embeddings are ONNX Runtime's (CPU, the FP32 graphs just written and checked against
the eager model), so another ONNX Runtime binding must match them to 1e-5. The text encoder's
inputs are the ids of the first tokeniser cases. At paper size only two images are written
(a region feature block is 36 x 2048 floats, 295 KB).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from vsrn_deploy.core.contract import IMAGE, TEXT, onnx_name
from vsrn_deploy.io.files import atomic_write_bytes, atomic_write_text, sha256_file

FOLDER = "test_vectors"
INDEX_NAME = "index.txt"
CAPTIONS_NAME = "captions.txt"
TEXT_CASES = 8  # captions run through the text encoder
_SMALL_IMAGE = 64 * 1024  # floats per image up to which 4 images are written, else 2

# Pieces of the tokeniser cases: punctuation the nltk tokenizer splits or keeps, unicode, unknown words.
_PUNCT = [",", ".", "!", "?", ";", ":", "'s", "n't", "'", '"', "(", ")", "-", "--", "...", "/", "&",
          "$3.50", "e.g.", "u.s.", "10%", "#1", "@home", "a-b", "rock'n'roll", "``", "''"]
_UNICODE = ["café", "naïve", "Ångström", "straße", "日本語", "😀", "über", "señor", "€5", "—", "“quoted”",
            "‘single’", "ﬁne", "Ⅻ", "x\u00a0y", "e\u0301", "ПРИВЕТ", "مرحبا", "👍🏽", "½"]
_UNKNOWN = ["xyzzy", "qwfpgj", "zzzz", "blorf", "snark", "flibbertigibbet", "42", "3d", "covid-19", "a1b2"]
_FORBIDDEN = {"\n", "\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"}


def tokenizer_cases(words: list[str], count: int = 320, seed: int = 0) -> list[str]:
    """Deterministic captions mixing vocabulary words, punctuation, case, unicode and unknown words."""
    rng = np.random.default_rng(seed)
    plain = [w for w in words if w.isascii() and w.isalnum()] or ["word"]
    cases = ["A man riding a horse.", "TWO DOGS, ONE CAT!", "  leading and  double   spaces  ",
             "tab\tseparated\twords", "it's a dog's life, isn't it?", 'he said "hello" (twice)...']
    kinds = ("plain", "punct", "unicode", "unknown", "mixed")
    while len(cases) < count:
        kind = kinds[len(cases) % len(kinds)]
        n = int(rng.integers(1, 13))
        tokens = [str(rng.choice(plain)) for _ in range(n)]
        extra = {"plain": [], "punct": _PUNCT, "unicode": _UNICODE, "unknown": _UNKNOWN,
                 "mixed": _PUNCT + _UNICODE + _UNKNOWN}[kind]
        for _ in range(int(rng.integers(1, 4)) if extra else 0):
            tokens.insert(int(rng.integers(0, len(tokens) + 1)), str(rng.choice(extra)))
        glue = "" if kind == "punct" and rng.random() < 0.3 else " "
        text = glue.join(tokens)
        if rng.random() < 0.3:
            text = text.capitalize() if rng.random() < 0.5 else text.upper()
        if rng.random() < 0.4:
            text += str(rng.choice([".", "!", "?", " .", ""]))
        cases.append(text)
    bad = [c for c in cases if _FORBIDDEN & set(c)]
    assert not bad, bad  # one caption per line in captions.txt
    return cases


def _index_line(name: str, array: np.ndarray) -> str:
    return " ".join([name, array.dtype.name, str(array.ndim), *(str(d) for d in array.shape)])


def read_test_vectors(export_dir: str | Path) -> dict[str, np.ndarray]:
    """The arrays of `<export_dir>/test_vectors` by name (and `captions` as a list of str, when the
    export had a vocabulary to write the tokeniser cases with)."""
    folder = Path(export_dir) / FOLDER
    arrays: dict[str, Any] = {}
    for line in (folder / INDEX_NAME).read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, dtype, rank, *dims = line.split()
        shape = tuple(int(d) for d in dims)
        assert len(shape) == int(rank), line
        data = np.fromfile(folder / f"{name}.bin", dtype=np.dtype(dtype).newbyteorder("<"))
        arrays[name] = data.reshape(shape).astype(dtype)
    if (folder / CAPTIONS_NAME).is_file():
        arrays["captions"] = (folder / CAPTIONS_NAME).read_text(encoding="utf-8").split("\n")
    return arrays


def write_test_vectors(export_dir: str | Path, vocab: Any, config: Any, *, seed: int = 0) -> dict[str, Any]:
    """Write `test_vectors/` (see the module docstring) into an export folder holding the FP32 graphs.

    Args:
        export_dir: the folder with image_encoder.onnx and text_encoder.onnx.
        vocab: the export's `Vocabulary` (tokeniser cases and text inputs), or None (then no tokeniser
            cases; the text encoder gets synthetic ids).
        config: the model config (num_regions, img_dim, vocab_size).
        seed: seed of the synthetic inputs.

    Returns:
        {"test_vectors/<file>": {"sha256", "bytes"}} for the manifest's `files`.
    """
    import onnxruntime as ort

    from vsrn_deploy.backend.onnxrt import cpu_session
    from vsrn_deploy.data import synthetic_inputs

    export_dir = Path(export_dir)
    folder = export_dir / FOLDER
    folder.mkdir(exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    written: list[Path] = []

    def session(graph: str) -> Any:
        return cpu_session(export_dir / onnx_name(graph))

    images = 4 if config.num_regions * config.img_dim <= _SMALL_IMAGE else 2
    features = synthetic_inputs.region_features(images, config.num_regions, config.img_dim, seed=seed + 7000)
    arrays[IMAGE.inputs[0].name] = features
    outputs = session(IMAGE.graph).run(list(IMAGE.output_names), {IMAGE.inputs[0].name: features})
    arrays.update(zip(IMAGE.output_names, outputs, strict=True))

    if vocab is not None:
        cases = tokenizer_cases(vocab.words[4:], seed=seed)
        case_ids, case_lengths = vocab.encode_batch(cases)
        arrays["caption_token_ids"], arrays["caption_lengths"] = case_ids, case_lengths
        written.append(atomic_write_text(folder / CAPTIONS_NAME, "\n".join(cases)))
        ids, lengths = vocab.encode_batch(cases[:TEXT_CASES])
    else:
        feed = synthetic_inputs.text_feed(synthetic_inputs.captions(TEXT_CASES, config.vocab_size,
                                                                     max_tokens=16, seed=seed + 7001))
        ids, lengths = (feed[name] for name in TEXT.input_names)
    feed = dict(zip(TEXT.input_names, (ids, lengths), strict=True))
    arrays.update(feed)
    arrays.update(zip(TEXT.output_names, session(TEXT.graph).run(list(TEXT.output_names), feed), strict=True))

    lines = ["# vsrn-deploy test vectors: <name> <dtype> <rank> <dims...>; data in <name>.bin, raw "
             "little-endian, C order",
             f"# expected outputs: ONNX Runtime {ort.__version__} (CPU) on the FP32 graphs; compare to 1e-5"]
    for name, array in arrays.items():
        array = np.ascontiguousarray(array)
        if sys.byteorder != "little":
            array = array.byteswap()
        written.append(atomic_write_bytes(folder / f"{name}.bin", array.tobytes()))
        lines.append(_index_line(name, array))
    written.append(atomic_write_text(folder / INDEX_NAME, "\n".join(lines) + "\n"))
    return {f"{FOLDER}/{p.name}": {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in written}
