"""Rewriting a folder the tool wrote replaces only the files its previous manifest lists: user files,
folders and symlinks at depth 1 to 3 survive a rewrite of an export, an index and a Triton repository
(and `triton-repo --overwrite` into a user's folder), while the tool's own stale files go."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from artifacts_helpers import plant, planted_state

from vsrn_deploy.artifacts import export as export_artifact
from vsrn_deploy.artifacts import index as index_artifact
from vsrn_deploy.core.errors import VsrnError


def _index(world, out: Path, captions: bool = True) -> dict:
    from vsrn_deploy.search import IndexConfig, build_index

    return build_index(IndexConfig(onnx_dir=str(world["export"]), images=str(world["images"]),
                                   boxes=str(world["boxes"]),
                                   captions=str(world["captions"]) if captions else None,
                                   out=str(out), batch=16, progress=False))


def _repo(export_dir: Path, out: Path, **kw) -> Path:
    from vsrn_deploy.serving.triton_repo import TritonRepoConfig, build_model_repository

    return build_model_repository(TritonRepoConfig(onnx_dir=export_dir, out=out, **kw))


@pytest.mark.export
def test_export_rewrite_keeps_user_files_and_drops_its_own_stale_graphs(world, export_copy):
    from vsrn_deploy.export import ExportConfig, export_model

    planted = plant(export_copy)
    planted.update({f"test_vectors/{k}": v for k, v in plant(export_copy / "test_vectors").items()})
    before = planted_state(export_copy, planted)
    export_model(world["ckpt"], export_copy, ExportConfig(precision="fp32", max_batch=8))
    assert planted_state(export_copy, planted) == before
    manifest = export_artifact.verify_export(export_copy)
    assert not (export_copy / "image_encoder.fp16.onnx").exists()  # listed before, not written now
    assert not (export_copy / "text_encoder.int8.onnx").exists()
    assert "image_encoder.fp16.onnx" not in manifest["files"]
    assert (export_copy / "test_vectors" / "index.txt").is_file()


def test_index_rewrite_keeps_user_files(world, tmp_path):
    out = tmp_path / "index"
    _index(world, out)
    planted = plant(out)
    before = planted_state(out, planted)
    manifest = _index(world, out, captions=False)
    assert planted_state(out, planted) == before
    # the earlier index's caption files were its own: gone with the rewrite; every listed file checks
    assert not (out / index_artifact.CAPTION_INDEX).exists()
    assert set(manifest["files"]) <= {p.name for p in out.iterdir()}
    index_artifact.open_index_manifest(out)


def test_index_keeps_a_same_named_user_file_it_did_not_write(world, tmp_path):
    out = tmp_path / "index"
    _index(world, out, captions=False)
    (out / index_artifact.CAPTIONS).write_text("my own list\n")  # not in the earlier index.json
    with pytest.raises(VsrnError, match="did not write; move it away$"):  # index has no --overwrite
        _index(world, out)
    assert (out / index_artifact.CAPTIONS).read_text() == "my own list\n"


def test_triton_rewrite_keeps_user_files_in_model_folders(world, tmp_path):
    out = tmp_path / "repo"
    _repo(world["export"], out)
    planted = plant(out)
    for rel, text in (("image_encoder/2/model.onnx", "a version I serve"), ("text_encoder/notes.txt", "n"),
                      ("tokenizer/1/extra/deep.txt", "deep")):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text)
        planted[rel] = text
    os.symlink(out / "NOTES.md", out / "image_encoder" / "1" / "notes-link")
    planted["image_encoder/1/notes-link"] = f"-> {out / 'NOTES.md'}"
    before = planted_state(out, planted)
    _repo(world["export"], out, precision="fp16")  # its own repository: rewritten without --overwrite
    assert planted_state(out, planted) == before
    marker = json.loads((out / "vsrn_repo.json").read_text())
    assert marker["precision"] == "fp16" and "image_encoder/1/model.onnx" in marker["files"]
    assert "image_encoder/2/model.onnx" not in marker["files"]


def test_triton_overwrite_into_a_users_folder_replaces_only_same_named_files(world, tmp_path):
    out = tmp_path / "served"
    for rel in ("image_encoder/2/model.onnx", "image_encoder/1/keep.txt", "caption_encoder/notes.md"):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(rel)
    (out / "image_encoder" / "1" / "model.onnx").write_text("replaced: --overwrite names it")
    with pytest.raises(VsrnError, match="--overwrite"):
        _repo(world["export"], out)
    _repo(world["export"], out, overwrite=True)
    for rel in ("image_encoder/2/model.onnx", "image_encoder/1/keep.txt", "caption_encoder/notes.md"):
        assert (out / rel).read_text() == rel
    graph = (world["export"] / "image_encoder.onnx").read_bytes()
    assert (out / "image_encoder/1/model.onnx").read_bytes() == graph


def test_triton_repository_of_an_older_version_keeps_user_files(world, tmp_path):
    out = tmp_path / "repo"
    _repo(world["export"], out)
    marker = json.loads((out / "vsrn_repo.json").read_text())
    del marker["files"]  # as written before repositories listed their files
    (out / "vsrn_repo.json").write_text(json.dumps(marker))
    (out / "image_encoder" / "2").mkdir()
    (out / "image_encoder" / "2" / "model.onnx").write_text("mine")
    _repo(world["export"], out)
    assert (out / "image_encoder" / "2" / "model.onnx").read_text() == "mine"


def test_a_folder_in_the_way_of_a_file_is_refused_and_nothing_changes(world, tmp_path):
    sys.path.insert(0, str(Path(__file__).parents[1] / "system" / "faults"))
    from faultkit import snapshot

    out = tmp_path / "repo"
    _repo(world["export"], out)
    (out / "README.md").unlink()
    (out / "README.md").mkdir()  # a user's folder where the repository writes a file
    (out / "README.md" / "mine.txt").write_text("keep")
    before = snapshot(out)
    with pytest.raises(VsrnError, match="is a folder where"):
        _repo(world["export"], out)
    assert snapshot(out) == before
