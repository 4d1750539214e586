"""`index --store milvus` (Milvus Lite, a local .db file): search gives what faiss flat gives (top-10
ids and order, exact ties by lower id), both ways; an unreachable server or a collection the index
did not create is one line, exit 2, and nothing is written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from dist_fixtures import write_shards
from typer.testing import CliRunner

from vsrn_deploy.cli.app import app
from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.search import Index, IndexConfig, build_index

DUPLICATES = {30: 3, 31: 3, 45: 12}  # row -> the row it copies: exact ties of equal embeddings


@pytest.fixture(scope="module")
def corpus(tiny_export, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("milvus_corpus")
    parts = write_shards(root / "f", rows=(25, 25), seed=4)
    feats = np.concatenate([np.load(p) for p in parts])
    for row, source in DUPLICATES.items():
        feats[row] = feats[source]
    np.save(root / "feats.npy", feats)
    captions = tiny_export.parent / "data" / "synth_precomp" / "test_caps.txt"
    return {"images": root / "feats.npy", "captions": captions, "root": root}


@pytest.fixture(scope="module")
def faiss_and_milvus(tiny_export, corpus) -> tuple[Path, Path, Path]:
    root = corpus["root"]
    common = {"onnx_dir": str(tiny_export), "images": str(corpus["images"]),
              "captions": str(corpus["captions"]), "progress": False}
    build_index(IndexConfig(out=str(root / "faiss"), **common))
    db = root / "milvus.db"
    build_index(IndexConfig(out=str(root / "milvus"), store="milvus", milvus_uri=str(db), **common))
    return root / "faiss", root / "milvus", db


def ids(hits):
    return [h.id for h in hits]


def test_milvus_flat_equals_faiss_flat(faiss_and_milvus):
    faiss_dir, milvus_dir, db = faiss_and_milvus
    manifest = json.loads((milvus_dir / "index.json").read_text())
    assert manifest["store"] == {"name": "milvus", "uri": str(db), "collection": "vsrn_milvus",
                                 "caption_collection": "vsrn_milvus_captions", "index_type": "FLAT",
                                 "metric": "IP"}
    assert not (milvus_dir / "images.faiss").exists() and not (milvus_dir / "captions.faiss").exists()
    with Index.open(faiss_dir) as fa, Index.open(milvus_dir) as mv:
        queries = np.asarray(fa.image_embeddings)  # every image as a query: ties among the copies
        for k in (1, 10, fa.num_images):
            want = fa.search_embeddings(queries, "images", k)
            got = mv.search_embeddings(queries, "images", k)
            assert [ids(h) for h in got] == [ids(h) for h in want]
            for g, w in zip(got, want, strict=True):
                np.testing.assert_allclose([h.score for h in g], [h.score for h in w], rtol=0, atol=1e-5)
        # equal embeddings: the lower id first, as faiss flat orders them
        top = ids(mv.search_embeddings(queries[3:4], "images", 3)[0])
        assert top == [3, 30, 31]
        for text in ("a red dog", "a blue car to the left of a dog", "a green cat"):
            assert ids(mv.search_text(text, k=10)) == ids(fa.search_text(text, k=10))
        assert [ids(h) for h in mv.search_images(image_ids=[0, 12, 45], k=10)] == \
            [ids(h) for h in fa.search_images(image_ids=[0, 12, 45], k=10)]


def test_search_command_same_on_both(faiss_and_milvus):
    faiss_dir, milvus_dir, _ = faiss_and_milvus
    outs = [CliRunner().invoke(app, ["search", "--index", str(d), "--text", "a red dog", "--k", "10",
                                     "--json"]) for d in (faiss_dir, milvus_dir)]
    assert all(r.exit_code == 0 for r in outs), [r.output for r in outs]
    fa, mv = (json.loads(r.output.strip().splitlines()[-1]) for r in outs)
    assert [h["image"] for h in mv] == [h["image"] for h in fa] and len(mv) == 10


def test_unreachable_milvus_is_one_line(tiny_export, corpus, tmp_path):
    out = tmp_path / "idx"
    result = CliRunner().invoke(app, ["index", "--onnx-dir", str(tiny_export),
                                      "--images", str(corpus["images"]), "--out", str(out),
                                      "--store", "milvus", "--milvus-uri", "http://127.0.0.1:9",
                                      "--no-progress"])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "cannot reach Milvus at http://127.0.0.1:9" in errors[0], result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_foreign_collection_is_refused_own_is_replaced(tiny_export, corpus, faiss_and_milvus, tmp_path):
    _, milvus_dir, db = faiss_and_milvus
    common = {"onnx_dir": str(tiny_export), "images": str(corpus["images"]), "progress": False,
              "store": "milvus", "milvus_uri": str(db)}
    with pytest.raises(VsrnError, match="already holds a collection vsrn_milvus that the index at --out"):
        build_index(IndexConfig(out=str(tmp_path / "other"), collection="vsrn_milvus", **common))
    assert not (tmp_path / "other").exists()
    # a rebuild of the same folder replaces its own collection (here: hnsw, no captions)
    again = build_index(IndexConfig(out=str(tmp_path / "own"), kind="hnsw", **common))
    assert again["store"]["index_type"] == "HNSW" and again["recall_at_10"]["images"] >= 0.9
    rebuilt = build_index(IndexConfig(out=str(tmp_path / "own"), **common))
    assert rebuilt["store"]["index_type"] == "FLAT"
    from vsrn_deploy.search.milvus import connect

    client = connect(str(db))
    try:
        names = set(client.list_collections())
        assert not [n for n in names if "__staging_" in n]
        assert client.describe_index("vsrn_own", "embedding")["index_type"] == "FLAT"
    finally:
        client.close()
    with Index.open(tmp_path / "own") as own, Index.open(milvus_dir) as first:
        q = np.asarray(first.image_embeddings[:4])
        want = [ids(h) for h in first.search_embeddings(q, k=10)]
        assert [ids(h) for h in own.search_embeddings(q, k=10)] == want


def test_store_options_checked(tiny_export, corpus, tmp_path):
    base = ["index", "--onnx-dir", str(tiny_export), "--images", str(corpus["images"]),
            "--out", str(tmp_path / "i")]
    for extra, needle in ((["--store", "milvus"], "needs --milvus-uri"),
                          (["--store", "qdrant"], "--store must be one of faiss, milvus"),
                          (["--milvus-uri", "m.db"], "go with --store milvus"),
                          (["--store", "milvus", "--milvus-uri", "m.sqlite"], "neither a server URL"),
                          (["--store", "milvus", "--milvus-uri", str(tmp_path / "m.db"),
                            "--collection", "9bad-name"], "not a Milvus collection name"),
                          # Milvus Lite cannot load IVF_PQ: refused before encoding, not after the commit
                          (["--store", "milvus", "--milvus-uri", str(tmp_path / "m.db"), "--kind", "ivfpq"],
                           "cannot load IVF_PQ")):
        result = CliRunner().invoke(app, [*base, *extra])
        assert result.exit_code == 2, result.output
        errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and needle in errors[0], result.output
    assert not (tmp_path / "i").exists()


def test_search_with_milvus_gone_is_one_line(faiss_and_milvus, tmp_path):
    """The folder's Milvus is unreachable at search time: one line, exit 2."""
    import shutil

    moved = tmp_path / "moved"
    shutil.copytree(faiss_and_milvus[1], moved)
    manifest = json.loads((moved / "index.json").read_text())
    manifest["store"]["uri"] = "http://127.0.0.1:9"
    (moved / "index.json").write_text(json.dumps(manifest))
    result = CliRunner().invoke(app, ["search", "--index", str(moved), "--text", "a red dog"])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "cannot reach Milvus at http://127.0.0.1:9" in errors[0], result.output


