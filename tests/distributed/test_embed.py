"""`vsrn-deploy embed`: a Ray Data job (2 actors on a local Ray) equals single-process encoding; reruns
redo only what is missing or unverified; bad shards and foreign --out folders are one line, exit 2."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from dist_fixtures import SHARD_ROWS, write_shards

from vsrn_deploy.artifacts.embeddings import MANIFEST
from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.distributed import EmbedConfig, run_embed
from vsrn_deploy.io.files import sha256_file

TOTAL = sum(SHARD_ROWS)


def read_out(out: Path) -> tuple[np.ndarray, np.ndarray]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = [pq.read_table(p) for p in sorted(out.glob("shard-*.parquet"))]
    for table in tables:
        assert table.schema.field("id").type == pa.int64()
        assert table.schema.field("embedding").type == pa.list_(pa.float32())
    ids = np.concatenate([t.column("id").to_numpy() for t in tables])
    emb = np.concatenate([np.stack(t.column("embedding").to_numpy(zero_copy_only=False)) for t in tables])
    return ids, emb.astype(np.float32)


def reference(export: Path, shards: list[Path]) -> np.ndarray:
    from vsrn_deploy.search.encoders import ExportEncoders

    feats = np.concatenate([np.load(p) for p in sorted(shards)])
    with ExportEncoders(export, threads=1) as enc:
        return enc.encode_images(feats)[0]


def embed(export, shards, out, **kw):
    cfg = EmbedConfig(onnx_dir=str(export), images=str(shards[0].parent / "*.npy"), out=str(out), workers=2,
                      batch=4, **kw)
    return run_embed(cfg)


@pytest.fixture(scope="module")
def module_shards(tmp_path_factory) -> list[Path]:
    return write_shards(tmp_path_factory.mktemp("dist_features") / "features")


@pytest.fixture(scope="module")
def first_run(tiny_export, module_shards, tmp_path_factory, ray_session) -> tuple[Path, dict]:
    """One embed of the three shards with 2 actors; tests that change it work on a copy."""
    out = tmp_path_factory.mktemp("dist_first") / "emb"
    return out, embed(tiny_export, module_shards, out)


def copy_of(first_run, tmp_path: Path) -> Path:
    out = tmp_path / "emb"
    shutil.copytree(first_run[0], out, copy_function=shutil.copy2)
    return out


def test_two_workers_equal_single_process(tiny_export, module_shards, first_run, ray_session):
    out, manifest = first_run
    ids, emb = read_out(out)
    assert ids.tolist() == list(range(TOTAL))  # every id once, in shard order then row order
    np.testing.assert_allclose(emb, reference(tiny_export, module_shards), rtol=0, atol=1e-6)
    saved = json.loads((out / MANIFEST).read_text())
    assert saved == manifest and saved["complete"] and saved["count"] == TOTAL
    assert saved["written_by"] == {"tool": "vsrn-deploy", "kind": "embeddings"}
    firsts = np.cumsum((0, *SHARD_ROWS))[:-1].tolist()
    for entry, src, rows, first in zip(saved["shards"], sorted(module_shards), SHARD_ROWS, firsts,
                                       strict=True):
        assert entry["source"] == str(src) and entry["source_sha256"] == sha256_file(src)
        assert entry["rows"] == rows and entry["first_id"] == first
        assert entry["sha256"] == sha256_file(out / entry["file"])
    from vsrn_deploy.artifacts.export import manifest_sha256

    assert saved["export"]["manifest_sha256"] == manifest_sha256(tiny_export)
    assert sorted(saved["run"]["encoded_shards"]) == [0, 1, 2]
    assert ray_session.is_initialized()  # a session the job found is left to its owner


def test_rerun_redoes_only_missing_shard(tiny_export, module_shards, first_run, tmp_path):
    out = copy_of(first_run, tmp_path)
    kept = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("shard-*.parquet")}
    (out / "shard-00001.parquet").unlink()
    again = embed(tiny_export, module_shards, out)
    assert again["run"]["encoded_shards"] == [1]
    for name in ("shard-00000.parquet", "shard-00002.parquet"):
        p = out / name
        assert (p.stat().st_ino, p.stat().st_mtime_ns) == kept[name]  # untouched
    ids, emb = read_out(out)
    assert ids.tolist() == list(range(TOTAL))
    np.testing.assert_allclose(emb, reference(tiny_export, module_shards), rtol=0, atol=1e-6)


def test_interrupted_job_ends_with_every_id_once(tiny_export, module_shards, first_run, tmp_path):
    out = copy_of(first_run, tmp_path)
    # as an interrupted run leaves it: a truncated shard, a temporary file, an unfinished manifest
    part = out / "shard-00002.parquet"
    part.write_bytes(part.read_bytes()[:100])
    (out / ".shard-00002.parquet.abc123.tmp").write_bytes(b"partial")
    saved = json.loads((out / MANIFEST).read_text())
    saved["complete"] = False
    (out / MANIFEST).write_text(json.dumps(saved))
    (out / "notes.txt").write_text("mine")  # an unrelated file of the user's stays
    # and a source shard changed since (same rows, other values): its output is redone too
    original = module_shards[0].read_bytes()
    os.replace(write_shards(tmp_path / "other", seed=9)[0], module_shards[0])
    try:
        again = embed(tiny_export, module_shards, out)
        assert again["run"]["encoded_shards"] == [0, 2] and again["complete"]
        ids, emb = read_out(out)
        assert ids.tolist() == list(range(TOTAL))
        np.testing.assert_allclose(emb, reference(tiny_export, module_shards), rtol=0, atol=1e-6)
    finally:
        module_shards[0].write_bytes(original)
    assert not list(out.glob(".*.tmp"))
    assert (out / "notes.txt").read_text() == "mine"


def test_foreign_out_folder_is_refused(tiny_export, module_shards, tmp_path):
    out = tmp_path / "emb"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(VsrnError, match="did not write"):
        embed(tiny_export, module_shards, out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]




def test_index_from_embeddings_equals_index_from_images(tiny_export, module_shards, first_run, tmp_path):
    """index --embeddings reads the parquet shards (no encoding) and gives the index --images gives."""
    from vsrn_deploy.search import Index, IndexConfig, build_index

    feats = tmp_path / "all.npy"
    np.save(feats, np.concatenate([np.load(p) for p in sorted(module_shards)]))
    by_images = build_index(IndexConfig(onnx_dir=str(tiny_export), images=str(feats), out=str(tmp_path / "a"),
                                        progress=False))
    by_embeddings = build_index(IndexConfig(onnx_dir=str(tiny_export), images="", out=str(tmp_path / "b"),
                                            embeddings=str(first_run[0]), progress=False))
    assert by_embeddings["images"]["count"] == by_images["images"]["count"] == TOTAL
    assert by_embeddings["images"]["features"] is None
    np.testing.assert_allclose(np.load(tmp_path / "b" / "image_embeddings.npy"),
                               np.load(tmp_path / "a" / "image_embeddings.npy"), rtol=0, atol=1e-6)
    queries = np.load(tmp_path / "a" / "image_embeddings.npy")[:5]
    with Index.open(tmp_path / "a") as a, Index.open(tmp_path / "b") as b:
        assert ([[h.id for h in hits] for hits in a.search_embeddings(queries, k=10)]
                == [[h.id for h in hits] for hits in b.search_embeddings(queries, k=10)])
        with pytest.raises(VsrnError, match="built from embeddings"):
            b.region_embeddings([0])


def test_index_embeddings_refused_when_not_this_export_or_changed(tiny_export, first_run, tmp_path):
    from vsrn_deploy.search import IndexConfig, build_index

    def build(emb):
        return build_index(IndexConfig(onnx_dir=str(tiny_export), images="", out=str(tmp_path / "idx"),
                                       embeddings=str(emb), progress=False))

    other = copy_of(first_run, tmp_path)
    saved = json.loads((other / MANIFEST).read_text())
    saved["export"]["manifest_sha256"] = "0" * 64
    (other / MANIFEST).write_text(json.dumps(saved))
    with pytest.raises(VsrnError, match="another export"):
        build(other)
    changed = copy_of(first_run, tmp_path / "c")
    part = changed / "shard-00001.parquet"
    part.write_bytes(part.read_bytes()[:-1] + b"\0")
    with pytest.raises(VsrnError, match="shard-00001.parquet changed since embed wrote it"):
        build(changed)
    saved = json.loads((first_run[0] / MANIFEST).read_text())
    saved["complete"] = False
    unfinished = copy_of(first_run, tmp_path / "u")
    (unfinished / MANIFEST).write_text(json.dumps(saved))
    with pytest.raises(VsrnError, match="incomplete"):
        build(unfinished)
    assert not (tmp_path / "idx").exists()


def _second_shard_gone_after_check(folder, monkeypatch) -> list:
    """Shards whose second file disappears right after the driver read their headers."""
    import vsrn_deploy.distributed.job as job

    parts = write_shards(folder)
    checked = job.open_shards

    def then_gone(*args, **kwargs):
        found = checked(*args, **kwargs)
        parts[1].unlink()
        return found

    monkeypatch.setattr(job, "open_shards", then_gone)
    return parts


def test_failure_on_a_worker_is_one_line(tiny_export, tmp_path, monkeypatch, ray_session):
    """A shard a worker cannot read (gone after the driver checked it, as on a node without the shared
    file system) ends the job with one error naming the file, not Ray's traceback. (The session here
    has one node, so the content check reads the shards in the driver; it is told it runs on a
    cluster, where Ray's workers read them.)"""
    import vsrn_deploy.distributed.job as job

    monkeypatch.setattr(job, "_all_here", lambda ray, cfg: False)

    parts = _second_shard_gone_after_check(tmp_path / "f", monkeypatch)
    with pytest.raises(VsrnError, match=r"failed on the local Ray \(FileNotFoundError: .*part1\.npy"):
        embed(tiny_export, parts, tmp_path / "emb")
    assert not list((tmp_path / "emb").glob("*.parquet"))


