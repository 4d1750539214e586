"""Index + search against brute force, the approximate kinds' recall, and the Python API."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tiny_world import FEATURE_DIM, REGIONS

from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.search import Index, IndexConfig, build_index
from vsrn_deploy.search.encoders import ExportEncoders
from vsrn_deploy.search.kinds import (
    brute_force_top_k,
    default_params,
    exact_top_k,
    faiss_module,
    new_index,
    recall_at,
    rescored_top_k,
    train_and_fill,
)


def brute_force(embeddings: np.ndarray, query: np.ndarray, k: int) -> tuple[list[int], np.ndarray]:
    """numpy: every score, sorted by score descending then id ascending."""
    scores = np.asarray(embeddings, dtype=np.float32) @ np.asarray(query, dtype=np.float32)
    order = np.lexsort((np.arange(len(scores)), -scores))[:k]
    return order.tolist(), scores[order]


def test_stored_embeddings_are_the_exports(built_index, search_export):
    feats = np.load(search_export["images"])
    with ExportEncoders(search_export["export"]) as enc:
        direct, _ = enc.encode_images(feats)
    np.testing.assert_allclose(np.load(built_index / "image_embeddings.npy"), direct, atol=1e-6)
    manifest = json.loads((built_index / "index.json").read_text())
    assert manifest["images"]["count"] == 40 and manifest["captions"]["count"] == 200
    assert manifest["kind"] == "flat" and manifest["embed_dim"] == 16


def test_text_search_is_brute_force(built_index, search_export):
    captions = search_export["captions"].read_text().splitlines()[::37]
    with Index.open(built_index) as index, ExportEncoders(search_export["export"]) as enc:
        emb = np.load(built_index / "image_embeddings.npy")
        queries = enc.encode_texts(captions)
        for caption, query in zip(captions, queries, strict=True):
            for k in (1, 10, 40):
                hits = index.search_text(caption, k=k)
                ids, scores = brute_force(emb, query, k)
                assert [h.id for h in hits] == ids
                np.testing.assert_allclose([h.score for h in hits], scores, atol=1e-6)
        several = index.search_text(captions[:2], k=3)
        assert [[h.id for h in hits] for hits in several] == [brute_force(emb, q, 3)[0] for q in queries[:2]]


def test_image_to_captions_is_brute_force(built_index, search_export):
    caps = np.load(built_index / "caption_embeddings.npy")
    emb = np.load(built_index / "image_embeddings.npy")
    with Index.open(built_index) as index:
        by_id = index.search_images(image_ids=[0, 7, 39], k=10)
        for image, hits in zip([0, 7, 39], by_id, strict=True):
            assert [h.id for h in hits] == brute_force(caps, emb[image], 10)[0]
        feats = np.load(search_export["images"])[[7]]
        assert [h.id for h in index.search_images(feats, k=10)[0]] == [h.id for h in by_id[1]]
        best = by_id[0][0].id
        assert index.caption(best) == search_export["captions"].read_text().splitlines()[best]


def quantised_unit_vectors(rng, n, dim):
    """Unit vectors with four entries of +-0.5: every inner product is exact in float32, and
    many are equal (exact ties)."""
    out = np.zeros((n, dim), dtype=np.float32)
    for row in out:
        row[rng.choice(dim, 4, replace=False)] = rng.choice([-0.5, 0.5], 4)
    return out


@pytest.mark.parametrize("k", [1, 5, 10, 60])
def test_exact_ties_are_ordered_by_lower_id(k):
    rng = np.random.default_rng(k)
    base = quantised_unit_vectors(rng, 400, 8)
    queries = quantised_unit_vectors(rng, 30, 8)
    index = new_index("flat", 8, 400, default_params("flat", 400, 8))
    train_and_fill(index, base)
    found = exact_top_k(index, queries, k)
    for query, (ids, scores) in zip(queries, found, strict=True):
        want_ids, want_scores = brute_force(base, query, k)
        assert ids.tolist() == want_ids
        np.testing.assert_array_equal(scores, want_scores)
    assert (brute_force_top_k(base, queries, k, chunk=64) == np.array([brute_force(base, q, k)[0]
                                                                      for q in queries])).all()


def clustered(rng, n, dim, centres=64):
    c = rng.normal(size=(centres, dim))
    x = c[rng.integers(0, centres, n)] + 0.35 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("kind", ["ivfpq", "hnsw"])
def test_approximate_kinds_recall(kind):
    faiss_module().omp_set_num_threads(1)
    rng = np.random.default_rng(1)
    base = clustered(rng, 4000, 32)
    queries = clustered(rng, 100, 32)
    params = default_params(kind, 4000, 32)
    index = train_and_fill(new_index(kind, 32, 4000, params), base)
    found = rescored_top_k(index, queries, 10, base, params.rerank)
    recall = recall_at([ids for ids, _ in found], brute_force_top_k(base, queries, 10), 10)
    assert recall >= 0.9, recall
    for query, (ids, scores) in zip(queries, found, strict=True):  # scores are exact inner products
        np.testing.assert_allclose(scores, base[ids] @ query, rtol=1e-6)
        assert (np.diff(scores) <= 0).all()


@pytest.mark.parametrize(("kind", "k"), [("hnsw", 1200), ("ivfpq", 3000), ("hnsw", 5000)])
def test_approximate_kinds_return_min_k_n_hits(kind, k):
    """Large k used to come back short without a word (hnsw 422 of 1,200; ivfpq 879 of 6,000)."""
    faiss_module().omp_set_num_threads(1)
    rng = np.random.default_rng(2)
    base = clustered(rng, 4000, 16)
    queries = clustered(rng, 3, 16)
    params = default_params(kind, 4000, 16)
    index = train_and_fill(new_index(kind, 16, 4000, params), base)
    for query, (ids, scores) in zip(queries, rescored_top_k(index, queries, k, base, params.rerank),
                                    strict=True):
        assert len(ids) == min(k, 4000) and len(set(ids.tolist())) == len(ids)
        expect, expect_scores = brute_force(base, query, min(k, 4000))
        # the short queries are answered exactly: the same ids and order as brute force
        if len(ids) and ids.tolist() != expect:
            np.testing.assert_allclose(np.sort(scores), np.sort(expect_scores), rtol=1e-5)
        assert (np.diff(scores) <= 0).all()


def test_ivfpq_needs_enough_vectors():
    with pytest.raises(VsrnError, match="ivfpq needs at least"):
        new_index("ivfpq", 16, 500, default_params("ivfpq", 500, 16))


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
def test_build_reports_recall_of_an_approximate_kind(kind, search_export, tmp_path, caplog):
    from vsrn_deploy.data.synthetic_inputs import region_features

    images = search_export["images"]
    if kind == "ivfpq":  # ivfpq trains on >= 1000 vectors
        images = tmp_path / "many.npy"
        np.save(images, region_features(1200, REGIONS, FEATURE_DIM, seed=3))
    caplog.set_level("INFO", logger="vsrn_deploy")
    manifest = build_index(IndexConfig(onnx_dir=str(search_export["export"]), images=str(images),
                                       captions=str(search_export["captions"]), out=str(tmp_path / kind),
                                       kind=kind, progress=False))
    recall = manifest["recall_at_10"]["images"]
    assert 0.0 <= recall <= 1.0 and any("recall@10" in line for line in caplog.messages)
    if kind == "hnsw":
        assert recall == 1.0  # 40 images: the graph reaches them all
    with Index.open(tmp_path / kind) as index:
        hits = index.search_text("a red dog to the left of a blue car", k=10)
        emb = np.load(tmp_path / kind / "image_embeddings.npy")
        assert len({h.id for h in hits}) == 10
        query = index.encoders.encode_texts(["a red dog to the left of a blue car"])[0]
        np.testing.assert_allclose([h.score for h in hits], emb[[h.id for h in hits]] @ query, atol=1e-6)


def test_attention_of_a_hit_is_the_rule_on_the_exports_outputs(built_index, search_export):
    from vsrn_deploy.search.attention import render_attention

    feats = np.load(search_export["images"])
    boxes = np.load(search_export["boxes"])
    with Index.open(built_index) as index, ExportEncoders(search_export["export"]) as enc:
        image, regions = enc.encode_images(feats[[5]])
        assert index.attention_png(5) == render_attention(regions[0], image[0], boxes[5])


def test_demo_search_stage(search_export, caplog):
    from PIL import Image

    from vsrn_deploy.jobs.demo import search_demo

    caplog.set_level("INFO", logger="vsrn_deploy")
    root = search_export["root"]
    summary = search_demo(root, search_export["images"].parent)
    assert len(summary["hits"]) == 5 and Image.open(summary["attention_png"]).format == "PNG"
    with Index.open(summary["index"]) as index:
        assert [h.as_json("image") for h in index.search_text(summary["query"], k=5)] == summary["hits"]
    assert any("attention map" in line for line in caplog.messages)


def test_ivfpq_on_a_small_set_prints_no_faiss_training_warnings(capfd):
    """faiss printed a 'WARNING clustering ... please provide at least ...' line per PQ codebook (dozens
    for a set under ~10^4 vectors) straight to the user's terminal."""
    faiss_module().omp_set_num_threads(1)
    base = clustered(np.random.default_rng(3), 1500, 32)
    params = default_params("ivfpq", 1500, 32)
    train_and_fill(new_index("ivfpq", 32, 1500, params), base)
    out, err = capfd.readouterr()
    assert "WARNING" not in out + err and "clustering" not in out + err, err[:500]