def test_filled_collection_is_searched_through_its_index(tmp_path):
    """What `fill` returns is searched through the collection's index, as a later process searches it:
    a deliberately weak HNSW (M 4, ef 10) on random vectors misses neighbours right after the build
    (not recall 1.0 from the raw rows), and a release and reload changes no result."""
    from vsrn_deploy.search.kinds import KindParams
    from vsrn_deploy.search.milvus import MilvusStore

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((3000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[rng.choice(len(vectors), 40, replace=False)] + 0.3 * rng.standard_normal((40, 32))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    store = MilvusStore(str(tmp_path / "m.db"), "weak")
    try:
        index = store.fill("images", "hnsw", vectors, KindParams(hnsw_m=4, ef_construction=8, ef_search=10))
        _, built = index.search(queries, 10)
        truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(built, truth, strict=True)])
        assert recall < 0.95, recall  # an index, not a scan of the rows
        store.client.release_collection(index.collection)
        store.client.load_collection(index.collection)
        _, served = index.search(queries, 10)
        np.testing.assert_array_equal(built, served)
    finally:
        store.abort()
        store.close()


class _ServerLike:
    """Milvus Lite made to report index progress as a Milvus server does after a flush: the rows are
    pending for the first `busy` calls of describe_index (Lite itself has indexed them already).
    Records the calls in order."""

    def __init__(self, client, busy: int, state: str = "Finished", indexed: int = 0):
        self.client, self.busy, self.state, self.indexed, self.calls = client, busy, state, indexed, []

    def describe_index(self, collection, index_name):
        info = dict(self.client.describe_index(collection, index_name))
        self.calls.append("describe_index")
        if self.busy > 0:
            self.busy -= 1
            info.update(indexed_rows=self.indexed, pending_index_rows=info["total_rows"], state=self.state,
                        index_state_fail_reason="out of disk (a test's)" if self.state == "Failed" else "")
        return info

    def __getattr__(self, name):
        self.calls.append(name)
        return getattr(self.client, name)


