"""`vsrn-deploy export` end to end on a tiny authors'-format checkpoint (exported once per session)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from vsrn_deploy.artifacts.export import read_export_manifest as read_manifest
from vsrn_deploy.artifacts.export import verify_listed_files as verify_files
from vsrn_deploy.core import contract
from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.data.synthetic_inputs import captions, text_feed
from vsrn_deploy.data.synthetic_inputs import region_features as synthetic_region_features
from vsrn_deploy.io.files import sha256_file

pytestmark = pytest.mark.export

CONTRACT_FILES = {
    "image_encoder.onnx",
    "text_encoder.onnx",
    "image_encoder.fp16.onnx",
    "text_encoder.fp16.onnx",
    "image_encoder.int8.onnx",
    "text_encoder.int8.onnx",
    "vocab.json",
    "manifest.json",
    "test_vectors",  # inputs and expected outputs for clients in other languages (examples/cpp)
    "MODEL_CARD.md",  # what the graphs are, their I/O, precisions, parity, source (listed in the manifest)
}


def test_export_succeeds_and_writes_the_contract_files(exported):
    result = exported["result"]
    assert result.exit_code == 0, result.output
    assert {p.name for p in exported["out"].iterdir()} == CONTRACT_FILES
    assert "validation passed" in result.output
    # nothing left beside the export folder (temporary folders renamed or removed)
    assert [p.name for p in exported["out"].parent.iterdir()] == ["export"]


def test_manifest_fields_and_checksums(exported):
    out = exported["out"]
    manifest = read_manifest(out)
    verify_files(out, manifest)
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == sha256_file(out / name)
        assert entry["bytes"] == (out / name).stat().st_size
    cfg = exported["model"].config
    assert manifest["config"]["embed_size"] == cfg.embed_size
    assert manifest["source"]["kind"] == "authors"
    assert manifest["source"]["sha256"] == sha256_file(exported["path"])
    assert manifest["precision"] == "all" and manifest["opset"] == 17
    assert "text_max_tokens" not in manifest  # the text graph takes any token count
    for spec in contract.ENCODERS.values():  # the manifest's I/O is the declaration's
        entry = manifest["graphs"][spec.graph]
        io = {k: entry[k] for k in ("inputs", "outputs", "dynamic_axes")}
        assert io == spec.io_spec(manifest["config"])
        assert entry["fp32"] == contract.onnx_name(spec.graph, "fp32")
    image = manifest["graphs"]["image_encoder"]
    assert image["fp32"] == "image_encoder.onnx" and image["fp16"] == "image_encoder.fp16.onnx"
    assert [t["name"] for t in image["outputs"]] == ["image_embedding", "region_embeddings"]
    assert [t["name"] for t in manifest["graphs"]["text_encoder"]["inputs"]] == ["token_ids", "lengths"]
    assert manifest["parity"]["passed"] is True and manifest["parity"]["batches"] == [1, 3, 5, 16]
    fp32 = manifest["parity"]["results"]["image_encoder.onnx/ort"]["image_embedding"]
    assert fp32["max_abs_err"] <= 1e-5
    islands = manifest["fp32_islands"]["image_encoder"]
    names = {n.name for n in onnx.load(str(out / "image_encoder.fp16.onnx")).graph.node}
    assert islands and set(islands) <= names
    assert {"torch", "onnx", "onnxruntime"} <= set(manifest["versions"])


def test_verify_files_names_a_changed_file(exported, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(exported["out"], copy)
    with open(copy / "text_encoder.onnx", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(VsrnError, match="text_encoder.onnx changed"):
        verify_files(copy, read_manifest(copy))


def test_written_fp32_graphs_reproduce_the_eager_model(exported):
    out, model = exported["out"], exported["model"]
    cfg = model.config
    k = read_manifest(out)["config"]["num_regions"]  # the authors' files do not record k: 36
    image = ort.InferenceSession(str(out / "image_encoder.onnx"), providers=["CPUExecutionProvider"])
    text = ort.InferenceSession(str(out / "text_encoder.onnx"), providers=["CPUExecutionProvider"])
    feats = synthetic_region_features(7, k, cfg.img_dim, seed=11)
    ids, lengths = text_feed(captions(9, cfg.vocab_size, max_tokens=12, seed=12)).values()
    with torch.no_grad():
        emb, regions = model.img_enc(torch.from_numpy(feats))
        txt = model.txt_enc(torch.from_numpy(ids), torch.from_numpy(lengths))
    got = image.run(None, {"region_features": feats})
    np.testing.assert_allclose(got[0], emb.numpy(), atol=1e-5)
    np.testing.assert_allclose(got[1], regions.numpy(), atol=1e-5)
    np.testing.assert_allclose(
        text.run(None, {"token_ids": ids, "lengths": lengths})[0], txt.numpy(), atol=1e-5
    )


def test_fp16_graphs_keep_float32_interfaces_and_fp16_weights(exported):
    out = exported["out"]
    for name in ("image_encoder.fp16.onnx", "text_encoder.fp16.onnx"):
        model = onnx.load(str(out / name))
        fp32 = onnx.load(str(out / name.replace(".fp16", "")))
        assert [i.type.tensor_type.elem_type for i in model.graph.input] == [
            i.type.tensor_type.elem_type for i in fp32.graph.input
        ]
        assert {o.type.tensor_type.elem_type for o in model.graph.output} == {onnx.TensorProto.FLOAT}
        big = [i for i in model.graph.initializer if np.prod(i.dims) >= 64]
        assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in big)


def test_vocab_json_is_the_given_vocabulary(exported):
    data = json.loads((exported["out"] / "vocab.json").read_text())
    original = json.loads(exported["vocab"].read_text())
    assert data == original
