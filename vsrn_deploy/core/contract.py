"""The export contract: every fact about the two encoders that more than one module needs, stated once.

numpy only (the bottom layer: no torch, no onnx, no package import but `errors`). The exporter,
the runners and their feed check, the TensorRT profiles, the Triton repository, `validate` and
`bench` all read this module; `python -m vsrn_deploy.core.contract` prints it.

- I/O: for each encoder its inputs and outputs with dtype and axes. An axis is either a symbolic
  name ("batch", "tokens": dynamic) or a key of the model config ("num_regions", "img_dim",
  "embed_size": fixed at export).
- Artifacts: the file name of each encoder's graph per precision, of its TensorRT plan and sidecar,
  and of the export's manifest and vocabulary; the trained-model files (a run folder's best and
  last checkpoints, the authors' file name).
- Parity bounds: what each precision must meet against eager torch FP32, at export and in
  `validate` alike (the one comparator, `vsrn_deploy.evaluation.compare`, applies them).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import numpy as np

BATCH = "batch"
TOKENS = "tokens"


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: its name, numpy dtype and axes (symbolic names or config keys)."""

    name: str
    dtype: str  # numpy dtype name: "float32" or "int64"
    axes: tuple[str, ...]

    @property
    def rank(self) -> int:
        return len(self.axes)

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    @property
    def onnx_dtype(self) -> str:
        """The dtype as onnx's `TensorProto` names it (FLOAT, INT64)."""
        return {"float32": "FLOAT", "int64": "INT64"}[self.dtype]

    @property
    def triton_dtype(self) -> str:
        """The dtype as Triton's config.pbtxt names it (TYPE_FP32, TYPE_INT64)."""
        return {"float32": "TYPE_FP32", "int64": "TYPE_INT64"}[self.dtype]

    def dynamic_axes(self) -> dict[int, str]:
        """{axis index: symbolic name} of the dynamic axes."""
        return {i: a for i, a in enumerate(self.axes) if a in (BATCH, TOKENS)}

    def shape(self, config: Any = None) -> list[Any]:
        """Axes as a shape: symbolic names kept, config keys resolved from `config` (or kept)."""
        out: list[Any] = []
        for axis in self.axes:
            if axis in (BATCH, TOKENS) or config is None:
                out.append(axis)
            else:
                out.append(int(getattr(config, axis) if not isinstance(config, dict) else config[axis]))
        return out


@dataclass(frozen=True)
class EncoderSpec:
    """One exported encoder: graph name, inputs and outputs."""

    key: str  # "image" or "text": the runners' and CLIs' name
    graph: str  # "image_encoder": file stem, Triton model name, manifest key
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)

    @property
    def embedding(self) -> str:
        """The output that is compared and indexed (the first)."""
        return self.outputs[0].name

    def tensor(self, name: str) -> TensorSpec:
        for t in self.inputs + self.outputs:
            if t.name == name:
                return t
        raise KeyError(f"{self.graph} has no tensor {name!r}")

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """torch.onnx-style {tensor: {axis: name}} for every tensor with a dynamic axis."""
        return {t.name: t.dynamic_axes() for t in self.inputs + self.outputs if t.dynamic_axes()}

    def io_spec(self, config: Any) -> dict[str, Any]:
        """The manifest's `graphs.<graph>` I/O entry (inputs, outputs, dynamic_axes)."""
        as_list = [
            [{"name": t.name, "dtype": "float" if t.dtype == "float32" else t.dtype, "shape": t.shape(config)}
             for t in group]
            for group in (self.inputs, self.outputs)
        ]
        return {
            "inputs": as_list[0],
            "outputs": as_list[1],
            "dynamic_axes": {n: {str(i): a for i, a in ax.items()} for n, ax in self.dynamic_axes().items()},
        }


IMAGE = EncoderSpec(
    key="image",
    graph="image_encoder",
    inputs=(TensorSpec("region_features", "float32", (BATCH, "num_regions", "img_dim")),),
    outputs=(
        TensorSpec("image_embedding", "float32", (BATCH, "embed_size")),
        TensorSpec("region_embeddings", "float32", (BATCH, "num_regions", "embed_size")),
    ),
)
TEXT = EncoderSpec(
    key="text",
    graph="text_encoder",
    inputs=(
        TensorSpec("token_ids", "int64", (BATCH, TOKENS)),
        TensorSpec("lengths", "int64", (BATCH,)),
    ),
    outputs=(TensorSpec("text_embedding", "float32", (BATCH, "embed_size")),),
)
ENCODERS: dict[str, EncoderSpec] = {IMAGE.key: IMAGE, TEXT.key: TEXT}

# --- artifacts -------------------------------------------------------------------------------------

PRECISIONS = ("fp32", "fp16", "int8")  # THE precision vocabulary: graph precisions an export may hold
# (fp32 is always there); every other list of precisions is this one or a subset of it
PLAN_PRECISIONS = PRECISIONS[:2]  # what TensorRT plans are built in (INT8 runs in ONNX Runtime only)


