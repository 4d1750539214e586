"""ONNX graphs written directly from the deploy modules' tensors.

Writing the graph node by node (instead of tracing) gives one self-contained file in milliseconds
at any size, stable readable node names (`gcn2/affinity/MatMul`, `gru/step07/...`) that the FP16
islands and the manifest refer to, and only operators TensorRT's ONNX parser supports. The deploy
torch modules (`vsrn_deploy.model.deploy`) compute the same operations in the same order; export
validation proves the two equal on every output.

Image graph: region_features float32 (B, k, F) -> image_embedding (B, D), region_embeddings (B, k, D);
only batch is dynamic. Text graph: token_ids int64 (B, T), lengths int64 (B,) -> text_embedding (B, D);
batch and tokens dynamic; one ONNX GRU node per layer (linear_before_reset=1, torch's semantics,
gates reordered from torch's r, z, n to ONNX's z, r, h) fed `sequence_lens`, so its Y_h is each
row's state at position length-1 and the GRU runs only as many steps as the input has tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from vsrn_deploy.core.contract import IMAGE, TEXT, EncoderSpec
from vsrn_deploy.model.deploy import ImageEncoderDeploy, TextEncoderDeploy

DEFAULT_OPSET = 17
MIN_OPSET = 13  # ReduceSum / Squeeze / Split take their axes as inputs from opset 13
MAX_OPSET = 24  # the newest opset TensorRT 10.15's parser accepts (see trt_lint.py)
# the image GRU's recurrent weights (gates r|z, gate n) and the n gate's recurrent bias, by name
GRU_WH_RZ, GRU_WH_N, GRU_BH_N = "gru.wh_rz", "gru.wh_n", "gru.bh_n"



def _finish(b: GraphBuilder, spec: EncoderSpec, feats: str, cfg, opset: int, doc: str) -> onnx.ModelProto:
    """The tail both graphs share: |x| when the model uses it, the embedding output (an Identity
    named as the contract says) and the contract's inputs and outputs."""
    if cfg.use_abs:
        feats = b.op("Abs", [feats], "embed/Abs")
    b.nodes.append(helper.make_node("Identity", [feats], [spec.embedding], name=spec.embedding))
    inputs, outputs = value_infos(spec, cfg)
    return b.model(inputs, outputs, opset, f"vsrn_{spec.graph}", doc)


def value_infos(spec: EncoderSpec, config) -> tuple[list, list]:
    """The graph's input and output value infos, as `vsrn_deploy.core.contract` declares them."""
    def info(t):
        return helper.make_tensor_value_info(t.name, getattr(TensorProto, t.onnx_dtype), t.shape(config))

    return [info(t) for t in spec.inputs], [info(t) for t in spec.outputs]


