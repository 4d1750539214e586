"""Stand-in graphs for the trt_api layer (the same ones the engine tests use)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest


@pytest.fixture()
def export_dir_trt(tmp_path: Path) -> Path:
    from onnx import TensorProto, helper

    folder = tmp_path / "export"
    folder.mkdir()

    def graph(inputs, nodes, outputs, tag):
        g = helper.make_graph(
            [helper.make_node(op, ins, outs, name=name) for name, op, ins, outs in nodes], f"g_{tag}",
            [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
            [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs])
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])

    f, i64 = TensorProto.FLOAT, TensorProto.INT64
    for tag in ("", ".fp16"):
        onnx.save(graph([("region_features", f, ["batch", 6, 24])],
                        [("/fc/MatMul", "Identity", ["region_features"], ["fc_out"]),
                         ("/norm/ReduceSum", "Identity", ["fc_out"], ["image_embedding"]),
                         ("/gcn/MatMul", "Identity", ["fc_out"], ["region_embeddings"])],
                        ["image_embedding", "region_embeddings"], "image" + tag),
                  folder / f"image_encoder{tag}.onnx")
        onnx.save(graph([("token_ids", i64, ["batch", "tokens"]), ("lengths", i64, ["batch"])],
                        [("/embed/Gather", "Identity", ["token_ids"], ["emb"]),
                         ("/norm/Div", "Identity", ["emb"], ["text_embedding"])],
                        ["text_embedding"], "text" + tag),
                  folder / f"text_encoder{tag}.onnx")
    return folder
