"""The export contract, and every consumer's view of it derived from `vsrn_deploy.core.contract`.

Each test below reads a consumer's view (graph I/O, manifest entries, runner names, feed checks,
TensorRT profiles, Triton configs, file names, parity bounds) and compares it with what the
declaration says, so adding an output or changing a bound is an edit of contract.py alone; a
consumer that keeps its own copy fails here.
"""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import onnx
import pytest

from vsrn_deploy.core import contract
from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.model.config import VSRNConfig

CFG = VSRNConfig.tiny()


def _feed(spec: contract.EncoderSpec, batch: int = 2, tokens: int = 4) -> dict[str, np.ndarray]:
    """A valid feed for `spec`, shaped by the contract's axes."""
    feed = {}
    for t in spec.inputs:
        shape = [batch if a == contract.BATCH else tokens if a == contract.TOKENS else getattr(CFG, a)
                 for a in t.axes]
        feed[t.name] = np.full(shape, 2 if t.dtype == "int64" else 0.5, dtype=t.np_dtype)
    return feed


def test_the_declaration_names_what_users_rely_on():
    assert contract.IMAGE.input_names == ("region_features",)
    assert contract.IMAGE.output_names == ("image_embedding", "region_embeddings")
    assert contract.TEXT.input_names == ("token_ids", "lengths")
    assert contract.TEXT.output_names == ("text_embedding",)
    assert contract.TEXT.tensor("token_ids").dynamic_axes() == {0: "batch", 1: "tokens"}
    assert [contract.onnx_name("image_encoder", p) for p in contract.PRECISIONS] == [
        "image_encoder.onnx", "image_encoder.fp16.onnx", "image_encoder.int8.onnx"]
    assert contract.plan_name("text_encoder", "fp16") == "text_encoder.fp16.plan"
    assert contract.sidecar_name("text_encoder", "fp16") == "text_encoder.fp16.json"
    with pytest.raises(ValueError):
        contract.onnx_name("image_encoder", "fp8")