@dataclass
class GraphBuilder:
    """A small helper that accumulates nodes and initializers with unique, readable names.

    Attributes:
        nodes: the nodes, in order.
        initializers: {name: TensorProto}; builders of a graph and of its subgraphs (a Loop's body)
            may share one dict, so a body reads the outer graph's constants by name.
        keep_0d: a 0-d constant stays 0-d (a Loop's scalar Gather index and clamps need it); off,
            it is widened to shape (1,), which the FP32 graphs have always had.
    """

    nodes: list = field(default_factory=list)
    initializers: dict = field(default_factory=dict)
    keep_0d: bool = False

    def const(self, name: str, array: np.ndarray) -> str:
        """Add an initializer (once per name) and return its name."""
        if name not in self.initializers:
            array = np.array(array, order="C") if self.keep_0d else np.ascontiguousarray(array)
            self.initializers[name] = numpy_helper.from_array(array, name)
        return name

    def node(self, op: str, inputs: list[str], name: str, n_out: int = 1, **attrs) -> list[str]:
        """Add a node named `name`; outputs are `name:0`, `name:1`, ... Returns the output names."""
        outputs = [f"{name}:{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outputs, name=name, **attrs))
        return outputs

    def op(self, op: str, inputs: list[str], name: str, **attrs) -> str:
        """Add a single-output node; returns its output name."""
        return self.node(op, inputs, name, **attrs)[0]

    def l2norm(self, x: str, axis: int, eps: float, prefix: str) -> str:
        """x / max(sqrt(sum(x * x, axis)), eps), the safe-epsilon normalisation of model/encoders.py."""
        axes = self.const(f"axes_{axis}", np.array([axis], dtype=np.int64))
        eps_c = self.const(f"{prefix}/eps", np.array(eps, dtype=np.float32))
        sq = self.op("Mul", [x, x], f"{prefix}/Square")
        ss = self.op("ReduceSum", [sq, axes], f"{prefix}/ReduceSum", keepdims=1)
        norm = self.op("Sqrt", [ss], f"{prefix}/Sqrt")
        norm = self.op("Max", [norm, eps_c], f"{prefix}/ClampEps")
        return self.op("Div", [x, norm], f"{prefix}/Div")

    def model(self, inputs: list, outputs: list, opset: int, graph_name: str, doc: str) -> onnx.ModelProto:
        """Assemble the ModelProto (ir_version chosen for the opset, producer vsrn-deploy)."""
        graph = helper.make_graph(
            self.nodes,
            graph_name,
            inputs,
            outputs,
            initializer=list(self.initializers.values()),
            doc_string=doc,
        )
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="vsrn-deploy"
        )
        # the IR version the opset was released with keeps older runtimes able to read the file
        model.ir_version = min(model.ir_version, _ir_version_for_opset(opset))
        return model


def _ir_version_for_opset(opset: int) -> int:
    for entry in onnx.helper.VERSION_TABLE:  # (release, ir_version, ai.onnx opset, ...)
        if entry[2] == opset:
            return int(entry[1])
    return onnx.IR_VERSION


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


