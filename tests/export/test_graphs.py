"""The ONNX graphs: structure (deploy form, TensorRT-friendly) and equality with the eager model."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from export_helpers import tiny_model

from vsrn_deploy.export import graph_checks
from vsrn_deploy.export.graphs import build_image_graph, build_text_graph
from vsrn_deploy.model.deploy import ImageEncoderDeploy, TextEncoderDeploy


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"fc_norm": False, "final_bn": True, "data_name": "f30k_precomp"},
        {"gcn_layers": 0, "img_pool": "mean"},
        {"num_regions": 1},
    ],
)
def test_image_graph_has_no_recurrent_or_batchnorm_nodes(overrides):
    model = tiny_model(0, **overrides)
    graph = build_image_graph(ImageEncoderDeploy.from_encoder(model.img_enc))
    ops = {n.op_type for n in graph.graph.node}
    assert not ops & graph_checks.FORBIDDEN_IMAGE_OPS
    assert graph_checks.graph_problems(graph, forbidden=graph_checks.FORBIDDEN_IMAGE_OPS) == []
    if overrides.get("gcn_layers", 2):
        # one projection matmul per GCN layer, one unrolled step per region
        assert sum(n.name.endswith("/qkv/MatMul") for n in graph.graph.node) == model.config.gcn_layers
    if model.config.img_pool == "gru":
        steps = {n.name.split("/")[1] for n in graph.graph.node if n.name.startswith("gru/step")}
        assert len(steps) == model.config.num_regions
    used = {i for n in graph.graph.node for i in n.input}
    assert [i.name for i in graph.graph.initializer if i.name not in used] == []  # no dead weights


def test_graph_checks_flag_a_gru_with_the_wrong_reset_semantics():
    model = tiny_model(0)
    graph = build_text_graph(TextEncoderDeploy.from_encoder(model.txt_enc))
    gru = next(n for n in graph.graph.node if n.op_type == "GRU")
    assert (
        onnx.helper.get_attribute_value(next(a for a in gru.attribute if a.name == "linear_before_reset"))
        == 1
    )
    for attr in gru.attribute:
        if attr.name == "linear_before_reset":
            attr.i = 0
    assert any("linear_before_reset=0" in p for p in graph_checks.graph_problems(graph))
    image = build_image_graph(ImageEncoderDeploy.from_encoder(model.img_enc))
    assert any(
        "GRU" in p for p in graph_checks.graph_problems(graph, forbidden=graph_checks.FORBIDDEN_IMAGE_OPS)
    )
    assert graph_checks.graph_problems(image, forbidden=graph_checks.FORBIDDEN_IMAGE_OPS) == []


@pytest.mark.parametrize("text_layers", [1, 2])
def test_text_graph_rows_in_any_order_and_any_token_count(text_layers):
    model = tiny_model(2, text_layers=text_layers)
    session = _session(build_text_graph(TextEncoderDeploy.from_encoder(model.txt_enc)))
    rng = np.random.default_rng(0)
    lengths = np.array([3, 2, 9, 5, 9, 4], dtype=np.int64)  # unsorted, shortest and longest
    for pad in (0, 4):  # extra padding must not change anything
        ids = np.zeros((len(lengths), int(lengths.max()) + pad), dtype=np.int64)
        for i, n in enumerate(lengths):
            ids[i, :n] = rng.integers(4, model.config.vocab_size, size=n)
            ids[i, 0], ids[i, n - 1] = 1, 2
        got = session.run(None, {"token_ids": ids, "lengths": lengths})[0]
        with torch.no_grad():
            ref = model.txt_enc(torch.from_numpy(ids), torch.from_numpy(lengths)).numpy()
        np.testing.assert_allclose(got, ref, atol=1e-5)
        # each row alone gives the same embedding as in the batch
        for i in (1, 2):
            alone = session.run(
                None, {"token_ids": ids[i : i + 1, : lengths[i]], "lengths": lengths[i : i + 1]}
            )[0]
            np.testing.assert_allclose(alone[0], got[i], atol=1e-5)


def test_image_graph_dynamic_batch_only():
    model = tiny_model(0)
    graph = build_image_graph(ImageEncoderDeploy.from_encoder(model.img_enc))
    dims = [
        [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]
        for vi in list(graph.graph.input) + list(graph.graph.output)
    ]
    cfg = model.config
    assert dims == [
        ["batch", cfg.num_regions, cfg.img_dim],
        ["batch", cfg.embed_size],
        ["batch", cfg.num_regions, cfg.embed_size],
    ]
