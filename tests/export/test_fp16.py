"""FP16 graphs: islands chosen from data keep a Flickr30K-style model inside the FP16 range."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from export_helpers import tiny_model

from vsrn_deploy.core.errors import CheckFailed
from vsrn_deploy.data.synthetic_inputs import region_features as synthetic_region_features
from vsrn_deploy.evaluation.compare import row_cosine
from vsrn_deploy.export import emulate, fp16
from vsrn_deploy.export.exporter import ExportConfig, export_loaded
from vsrn_deploy.export.graphs import build_image_graph
from vsrn_deploy.model.deploy import ImageEncoderDeploy

pytestmark = pytest.mark.export

F30K = {"fc_norm": False, "final_bn": True, "data_name": "f30k_precomp", "gcn_layers": 1}


def _hot_f30k_model():
    """No fc normalisation and a large trained BN scale: GCN activations far beyond 65504."""
    model = tiny_model(0, **F30K)
    model.img_enc.Rs_GCN_1.W[1].weight.data.fill_(2000.0)
    return model


def test_ranges_exceed_fp16_and_islands_cover_them():
    model = _hot_f30k_model()
    graph = build_image_graph(ImageEncoderDeploy.from_encoder(model.img_enc))
    feats = synthetic_region_features(32, model.config.num_regions, model.config.img_dim, seed=7)
    ranges = fp16.record_ranges(graph, [{"region_features": feats}])
    assert max(ranges.values()) > fp16.FP16_MAX
    islands = fp16.choose_islands(graph, ranges)
    limit = fp16.FP16_MAX / fp16.DEFAULT_MARGIN
    for node in graph.graph.node:  # every node touching a large tensor is an island
        if any(ranges.get(t, 0.0) >= limit for t in list(node.input) + list(node.output)):
            assert node.name in islands
    assert any(reason.startswith("range") for reason in islands.values())
    # the strict executor reproduces the FP32 graph in FP32 and overflows without islands
    ref = emulate.run_strict(graph, {"region_features": feats})
    with torch.no_grad():
        np.testing.assert_allclose(
            ref["image_embedding"], model.img_enc(torch.from_numpy(feats))[0].numpy(), atol=1e-5
        )
    bare = emulate.run_strict(
        fp16.convert_to_fp16(graph, fp16.choose_islands(graph, ranges, use_policy=False, use_ranges=False)),
        {"region_features": feats},
    )
    # overflow: inf, NaN, or a sum of squares of inf that zeroes every region
    cosine = row_cosine(np.nan_to_num(bare["image_embedding"]), ref["image_embedding"])
    assert cosine.min() < 0.9995


def test_hot_model_exports_with_islands_and_fails_without(tmp_path, monkeypatch):
    model = _hot_f30k_model()
    cfg = ExportConfig(precision="fp16", max_batch=8, retrieval_images=500)
    result = export_loaded(model, None, tmp_path / "ok", cfg)
    assert any(r.startswith("range") for r in result.islands["image_encoder"].values())
    assert result.manifest["fp32_islands"]["image_encoder"] == list(result.islands["image_encoder"])
    assert (
        result.parity["results"]["image_encoder.fp16.onnx/strict-fp16"]["image_embedding"]["min_cosine"]
        >= 0.9995
    )

    bare = ExportConfig(precision="fp16", max_batch=8, retrieval_images=500)
    monkeypatch.setattr(fp16, "choose_islands",
                        functools.partial(fp16.choose_islands, use_policy=False, use_ranges=False))
    with pytest.raises(CheckFailed, match="strict-fp16"):
        export_loaded(model, None, tmp_path / "bare", bare)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok"]  # nothing half-written


def test_convert_keeps_islands_fp32_and_the_rest_fp16():
    model = tiny_model(0)
    graph = build_image_graph(ImageEncoderDeploy.from_encoder(model.img_enc))
    islands = {"gcn1/affinity/MatMul", "image_embedding", "region_embeddings"}
    converted = fp16.convert_to_fp16(graph, islands)
    feats = synthetic_region_features(2, model.config.num_regions, model.config.img_dim, seed=1)
    import onnx

    types = {
        vi.name: vi.type.tensor_type.elem_type
        for vi in onnx.shape_inference.infer_shapes(converted).graph.value_info
    }
    assert types["gcn1/affinity/MatMul:0"] == onnx.TensorProto.FLOAT
    assert types["gcn1/qkv/MatMul:0"] == onnx.TensorProto.FLOAT16
    out = emulate.run_strict(converted, {"region_features": feats})
    assert out["image_embedding"].dtype == np.float32