def build_image_graph(deploy: ImageEncoderDeploy, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """Write the image encoder's ONNX graph from the deploy module's tensors.

    Args:
        deploy: the deploy-form image encoder.
        opset: the ai.onnx opset (MIN_OPSET..MAX_OPSET).
    Returns:
        The ModelProto: region_features (B, k, F) -> image_embedding (B, D), region_embeddings (B, k, D).
    """
    cfg = deploy.config
    d, k, eps = cfg.embed_size, cfg.num_regions, cfg.norm_eps
    b = GraphBuilder()
    x = b.op("MatMul", [IMAGE.inputs[0].name, b.const("fc.weight", _np(deploy.fc_w))], "fc/MatMul")
    x = b.op("Add", [x, b.const("fc.bias", _np(deploy.fc_b))], "fc/Add")  # (B, k, D)
    if cfg.fc_norm:
        x = b.l2norm(x, 1, eps, "fc_norm")  # region axis
    v = x
    for i in range(1, deploy.gcn_layers + 1):
        p = f"gcn{i}"
        split3 = b.const("split_3d", np.array([d, d, d], dtype=np.int64))
        qkv = b.op(
            "MatMul", [v, b.const(f"{p}.qkv.weight", _np(getattr(deploy, f"{p}_qkv_w")))], f"{p}/qkv/MatMul"
        )
        qkv = b.op("Add", [qkv, b.const(f"{p}.qkv.bias", _np(getattr(deploy, f"{p}_qkv_b")))], f"{p}/qkv/Add")
        theta, phi, g = b.node("Split", [qkv, split3], f"{p}/qkv/Split", n_out=3, axis=2)  # 3 x (B, k, D)
        phi_t = b.op("Transpose", [phi], f"{p}/phi/Transpose", perm=[0, 2, 1])  # (B, D, k)
        affinity = b.op("MatMul", [theta, phi_t], f"{p}/affinity/MatMul")  # (B, k, k)
        y = b.op("MatMul", [affinity, g], f"{p}/aggregate/MatMul")  # (B, k, D); g carries W's map
        y = b.op("Add", [y, b.const(f"{p}.out.bias", _np(getattr(deploy, f"{p}_out_b")))], f"{p}/out/Add")
        v = b.op("Add", [y, v], f"{p}/residual/Add")
    regions = b.l2norm(v, 1, eps, "region_norm")  # (B, k, D), region axis
    out_regions = IMAGE.outputs[1].name
    b.nodes.append(helper.make_node("Identity", [regions], [out_regions], name=out_regions))

    if cfg.img_pool == "gru":
        split_rz = b.const("split_2d", np.array([d, d], dtype=np.int64))
        x_rz = b.op("MatMul", [regions, b.const("gru.wi_rz", _np(deploy.gru_wi_rz))], "gru/input_rz/MatMul")
        x_rz = b.op(
            "Add", [x_rz, b.const("gru.bi_rz", _np(deploy.gru_bi_rz))], "gru/input_rz/Add"
        )  # (B, k, 2D)
        x_n = b.op("MatMul", [regions, b.const("gru.wi_n", _np(deploy.gru_wi_n))], "gru/input_n/MatMul")
        x_n = b.op("Add", [x_n, b.const("gru.bi_n", _np(deploy.gru_bi_n))], "gru/input_n/Add")  # (B, k, D)
        if k > 1:
            ones_k = b.const("split_k", np.ones(k, dtype=np.int64))
            xs_rz = b.node("Split", [x_rz, ones_k], "gru/input_rz/Split", n_out=k, axis=1)  # k x (B, 1, 2D)
            xs_n = b.node("Split", [x_n, ones_k], "gru/input_n/Split", n_out=k, axis=1)  # k x (B, 1, D)
        else:
            xs_rz, xs_n = [x_rz], [x_n]
        if k > 1:  # one region: h0 = 0 is the only state, no recurrent matmul (and no unused weights)
            wh_rz = b.const(GRU_WH_RZ, _np(deploy.gru_wh_rz))
            wh_n = b.const(GRU_WH_N, _np(deploy.gru_wh_n))
        bh_n = b.const(GRU_BH_N, _np(deploy.gru_bh_n))
        h = None  # (B, 1, D) throughout the recurrence
        for t in range(k):
            p = f"gru/step{t:02d}"
            if h is None:  # h0 = 0: no recurrent matmul
                rz = b.op("Sigmoid", [xs_rz[t]], f"{p}/rz/Sigmoid")
                r, z = b.node("Split", [rz, split_rz], f"{p}/rz/Split", n_out=2, axis=2)
                rn = b.op("Mul", [r, bh_n], f"{p}/n/ResetMul")
            else:
                hrz = b.op("MatMul", [h, wh_rz], f"{p}/rz/MatMul")
                rz = b.op("Sigmoid", [b.op("Add", [xs_rz[t], hrz], f"{p}/rz/Add")], f"{p}/rz/Sigmoid")
                r, z = b.node("Split", [rz, split_rz], f"{p}/rz/Split", n_out=2, axis=2)
                hn = b.op("Add", [b.op("MatMul", [h, wh_n], f"{p}/n/MatMul"), bh_n], f"{p}/n/AddBias")
                rn = b.op("Mul", [r, hn], f"{p}/n/ResetMul")
            n = b.op("Tanh", [b.op("Add", [xs_n[t], rn], f"{p}/n/Add")], f"{p}/n/Tanh")
            if h is None:
                h = b.op("Sub", [n, b.op("Mul", [z, n], f"{p}/h/Mul")], f"{p}/h/Sub")  # (1 - z) * n
            else:
                diff = b.op("Sub", [h, n], f"{p}/h/Sub")
                h = b.op("Add", [n, b.op("Mul", [z, diff], f"{p}/h/Mul")], f"{p}/h/Add")  # n + z (h - n)
        feats = b.op(
            "Squeeze", [h, b.const("axes_1", np.array([1], dtype=np.int64))], "gru/Squeeze"
        )  # (B, D)
    else:
        feats = b.op(
            "ReduceSum",
            [regions, b.const("axes_1", np.array([1], dtype=np.int64))],
            "pool/ReduceSum",
            keepdims=0,
        )
        feats = b.op("Mul", [feats, b.const("pool/inv_k", np.array(1.0 / k, dtype=np.float32))], "pool/Mul")
    if cfg.final_bn:
        feats = b.op("Mul", [feats, b.const("bn.scale", _np(deploy.bn_scale))], "bn/Mul")
        feats = b.op("Add", [feats, b.const("bn.shift", _np(deploy.bn_shift))], "bn/Add")
    if cfg.img_norm:
        feats = b.l2norm(feats, 1, eps, "embed_norm")
    return _finish(b, IMAGE, feats, cfg, opset, f"VSRN image encoder ({cfg.variant} variant, k={k}, D={d}), "
                   "deploy form")


def _onnx_gru_weights(
    w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray, d: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """torch GRU weights (gates r, z, n) -> ONNX GRU W, R, B (gates z, r, h; one direction)."""

    def reorder(a: np.ndarray) -> np.ndarray:
        return np.concatenate([a[d : 2 * d], a[:d], a[2 * d :]], axis=0)

    w = reorder(w_ih)[None]  # (1, 3D, in)
    r = reorder(w_hh)[None]  # (1, 3D, D)
    bias = np.concatenate([reorder(b_ih), reorder(b_hh)])[None]  # (1, 6D): Wb then Rb
    return w, r, bias


def build_text_graph(deploy: TextEncoderDeploy, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """Write the text encoder's ONNX graph from the deploy module's tensors.

    Args:
        deploy: the deploy-form text encoder.
        opset: the ai.onnx opset.
    Returns:
        The ModelProto: token_ids (B, T) int64, lengths (B,) int64 -> text_embedding (B, D).
    """
    cfg = deploy.config
    d = cfg.embed_size
    b = GraphBuilder()
    ids, lengths = TEXT.input_names
    emb = b.op("Gather", [b.const("embed.weight", _np(deploy.embed)), ids], "embed/Gather", axis=0)
    x = b.op("Transpose", [emb], "embed/Transpose", perm=[1, 0, 2])  # (T, B, W): GRU layout 0
    lens = b.op("Cast", [lengths], "lengths/Cast", to=TensorProto.INT32)  # sequence_lens is int32
    # a length below 1 counts as 1, like the training module's clamped gather index
    lens = b.op("Max", [lens, b.const("lengths/one", np.array(1, dtype=np.int32))], "lengths/ClampMin")
    h = None
    for layer in range(cfg.text_layers):
        w, r, bias = _onnx_gru_weights(
            *(
                getattr(deploy, f"rnn_{n}_l{layer}").numpy()
                for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            ),
            d=d,
        )
        p = f"rnn/l{layer}"
        y, h = b.node(
            "GRU",
            [x, b.const(f"{p}.W", w), b.const(f"{p}.R", r), b.const(f"{p}.B", bias), lens],
            f"{p}/GRU",
            n_out=2,
            hidden_size=d,
            linear_before_reset=1,
            direction="forward",
        )
        if layer + 1 < cfg.text_layers:
            x = b.op(
                "Squeeze", [y, b.const("axes_1", np.array([1], dtype=np.int64))], f"{p}/Squeeze"
            )  # (T, B, D)
    feats = b.op(
        "Squeeze", [h, b.const("axes_0", np.array([0], dtype=np.int64))], "rnn/Y_h/Squeeze"
    )  # (B, D)
    feats = b.l2norm(feats, 1, cfg.norm_eps, "embed_norm")
    return _finish(b, TEXT, feats, cfg, opset,
                   f"VSRN text encoder (vocab={cfg.vocab_size}, D={d}, GRU layers={cfg.text_layers})")
