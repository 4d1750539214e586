"""Each kind's manifest dataclass gives back exactly the JSON it read (keys, values, order), older
manifests without some keys and newer ones with extra keys included; versions are handled as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vsrn_deploy.artifacts import base, engines, export, index, triton
from vsrn_deploy.core.errors import VsrnError


def _round_trip(cls, data: dict) -> dict:
    back = cls.from_dict(json.loads(json.dumps(data))).to_dict()
    assert back == data
    assert list(back) == list(data)  # the same key order: a rewrite changes no byte
    return back


def test_export_manifest_round_trips(world):
    data = json.loads((world["export"] / "manifest.json").read_text())
    _round_trip(export.ExportManifest, data)
    parsed = export.ExportManifest.from_dict(data)
    assert parsed.files == data["files"] and parsed.extra == {}
    assert parsed.written_by == {"tool": "vsrn-deploy", "kind": "export"}


def test_older_and_newer_export_manifests_keep_every_key():
    older = {"config": {"embed_size": 8}, "files": {}, "graphs": {}, "parity": {"passed": True},
             "versions": {"vsrn_deploy": "0.1"}}  # no format_version, no marker
    parsed = export.ExportManifest.from_dict(older)
    assert parsed.format_version is base.ABSENT and "format_version" not in parsed.to_dict()
    _round_trip(export.ExportManifest, older)
    newer = {**older, "format_version": 1, "something_new": [1, 2.5, None]}
    assert export.ExportManifest.from_dict(newer).extra == {"something_new": [1, 2.5, None]}
    _round_trip(export.ExportManifest, newer)


def test_index_manifest_and_repo_marker_and_sidecar_round_trip():
    _round_trip(index.IndexManifest, {
        "format": index.FORMAT, "format_version": 1, "export": {"path": "/e", "manifest_sha256": "ab"},
        "backend": "ort", "images": {"count": 3}, "files": {"images.faiss": {"bytes": 1, "sha256": "c",
                                                                            "what": "image index"}},
        "seconds": 0.25, "created": "2026-01-01T00:00:00Z"})
    _round_trip(triton.RepoMarker, {
        "format_version": 1, "written_by": {"tool": "vsrn-deploy", "kind": triton.REPO_KIND},
        "backend": "onnxruntime", "models": {"image_encoder": {"source": "x", "sha256": "d"}},
        "files": {"README.md": {"sha256": "e", "bytes": 2}}})
    side = dict(sorted({"format_version": 1, "encoder": "image", "precision": "fp16",
                        "tensorrt_version": "10.13.0", "gpu": {"name": "H200"}, "profiles": [],
                        "plan_sha256": "f", "plan": "image_encoder.fp16.plan", "onnx_dir": "export"}.items()))
    _round_trip(engines.Sidecar, side)


def test_newer_formats_are_refused_as_before(export_copy, tmp_path):
    data = json.loads((export_copy / "manifest.json").read_text())
    (export_copy / "manifest.json").write_text(json.dumps({**data, "format_version": 2}))
    with pytest.raises(VsrnError, match="newer than this vsrn-deploy understands"):
        export.read_export_manifest(export_copy)
    folder = tmp_path / "idx"
    folder.mkdir()
    (folder / index.MANIFEST).write_text(json.dumps({"format": index.FORMAT, "format_version": 9,
                                                     "files": {}, "export": {}}))
    with pytest.raises(VsrnError, match="newer vsrn-deploy"):
        index.open_index_manifest(folder)


def test_unreadable_manifests_name_the_rebuild_command(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(VsrnError, match="not readable JSON; rebuild the export with: vsrn-deploy export"):
        export.read_export_manifest(tmp_path)
    plan = Path(tmp_path / "image_encoder.fp16.plan")
    plan.write_bytes(b"x")
    plan.with_suffix(".json").write_text("[1, 2]")
    with pytest.raises(VsrnError, match="not a vsrn-deploy engine sidecar.*build-engine"):
        engines.read_sidecar(plan)


def test_provenance_and_model_card(world):
    import onnx

    manifest = export.verify_export(world["export"])  # the card is listed, so it is checked too
    assert export.MODEL_CARD in manifest["files"]
    card = (world["export"] / export.MODEL_CARD).read_text()
    for graph in manifest["graphs"].values():
        for precision in ("fp32", "fp16", "int8"):
            name = graph[precision]
            assert f"`{name}`" in card
            props = {p.key: p.value for p in onnx.load(str(world["export"] / name)).metadata_props}
            from vsrn_deploy import __version__

            want = {"producer": "vsrn-deploy", "producer_version": __version__,
                    "manifest_format_version": str(export.FORMAT_VERSION),
                    "source_sha256": manifest["source"]["sha256"]}
            assert {key: props.get(key) for key in want} == want, name
    assert manifest["source"]["sha256"] in card
    for name in ("region_features", "image_embedding", "region_embeddings", "token_ids", "lengths",
                 "text_embedding"):
        assert f"`{name}`" in card
    assert "passed: True" in card


def test_the_layer_sits_above_io_and_core_only():
    import subprocess
    import sys

    above = ("backend", "export", "search", "serving", "jobs", "bench", "engine", "cli", "model", "training")
    code = ("import sys, vsrn_deploy.artifacts\n"
            f"above = {above!r}\n"
            "heavy = ('torch', 'onnx', 'onnxruntime', 'faiss')\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy\n"
            "             or (m.startswith('vsrn_deploy.') and m.split('.')[1] in above)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_demo_run_folders_are_recognised_with_and_without_the_marker(tmp_path):
    from vsrn_deploy.artifacts import run

    (tmp_path / run.DEMO_SUMMARY).write_text(json.dumps({"config": {}, "stages": {}}))  # before the marker
    assert run.demo_summary(tmp_path) == {"config": {}, "stages": {}}
    (tmp_path / run.DEMO_SUMMARY).write_text(json.dumps({"written_by": base.marker("demo")}))
    assert run.demo_summary(tmp_path) is not None
    (tmp_path / run.DEMO_SUMMARY).write_text(json.dumps({"written_by": base.marker("export")}))
    assert run.demo_summary(tmp_path) is None
