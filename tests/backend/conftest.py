"""Fixtures for the runner tests: a tiny model and its graphs (built once per session)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from vsrn_deploy.model.config import VSRNConfig
from vsrn_deploy.model.vsrn import VSRN


@pytest.fixture(scope="session")
def tiny_model() -> VSRN:
    torch.manual_seed(0)
    return VSRN(VSRNConfig.tiny(), with_caption=False).eval()


@pytest.fixture(scope="session")
def tiny_graphs(tiny_model: VSRN, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FP32 and FP16 graphs of the tiny model, written by the exporter's graph builders."""
    from vsrn_deploy.data.synthetic_inputs import captions, region_features, text_feed
    from vsrn_deploy.export import fp16
    from vsrn_deploy.export.graphs import build_image_graph, build_text_graph
    from vsrn_deploy.model.deploy import ImageEncoderDeploy, TextEncoderDeploy

    out = tmp_path_factory.mktemp("tiny_graphs")
    cfg = tiny_model.config
    image = build_image_graph(ImageEncoderDeploy.from_encoder(tiny_model.img_enc))
    text = build_text_graph(TextEncoderDeploy.from_encoder(tiny_model.txt_enc))
    calib = {"image_encoder": [{"region_features": region_features(8, cfg.num_regions, cfg.img_dim)}],
             "text_encoder": [text_feed(captions(10, cfg.vocab_size, min_tokens=3))]}
    for graph, name in ((image, "image_encoder"), (text, "text_encoder")):
        onnx.save(graph, out / f"{name}.onnx")
        islands = fp16.choose_islands(graph, fp16.record_ranges(graph, calib[name]))
        onnx.save(fp16.convert_to_fp16(graph, islands), out / f"{name}.fp16.onnx")
    return out


@pytest.fixture()
def image_feed(tiny_model: VSRN) -> dict[str, np.ndarray]:
    from vsrn_deploy.data.synthetic_inputs import region_features

    cfg = tiny_model.config
    return {"region_features": region_features(3, cfg.num_regions, cfg.img_dim, seed=5)}


@pytest.fixture()
def text_feed(tiny_model: VSRN) -> dict[str, np.ndarray]:
    from vsrn_deploy.data.synthetic_inputs import captions, text_feed

    caps = captions(5, tiny_model.config.vocab_size, min_tokens=3, seed=5)  # mixed lengths
    return text_feed(caps)