def test_unreadable_shard_on_a_one_node_session_is_one_line(tiny_export, tmp_path, monkeypatch, ray_session):
    """On a session whose only node is this machine the driver reads the shards (no Ray pass): a shard
    gone after its header was read is one error naming it, and nothing is encoded."""
    import vsrn_deploy.distributed.job as job

    assert job._all_here(ray_session, job.EmbedConfig(onnx_dir="e", images="i", out="o"))
    assert not job._all_here(ray_session, job.EmbedConfig(onnx_dir="e", images="i", out="o",
                                                          ray_address="ray://elsewhere:10001"))
    parts = _second_shard_gone_after_check(tmp_path / "f", monkeypatch)
    with pytest.raises(VsrnError, match=r"cannot read feature shard .*part1\.npy \(FileNotFoundError"):
        embed(tiny_export, parts, tmp_path / "emb")
    assert not list((tmp_path / "emb").glob("*.parquet"))


def test_engine_backend_asks_one_gpu_per_actor(monkeypatch, tmp_path):
    """The actor pool's resources follow the backend table: a backend that runs engines (trt) asks
    Ray for one GPU per actor, an export backend (ort) for none; threads are the actors' CPUs."""
    import vsrn_deploy.distributed.job as job
    from vsrn_deploy.core import backends

    asked = {}

    class Dataset:
        def map_batches(self, fn, **kwargs):
            asked.update(kwargs)
            return self

        def iter_rows(self):
            return iter(())

    class Data:
        @staticmethod
        def from_items(items, override_num_blocks):
            return Dataset()

        @staticmethod
        def ActorPoolStrategy(size):  # noqa: N802 (Ray's name)
            return ("pool", size)

    class FakeRay:
        data = Data

    shard = job.Shard(0, str(tmp_path / "a.npy"), 3, 0)
    engines = [b.name for b in backends.rows() if b.needs is backends.Needs.ENGINES]
    for backend, gpus in ((engines[0], 1), ("ort", 0)):
        cfg = EmbedConfig(onnx_dir="x", images="*.npy", out=str(tmp_path), workers=3, threads=2,
                          backend=backend)
        job._encode(FakeRay, cfg, [shard], tmp_path, [{}], {})
        assert asked["num_gpus"] == gpus and asked["num_cpus"] == 2
        assert asked["compute"] == ("pool", 1)  # no more actors than shards to encode
