"""Fixtures for the engine tests: a fake tensorrt (see fake_tensorrt.py) and stand-in graphs."""

from __future__ import annotations

import sys
from pathlib import Path

import onnx
import pytest
from fake_tensorrt import FakeTrt, make_graph


@pytest.fixture()
def fake_trt(monkeypatch: pytest.MonkeyPatch):
    """Factory: install a FakeTrt of the given version as `tensorrt` in sys.modules."""

    def install(version: str) -> FakeTrt:
        trt = FakeTrt(version)
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        return trt

    return install


@pytest.fixture()
def export_dir(tmp_path: Path) -> Path:
    """Stand-in graphs with the contract's names (the fake parser reads only inputs and nodes)."""
    from onnx import TensorProto

    folder = tmp_path / "export"
    folder.mkdir()
    f, i64 = TensorProto.FLOAT, TensorProto.INT64
    for tag in ("", ".fp16"):
        image = make_graph([("region_features", f, ["batch", 6, 24])],
                       [("/fc/MatMul", "Identity", ["region_features"], ["fc_out"]),
                        ("/norm/ReduceSum", "Identity", ["fc_out"], ["image_embedding"]),
                        ("/gcn/MatMul", "Identity", ["fc_out"], ["region_embeddings"])],
                       ["image_embedding", "region_embeddings"], "image" + tag)
        text = make_graph([("token_ids", i64, ["batch", "tokens"]), ("lengths", i64, ["batch"])],
                      [("/embed/Gather", "Identity", ["token_ids"], ["emb"]),
                       ("/norm/Div", "Identity", ["emb"], ["text_embedding"])],
                      ["text_embedding"], "text" + tag)
        onnx.save(image, folder / f"image_encoder{tag}.onnx")
        onnx.save(text, folder / f"text_encoder{tag}.onnx")
    return folder
