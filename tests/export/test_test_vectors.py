"""The export's test_vectors/: listed in the manifest, readable without a library, consistent with
ONNX Runtime and with the package's tokeniser."""

from __future__ import annotations

import numpy as np
import pytest

from vsrn_deploy.artifacts.export import read_export_manifest as read_manifest
from vsrn_deploy.data.vocab import load_vocab
from vsrn_deploy.export.test_vectors import FOLDER, read_test_vectors, tokenizer_cases
from vsrn_deploy.io.files import sha256_file

pytestmark = pytest.mark.export


def test_vectors_are_export_artifacts(exported):
    out = exported["out"]
    manifest = read_manifest(out)
    listed = {name for name in manifest["files"] if name.startswith(f"{FOLDER}/")}
    on_disk = {f"{FOLDER}/{p.name}" for p in (out / FOLDER).iterdir()}
    assert listed == on_disk and f"{FOLDER}/index.txt" in listed and f"{FOLDER}/captions.txt" in listed
    for name in listed:
        assert manifest["files"][name]["sha256"] == sha256_file(out / name)
    assert sum(manifest["files"][n]["bytes"] for n in listed) < 1_000_000  # small at tiny size


def test_index_layout_and_expected_outputs_match_onnxruntime(exported):
    import onnxruntime as ort

    out = exported["out"]
    index = [line.split() for line in (out / FOLDER / "index.txt").read_text().splitlines()
             if line and not line.startswith("#")]
    for name, dtype, rank, *dims in index:
        assert dtype in ("float32", "int64") and int(rank) == len(dims)
        size = int(np.prod([int(d) for d in dims])) * np.dtype(dtype).itemsize
        assert (out / FOLDER / f"{name}.bin").stat().st_size == size, name
    v = read_test_vectors(out)
    img = ort.InferenceSession(str(out / "image_encoder.onnx"), providers=["CPUExecutionProvider"])
    txt = ort.InferenceSession(str(out / "text_encoder.onnx"), providers=["CPUExecutionProvider"])
    emb, regions = img.run(None, {"region_features": v["region_features"]})
    np.testing.assert_allclose(emb, v["image_embedding"], atol=1e-6)
    np.testing.assert_allclose(regions, v["region_embeddings"], atol=1e-6)
    text = txt.run(None, {"token_ids": v["token_ids"], "lengths": v["lengths"]})[0]
    np.testing.assert_allclose(text, v["text_embedding"], atol=1e-6)
    assert len(set(v["lengths"].tolist())) > 1  # captions of several lengths


def test_tokeniser_cases_are_the_packages_tokenisation(exported):
    v = read_test_vectors(exported["out"])
    vocab = load_vocab(exported["out"] / "vocab.json")
    captions = v["captions"]
    assert len(captions) >= 300
    ids, lengths = vocab.encode_batch(captions)
    np.testing.assert_array_equal(ids, v["caption_token_ids"])
    np.testing.assert_array_equal(lengths, v["caption_lengths"])
    assert any(not c.isascii() for c in captions)  # unicode
    assert any(ch in c for c in captions for ch in ",.!?'\"()")  # punctuation
    assert (v["caption_token_ids"] == 3).any() and (v["caption_token_ids"] > 3).any()  # unknown and known
    assert v["token_ids"].shape[0] == 8 and np.array_equal(v["lengths"], v["caption_lengths"][:8])


def test_tokenizer_cases_are_deterministic_and_one_per_line():
    words = ["dog", "cat", "runs"]
    assert tokenizer_cases(words, count=50) == tokenizer_cases(words, count=50)
    assert all("\n" not in c and "\r" not in c for c in tokenizer_cases(words, count=300))


def test_without_a_vocabulary_the_text_inputs_are_synthetic(exported, tmp_path):
    import shutil

    from vsrn_deploy.export.test_vectors import write_test_vectors

    out = tmp_path / "export"
    shutil.copytree(exported["out"], out)
    shutil.rmtree(out / FOLDER)
    from vsrn_deploy.model.config import VSRNConfig

    entries = write_test_vectors(out, None, VSRNConfig.from_dict(read_manifest(out)["config"]))
    assert f"{FOLDER}/captions.txt" not in entries and f"{FOLDER}/token_ids.bin" in entries
    names = [line.split()[0] for line in (out / FOLDER / "index.txt").read_text().splitlines()
             if not line.startswith("#")]
    assert "caption_token_ids" not in names and {"token_ids", "lengths", "text_embedding"} <= set(names)


def test_an_export_without_a_vocabulary_has_vectors_without_tokeniser_cases(tmp_path):
    from export_helpers import tiny_model

    from vsrn_deploy.export import ExportConfig, export_loaded

    out = tmp_path / "export"
    export_loaded(tiny_model(1), None, out, ExportConfig(precision="fp32", max_batch=2))
    v = read_test_vectors(out)
    assert "captions" not in v and not (out / FOLDER / "captions.txt").exists()
    assert v["region_features"].shape[0] >= 1 and v["text_embedding"].shape[0] == v["token_ids"].shape[0]