def test_fill_waits_until_the_server_has_indexed_every_row(tmp_path, monkeypatch):
    """A Milvus server builds the index after the flush and searches the rows by brute force until
    then (its state already says "Finished"): fill waits for pending_index_rows to reach 0 before
    the reload, so the build's recall and the first searches are the index's; a failed build or a
    wait past the limit is one VsrnError naming the collection."""
    from vsrn_deploy.search import milvus
    from vsrn_deploy.search.kinds import KindParams

    monkeypatch.setattr(milvus, "_POLL_S", 0.0)
    vectors = np.random.default_rng(1).standard_normal((300, 8)).astype(np.float32)
    store = milvus.MilvusStore(str(tmp_path / "m.db"), "waited")
    try:
        server = store.client = _ServerLike(store.client, busy=3)
        store.fill("images", "flat", vectors, KindParams())
        calls = [c for c in server.calls if c in ("describe_index", "flush", "release_collection")]
        assert calls == ["flush"] + ["describe_index"] * 4 + ["release_collection"], server.calls
        store.abort()

        # every row indexed while a compaction's re-index is pending: searched through the index already
        store.client = compacting = _ServerLike(server.client, busy=10**6, indexed=300)
        store.fill("images", "flat", vectors, KindParams())
        assert compacting.calls.count("describe_index") == 1
        store.abort()

        store.client = _ServerLike(server.client, busy=1, state="Failed")
        with pytest.raises(VsrnError, match="failed to build the index of waited_captions: out of disk"):
            store.fill("captions", "flat", vectors, KindParams())
        store.abort()

        store.client = _ServerLike(server.client, busy=10**6)
        monkeypatch.setattr(milvus, "INDEX_WAIT_S", 0.0)
        with pytest.raises(VsrnError, match=r"still had 300 of 300 rows of waited to index after 0 s"):
            store.fill("images", "flat", vectors, KindParams())
    finally:
        store.abort()
        store.close()


def test_a_rebuild_without_captions_drops_its_old_caption_collection(tiny_export, corpus, tmp_path):
    """Rebuilt without --captions, the index's old caption collection is dropped with the old index
    (nothing refers to it any more): a later rebuild with captions is not refused as if it were
    someone else's. Moved to another --collection, the old pair goes too; a foreign one stays."""
    from vsrn_deploy.search.milvus import connect

    db = tmp_path / "m.db"
    common = {"onnx_dir": str(tiny_export), "images": str(corpus["images"]), "progress": False,
              "store": "milvus", "milvus_uri": str(db), "out": str(tmp_path / "idx")}
    build_index(IndexConfig(captions=str(corpus["captions"]), **common))
    client = connect(str(db))
    try:
        assert set(client.list_collections()) == {"vsrn_idx", "vsrn_idx_captions"}
        build_index(IndexConfig(**common))
        assert set(client.list_collections()) == {"vsrn_idx"}
        build_index(IndexConfig(captions=str(corpus["captions"]), **common))
        assert set(client.list_collections()) == {"vsrn_idx", "vsrn_idx_captions"}
        build_index(IndexConfig(out=str(tmp_path / "foreign"), collection="theirs", **{
            k: v for k, v in common.items() if k != "out"}))
        build_index(IndexConfig(collection="moved", **common))
        assert set(client.list_collections()) == {"moved", "theirs"}
    finally:
        client.close()