def test_graphs_carry_the_contract_io():
    from vsrn_deploy.export.graphs import build_image_graph, build_text_graph
    from vsrn_deploy.model import VSRN
    from vsrn_deploy.model.deploy import ImageEncoderDeploy, TextEncoderDeploy

    model = VSRN(CFG, with_caption=False).eval()
    built = {contract.IMAGE.graph: build_image_graph(ImageEncoderDeploy.from_encoder(model.img_enc)),
             contract.TEXT.graph: build_text_graph(TextEncoderDeploy.from_encoder(model.txt_enc))}
    for spec in contract.ENCODERS.values():
        graph = built[spec.graph].graph
        for declared, actual in ((spec.inputs, graph.input), (spec.outputs, graph.output)):
            assert [v.name for v in actual] == [t.name for t in declared]
            for t, v in zip(declared, actual, strict=True):
                assert v.type.tensor_type.elem_type == getattr(onnx.TensorProto, t.onnx_dtype)
                dims = [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
                assert dims == t.shape(CFG)


def test_manifest_io_entries_are_the_declaration():
    entry = contract.IMAGE.io_spec(CFG)
    assert entry["inputs"] == [{"name": "region_features", "dtype": "float",
                                "shape": ["batch", CFG.num_regions, CFG.img_dim]}]
    assert entry["dynamic_axes"] == {n: {"0": "batch"} for n in ("region_features", "image_embedding",
                                                                   "region_embeddings")}
    assert contract.TEXT.io_spec(CFG)["dynamic_axes"]["token_ids"] == {"0": "batch", "1": "tokens"}


def test_runner_names_and_feed_checks_follow_the_declaration():
    from vsrn_deploy.backend.base import ENCODERS, INPUT_NAMES, OUTPUT_NAMES
    from vsrn_deploy.backend.feeds import check_feed

    assert ENCODERS == tuple(contract.ENCODERS)
    for key, spec in contract.ENCODERS.items():
        assert INPUT_NAMES[key] == spec.input_names and OUTPUT_NAMES[key] == spec.output_names
        feed = _feed(spec)
        out = check_feed(key, feed)
        assert {n: (a.dtype, a.ndim) for n, a in out.items()} == {
            t.name: (t.np_dtype, t.rank) for t in spec.inputs}
        for t in spec.inputs:  # one rank too many for each input, in turn
            with pytest.raises(VsrnError, match=f"'{t.name}' must have rank {t.rank}"):
                check_feed(key, {**feed, t.name: feed[t.name][..., None]})


def test_tensorrt_profiles_cover_the_declared_inputs():
    from vsrn_deploy.engine.profiles import ProfileSpec, input_shapes

    spec = ProfileSpec(batch=(1, 4, 16), tokens=(2, 8, 32))
    for key, enc in contract.ENCODERS.items():
        shapes = input_shapes(key, spec, num_regions=CFG.num_regions, feature_dim=CFG.img_dim)
        assert list(shapes) == list(enc.input_names)
        for t in enc.inputs:
            lo, opt, hi = shapes[t.name]
            assert len(lo) == len(hi) == t.rank
            assert lo[0] == 1 and hi[0] == 16  # batch is axis 0 of every input
            if contract.TOKENS in t.axes:
                assert hi[t.axes.index(contract.TOKENS)] == 32


def test_file_lookups_use_the_declared_names(tmp_path):
    from vsrn_deploy.backend.onnxrt import graph_path
    from vsrn_deploy.backend.trt import plan_path

    for key, enc in contract.ENCODERS.items():
        for precision in ("fp32", "fp16"):
            (tmp_path / contract.onnx_name(enc.graph, precision)).write_bytes(b"x")
            assert graph_path(tmp_path, key, precision).name == contract.onnx_name(enc.graph, precision)
        (tmp_path / contract.plan_name(enc.graph, "fp32")).write_bytes(b"x")
        assert plan_path(tmp_path, key).name == contract.plan_name(enc.graph, "fp32")


def test_triton_configs_name_the_declared_tensors():
    from vsrn_deploy.serving.triton_repo import MODELS, render_config

    assert MODELS == tuple(spec.graph for spec in contract.ENCODERS.values())
    for spec in contract.ENCODERS.values():
        text = render_config(spec.graph, "onnxruntime", spec.io_spec(CFG), max_batch=8, preferred=(4,),
                             max_queue_delay_us=100, instances=1, kind="cpu")
        names = re.findall(r'name: "([^"]+)"\n\s+data_type: (\w+)', text)
        assert names == [(t.name, t.triton_dtype) for t in spec.inputs + spec.outputs]


def test_both_comparisons_judge_with_the_declared_bounds():
    from vsrn_deploy.jobs.validate import thresholds

    th = thresholds()
    fp16 = contract.PARITY["fp16"]
    assert (th["fp16_min_cosine"], th["fp16_recall_delta"], th["fp16_top1"], th["tie_tol_fp16"]) == (
        fp16.min_cosine, fp16.recall_delta, fp16.top1, fp16.near_tie)
    assert th["fp32_max_abs"] == contract.PARITY["fp32"].max_abs
    assert th["trt_fp32_max_abs"] == contract.TRT_FP32_MAX_ABS


def test_python_m_contract_prints_the_declaration():
    out = subprocess.run([sys.executable, "-m", "vsrn_deploy.core.contract"], capture_output=True, text=True,
                         check=True).stdout
    for spec in contract.ENCODERS.values():
        assert all(name in out for name in spec.input_names + spec.output_names)
    assert f"min_cosine={contract.PARITY['fp16'].min_cosine}" in out


def test_precision_enum_is_the_precision_tuple():
    assert tuple(p.value for p in contract.Precision) == contract.PRECISIONS
    assert contract.Precision("fp16") is contract.Precision.FP16 and contract.Precision.FP16 == "fp16"
    assert set(contract.PLAN_PRECISIONS) < set(contract.PRECISIONS)
    with pytest.raises(ValueError):
        contract.Precision("fp8")
