"""index.json's `store` is a declared field (no longer an unknown key kept in `extra`), and the
embeddings folder is a declared kind; both read and write the same JSON as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vsrn_deploy.artifacts import base, embeddings, index
from vsrn_deploy.core.errors import VsrnError

MILVUS = {"name": "milvus", "uri": "/tmp/m.db", "collection": "vsrn_idx",
          "caption_collection": "vsrn_idx_captions", "index_type": "FLAT", "metric": "IP"}


def _index_json(store: dict | None) -> dict:
    """An index.json in the key order `search.build.build_index` writes (store only for Milvus)."""
    data = {"format": index.FORMAT, "format_version": 1, "export": {"path": "/e", "manifest_sha256": "ab"},
            "backend": "ort", "vocab": {"file": "vocab.json", "sha256": "v", "words": 9},
            "images": {"count": 3}, "captions": None, "embed_dim": 8,
            "metric": "inner product of l2-normalised embeddings", "kind": "flat", "params": {},
            "caption_kind": None, "recall_at_10": None}
    if store is not None:
        data["store"] = store
    data.update({"files": {"image_embeddings.npy": {"bytes": 1, "sha256": "c", "what": "image embeddings"}},
                 "seconds": 0.5, "created": "2026-01-01T00:00:00Z"})
    return data


def _same_json(cls, data: dict) -> base.Manifest:
    parsed = cls.from_dict(json.loads(json.dumps(data)))
    assert json.dumps(parsed.to_dict()) == json.dumps(data)  # keys, values and order: the same bytes
    return parsed


def test_index_store_is_a_field_not_an_unknown_key():
    parsed = _same_json(index.IndexManifest, _index_json(MILVUS))
    assert parsed.store == MILVUS and parsed.extra == {}
    assert parsed.store_name == "milvus"


def test_older_and_faiss_index_json_without_store_read_and_write_the_same():
    parsed = _same_json(index.IndexManifest, _index_json(None))
    assert parsed.store is base.ABSENT and "store" not in parsed.to_dict()
    assert parsed.store_name == "faiss" and parsed.extra == {}


def test_a_fresh_index_manifest_writes_keys_in_build_order():
    data = _index_json(MILVUS)
    fresh = index.IndexManifest(**{name: data[key] for name, key in index.IndexManifest._names()})
    assert list(fresh.to_dict()) == list(data)
    assert index.IndexManifest(**{name: data[key] for name, key in index.IndexManifest._names()
                                  if key in _index_json(None)}).to_dict() == _index_json(None)


def _embeddings_json(complete: bool = True) -> dict:
    """An embeddings.json as `vsrn-deploy embed` writes it (distributed.job.embed)."""
    return embeddings.new_manifest(
        export={"path": "/e", "manifest_sha256": "ab"}, backend="ort", embed_dim=8, regions=4, feature_dim=16,
        count=5, complete=complete,
        shards=[{"source": "/s/a.npy", "source_sha256": "1", "rows": 3, "first_id": 0,
                 "file": "shard-00000.parquet", "sha256": "x", "bytes": 10},
                {"source": "/s/b.npy", "source_sha256": "2", "rows": 2, "first_id": 3,
                 "file": "shard-00001.parquet", "sha256": None, "bytes": None}],
        run={"workers": 1, "threads": 1, "batch": 32, "ray_address": None, "seconds": None},
        created="2026-01-01T00:00:00Z")


def test_embeddings_manifest_is_written_as_before():
    data = _embeddings_json()
    before = {"written_by": {"tool": "vsrn-deploy", "kind": "embeddings"}, "format": embeddings.FORMAT,
              "format_version": 1, **{k: v for k, v in data.items()
                                      if k not in ("written_by", "format", "format_version")}}
    assert json.dumps(data) == json.dumps(before)
    parsed = _same_json(embeddings.EmbeddingsManifest, data)
    assert parsed.extra == {} and parsed.count == 5 and parsed.written_by == base.marker("embeddings")
    newer = {**data, "something_new": [1]}
    assert _same_json(embeddings.EmbeddingsManifest, newer).extra == {"something_new": [1]}


def test_embeddings_kind_is_declared_like_the_others():
    kind = embeddings.KIND
    assert isinstance(kind, base.Kind)
    assert (kind.name, kind.manifest_name, kind.overwrite_flag) == ("embeddings", "embeddings.json", None)
    assert kind.rebuild_command("EMB") == "vsrn-deploy embed --onnx-dir EXPORT --images 'GLOB' --out EMB"
    assert list(kind.owned_files(_embeddings_json())) == ["shard-00000.parquet", "shard-00001.parquet"]
    assert list(kind.owned_files({"shards": [{"file": 3}, "junk", {}]})) == []
    assert list(kind.owned_files({"shards": "junk"})) == []


def test_embeddings_folder_recognised_and_refused_by_the_declared_kind(tmp_path: Path):
    folder = tmp_path / "emb"
    folder.mkdir()
    (folder / embeddings.MANIFEST).write_text(json.dumps(_embeddings_json(complete=False)))
    assert embeddings.read_manifest(folder) == _embeddings_json(complete=False)
    with pytest.raises(VsrnError, match=r"incomplete .*run again: vsrn-deploy embed --onnx-dir EXPORT "
                                        r"--images 'GLOB' --out " + str(folder)):
        embeddings.open_embeddings(folder, "ab", "/e")
    other = {**_embeddings_json(), "written_by": base.marker("index")}
    (folder / embeddings.MANIFEST).write_text(json.dumps(other))
    assert embeddings.read_manifest(folder) is None
