"""Fixtures for the engine tests: tensorrt as the fake derived from the real bindings, stand-in graphs."""

from __future__ import annotations

import sys
from pathlib import Path

import onnx
import pytest
from fake_tensorrt import make_graph
from trt_behaviour import derived_trt
from trt_surface import DerivedTrt


@pytest.fixture()
def fake_trt(monkeypatch: pytest.MonkeyPatch):
    """Factory: `fake_trt(10)` / `fake_trt(11)` installs as `tensorrt` the fake derived from the real
    bindings of that major version (trt_surface.DerivedTrt); after the test, no call may have
    mismatched the real API, even one the code under test caught."""
    made: list[DerivedTrt] = []

    def install(major: int) -> DerivedTrt:
        try:
            trt = derived_trt(major)
        except RuntimeError as exc:  # the set-up step did not run: a broken set-up, not a skip
            pytest.fail(str(exc))
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        made.append(trt)
        return trt

    yield install
    for trt in made:
        assert trt.violations == [], (
            f"calls the real TensorRT {trt.__version__} API rejects: {trt.violations}")


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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that run on the derived TensorRT fake belong to the trt_api layer (`pytest -m trt_api`)."""
    for item in items:
        if "fake_trt" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.trt_api)
