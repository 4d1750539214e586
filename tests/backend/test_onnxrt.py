"""ONNX Runtime runners: graph lookup, providers, threads, input checks, parity with torch."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vsrn_deploy.backend.feeds import check_feed
from vsrn_deploy.backend.onnxrt import OrtRunner, graph_path
from vsrn_deploy.backend.registry import make_runner
from vsrn_deploy.core.errors import VsrnError


def test_graph_path_prefers_manifest_names_and_checks_their_sha256(tmp_path):
    import hashlib

    (tmp_path / "img.onnx").write_bytes(b"x")
    files = {"img.onnx": {"sha256": hashlib.sha256(b"x").hexdigest(), "bytes": 1}}
    (tmp_path / "manifest.json").write_text(json.dumps({"files": files,
                                                        "graphs": {"image_encoder": {"fp32": "img.onnx"}}}))
    assert graph_path(tmp_path, "image", "fp32").name == "img.onnx"
    with pytest.raises(VsrnError, match="--precision fp16"):
        graph_path(tmp_path, "image", "fp16")
    (tmp_path / "img.onnx").write_bytes(b"y")  # same size, other bytes: refused before any runner
    with pytest.raises(VsrnError, match="img.onnx changed since export"):
        graph_path(tmp_path, "image", "fp32")


def test_graph_path_bad_manifest_is_a_clear_error(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(VsrnError, match="not readable JSON; rebuild the export with: vsrn-deploy export"):
        graph_path(tmp_path, "text", "fp32")
    (tmp_path / "manifest.json").write_text(json.dumps({"graphs": {}}))  # no file list: nothing to check
    with pytest.raises(VsrnError, match="not a vsrn-deploy export manifest"):
        graph_path(tmp_path, "text", "fp32")


def test_ort_matches_torch_and_reports_float32(tiny_model, tiny_graphs, image_feed, text_feed):
    with make_runner("torch", "image", model=tiny_model) as ref_i, \
            make_runner("torch", "text", model=tiny_model) as ref_t:
        ref = {**ref_i.infer(image_feed), **ref_t.infer(text_feed)}
    with make_runner("ort", "image", onnx_dir=tiny_graphs, threads=1) as ri, \
            make_runner("ort", "text", onnx_dir=tiny_graphs, threads=1) as rt:
        assert ri.session.get_session_options().intra_op_num_threads == 1
        got = {**ri.infer(image_feed), **rt.infer(text_feed)}
    assert set(got) == {"image_embedding", "region_embeddings", "text_embedding"}
    for name, value in got.items():
        assert value.dtype == np.float32
        np.testing.assert_allclose(value, ref[name], atol=1e-5, rtol=0)


def test_ort_fp16_close_to_torch(tiny_model, tiny_graphs, image_feed):
    with make_runner("torch", "image", model=tiny_model) as ref, \
            make_runner("ort-fp16", "image", onnx_dir=tiny_graphs) as r16:
        a, b = ref.infer(image_feed)["image_embedding"], r16.infer(image_feed)["image_embedding"]
    assert r16.name == "ort-fp16:image"
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.999
    assert np.abs(a - b).max() > 0  # it really ran FP16


def test_missing_cuda_provider_is_a_clear_error(tiny_graphs):
    runner = OrtRunner("image", tiny_graphs / "image_encoder.onnx", device="cuda")
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA; the error path cannot be reached")
    with pytest.raises(VsrnError, match="onnxruntime-gpu"):
        runner.activate()


def test_wrong_graph_for_encoder(tiny_graphs):
    with pytest.raises(VsrnError, match="lacks inputs"):
        OrtRunner("text", tiny_graphs / "image_encoder.onnx").activate()


def test_garbage_graph_is_a_clear_error(tmp_path):
    bad = tmp_path / "image_encoder.onnx"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(VsrnError, match="cannot load"):
        OrtRunner("image", bad).activate()


def test_check_feed_rejects_bad_inputs():
    with pytest.raises(VsrnError, match="missing"):
        check_feed("text", {"token_ids": np.zeros((2, 3), np.int64)})
    with pytest.raises(VsrnError, match="rank 3"):
        check_feed("image", {"region_features": np.zeros((2, 3), np.float32)})
    with pytest.raises(VsrnError, match="int64"):
        check_feed("text", {"token_ids": np.zeros((2, 3), np.float32), "lengths": np.ones(2, np.int64)})
    with pytest.raises(VsrnError, match="lengths must lie"):
        check_feed("text", {"token_ids": np.zeros((2, 3), np.int64), "lengths": np.array([4, 1])})
    with pytest.raises(VsrnError, match="batch size"):
        check_feed("text", {"token_ids": np.zeros((2, 3), np.int64), "lengths": np.array([3])})
    fixed = check_feed("text", {"token_ids": np.ones((1, 3), np.int32), "lengths": np.array([3], np.int32)})
    assert fixed["token_ids"].dtype == np.int64 and fixed["lengths"].dtype == np.int64