class Precision(str, enum.Enum):
    """PRECISIONS as an enum, for command-line choices (`--precision fp16`); `.value` is the string."""

    FP32 = PRECISIONS[0]
    FP16 = PRECISIONS[1]
    INT8 = PRECISIONS[2]


# the largest batch an export checks (--max-batch): at paper size 4096 images are 1.2 GB of input per
# check; larger ones only ran out of memory or ran for very long inside ONNX Runtime
MAX_EXPORT_BATCH = 4096
MANIFEST_NAME = "manifest.json"
VOCAB_NAME = "vocab.json"

# the Triton models beside the two encoders (vsrn-deploy triton-repo): the tokenizer turns caption
# strings into the text encoder's inputs; caption_encoder is the ensemble clients send strings to
TOKENIZER = "tokenizer"
CAPTION_ENCODER = "caption_encoder"
CAPTIONS = "captions"  # their string input (TYPE_STRING / BYTES, dims [1]: [batch, 1])
# trained models: a training run folder's checkpoints (vsrn-deploy format; TRAINED_NAMES are the
# files that make a folder hold "a trained model"), and the name the authors gave their files
BEST_CHECKPOINT_NAME = "model_best.pt"
LAST_CHECKPOINT_NAME = "last.pt"
TRAINED_NAMES = (BEST_CHECKPOINT_NAME, LAST_CHECKPOINT_NAME)
AUTHORS_CHECKPOINT_NAME = "model_best.pth.tar"
PAD_ID, START_ID, END_ID, UNK_ID = 0, 1, 2, 3  # the authors' special tokens, in their order


def _check(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")


def onnx_name(graph: str, precision: str = "fp32") -> str:
    """`image_encoder.onnx`, `image_encoder.fp16.onnx`, `image_encoder.int8.onnx`."""
    _check(precision)
    return f"{graph}.onnx" if precision == "fp32" else f"{graph}.{precision}.onnx"


def plan_name(graph: str, precision: str) -> str:
    """`image_encoder.fp16.plan` (TensorRT plans always name their precision)."""
    _check(precision)
    return f"{graph}.{precision}.plan"


def sidecar_name(graph: str, precision: str) -> str:
    """`image_encoder.fp16.json`: the JSON sidecar beside a plan (same stem)."""
    return plan_name(graph, precision)[: -len(".plan")] + ".json"


# --- parity bounds ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParityBounds:
    """What a backend of one precision must meet against eager torch FP32 on the same inputs.

    max_abs: largest absolute error of any output element (None: not bounded, cosine instead).
    min_cosine: smallest row cosine of the embedding output (None: not bounded).
    recall_delta: largest change of R@1/5/10 in points, each direction (None: not bounded).
    top1: smallest share of queries whose top-1 retrieved item agrees (near-ties forgiven).
    near_tie: two candidates whose similarities differ by less than this are a near-tie: swapping
        them is not a ranking change. A fixed bound per precision, never scaled by a backend's error.
    """

    max_abs: float | None = None
    min_cosine: float | None = None
    recall_delta: float | None = None
    top1: float | None = None
    near_tie: float = 1e-6


PARITY: dict[str, ParityBounds] = {
    "fp32": ParityBounds(max_abs=1e-5, near_tie=1e-6),
    "fp16": ParityBounds(min_cosine=0.9995, recall_delta=0.2, top1=0.99, near_tie=1e-3),
    "int8": ParityBounds(min_cosine=0.999, recall_delta=0.5, top1=0.98, near_tie=1e-3),
}
# TensorRT's FP32 kernels (TF32 off) reorder sums differently from ONNX Runtime's.
TRT_FP32_MAX_ABS = 1e-4


def describe() -> str:
    """The whole contract as text (what `python -m vsrn_deploy.core.contract` prints)."""
    lines = []
    for spec in ENCODERS.values():
        lines.append(f"{spec.graph} ({spec.key}):")
        for kind, group in (("in ", spec.inputs), ("out", spec.outputs)):
            for t in group:
                lines.append(f"  {kind} {t.name}: {t.dtype} [{', '.join(t.axes)}]")
        lines.append("  files: " + ", ".join(onnx_name(spec.graph, p) for p in PRECISIONS)
                     + "; plans: " + ", ".join(plan_name(spec.graph, p) for p in PRECISIONS))
    lines.append(f"export folder: {MANIFEST_NAME}, {VOCAB_NAME}")
    for precision, b in PARITY.items():
        lines.append(f"parity {precision}: max_abs={b.max_abs} min_cosine={b.min_cosine} "
                     f"recall_delta={b.recall_delta} top1={b.top1} near_tie={b.near_tie}")
    lines.append(f"parity trt fp32: max_abs={TRT_FP32_MAX_ABS}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(describe())
