"""Does onnxruntime's FP16 converter give the graph `vsrn_deploy.export.fp16` writes?

Builds the tiny model's deploy-form graphs, chooses the FP32 islands as the exporter does, converts
with `fp16.convert_to_fp16` and with `onnxruntime.transformers.float16.convert_float_to_float16(
model, keep_io_types=True, node_block_list=islands)`, and prints for each: node and Cast counts,
initializer types, whether `onnx.checker` and the strict FP16 executor accept the graph, the
largest output difference in ONNX Runtime, and the FP32 -> FP16 -> FP32 round trips the converter
puts between consecutive FP32 island nodes (the conclusion is in fp16.py's docstring).

    .venv/bin/python benchmarks/fp16_converter_check.py
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.transformers.float16 import convert_float_to_float16

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "export"))
from export_helpers import tiny_model  # noqa: E402

from vsrn_deploy.data.synthetic_inputs import captions, image_feed, region_features, text_feed  # noqa: E402
from vsrn_deploy.export import emulate, fp16  # noqa: E402
from vsrn_deploy.export.graphs import build_image_graph, build_text_graph  # noqa: E402
from vsrn_deploy.model.deploy import ImageEncoderDeploy, TextEncoderDeploy  # noqa: E402


def _round_trips(model: onnx.ModelProto) -> list[str]:
    """Cast-to-FP32 nodes fed by a Cast-to-FP16 node: an FP32 value rounded through FP16."""
    producer = {o: n for n in model.graph.node for o in n.output}
    trips = []
    for n in model.graph.node:
        if n.op_type == "Cast" and n.attribute[0].i == onnx.TensorProto.FLOAT:
            p = producer.get(n.input[0])
            if p is not None and p.op_type == "Cast" and p.attribute[0].i == onnx.TensorProto.FLOAT16:
                src = producer.get(p.input[0])
                trips.append(src.name if src is not None else p.input[0])
    return trips


def main() -> None:
    print(f"onnxruntime {ort.__version__}, onnx {onnx.__version__}")
    model = tiny_model(0)
    cfg = model.config
    graphs = {"image_encoder": build_image_graph(ImageEncoderDeploy.from_encoder(model.img_enc)),
              "text_encoder": build_text_graph(TextEncoderDeploy.from_encoder(model.txt_enc))}
    feeds = {"image_encoder": image_feed(region_features(8, cfg.num_regions, cfg.img_dim, seed=3)),
             "text_encoder": text_feed(captions(8, cfg.vocab_size, max_tokens=12, seed=3))}
    for name, graph in graphs.items():
        islands = fp16.choose_islands(graph, fp16.record_ranges(graph, [feeds[name]]))
        ours = fp16.convert_to_fp16(graph, islands)
        theirs = convert_float_to_float16(graph, keep_io_types=True, node_block_list=list(islands))
        outs = {}
        for label, m in (("vsrn_deploy", ours), ("onnxruntime", theirs)):
            ops = collections.Counter(n.op_type for n in m.graph.node)
            try:
                onnx.checker.check_model(m)
                checker = "ok"
            except onnx.checker.ValidationError as exc:
                checker = f"rejects ({str(exc).splitlines()[0][:80]})"
            try:
                emulate.run_strict(m, feeds[name])
                strict = "ok"
            except Exception as exc:  # noqa: BLE001 - report any failure
                strict = f"fails ({type(exc).__name__})"
            session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
            outs[label] = session.run(None, feeds[name])
            trips = _round_trips(m)
            print(f"{name} {label}: {len(m.graph.node)} nodes, {ops['Cast']} Cast; onnx.checker {checker}; "
                  f"strict FP16 executor {strict}; {len(trips)} FP32->FP16->FP32 round trips {trips[:4]}")
        pairs = zip(outs["vsrn_deploy"], outs["onnxruntime"], strict=True)
        diff = [float(np.abs(a - b).max()) for a, b in pairs]
        print(f"{name}: max |vsrn_deploy - onnxruntime| per output in ONNX Runtime: {diff}")


if __name__ == "__main__":
    main()
