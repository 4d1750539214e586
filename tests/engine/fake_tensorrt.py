"""Test helpers for the engine tests: export folders (manifest + stand-in graphs).

TensorRT itself is faked by tests/trt_surface.py (its surface derived from the real bindings) with
the behaviour in tests/trt_behaviour.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx


def write_manifest(folder: Path, files: list[str], islands: dict[str, list[str]] | None = None) -> dict:
    """A manifest in the export's format for graphs already in `folder`."""
    import hashlib

    manifest = {
        "format_version": 1,
        "files": {f: {"sha256": hashlib.sha256((folder / f).read_bytes()).hexdigest(),
                      "bytes": (folder / f).stat().st_size} for f in files},
        "graphs": {g: {"fp32": f"{g}.onnx",
                       **({"fp16": f"{g}.fp16.onnx"} if f"{g}.fp16.onnx" in files else {})}
                   for g in ("image_encoder", "text_encoder")},
        "fp32_islands": islands or {},
        "source": {"path": "ckpt.pth", "sha256": "0" * 64, "kind": "vsrn-deploy"},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def make_graph(inputs: list[tuple[str, int, list]], nodes: list[tuple[str, str, list[str], list[str]]],
           outputs: list[str], tag: str) -> onnx.ModelProto:
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node(op, ins, outs, name=name) for name, op, ins, outs in nodes], f"g_{tag}",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


