"""config.pbtxt of each model of the Triton repository, built as Triton's own `ModelConfig` message.

The messages come from `tritonclient.grpc.model_config_pb2` (the schema the server reads) and are
written with protobuf's text format, so a misspelt field or a wrong value type fails here, when the
repository is written, not when a server loads it. tritonclient (and its protobuf) is imported inside
the functions: `pip install 'vsrn-deploy[serving]'`.

- `render_config`: an encoder (onnxruntime, tensorrt or python backend).
- `render_tokenizer_config`: the python-backend tokenizer (captions -> token_ids, lengths).
- `render_ensemble_config`: caption_encoder, tokenizer then text_encoder.

Each takes `version` (None: Triton's default policy, the latest version folder; N: only version N is
served, `version_policy { specific { versions: N } }`), `warmup` (the `model_warmup` sample run once per
instance before the model is ready) and, for python-backend models, `python_env` (the packed
environment the backend unpacks and activates, EXECUTION_ENV_PATH, relative to the model's folder).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vsrn_deploy.core.contract import CAPTION_ENCODER, CAPTIONS, TEXT, TOKENIZER
from vsrn_deploy.core.errors import VsrnError, import_optional

PAD_TO_MULTIPLE = 8  # the tokenizer pads each request to a multiple of this (helps dynamic batching)
CAPTION_BYTES_PER_TOKEN = 32  # the tokenizer refuses captions over max_tokens * this many UTF-8 bytes
ENV_PARAMETER = "EXECUTION_ENV_PATH"  # the python backend's packed-environment parameter
MODEL_DIR_VARIABLE = "$$TRITON_MODEL_DIRECTORY"  # the python backend replaces it with the model's folder

PLATFORM = {"onnxruntime": "onnxruntime_onnx", "tensorrt": "tensorrt_plan"}
PROVIDERS = {"cpu": "CPUExecutionProvider", "gpu": "CUDAExecutionProvider,CPUExecutionProvider"}
# manifest dtype (ONNX type names as the exporter records them) -> Triton data_type
DTYPES = {"float": "TYPE_FP32", "float32": "TYPE_FP32", "float16": "TYPE_FP16",
          "int64": "TYPE_INT64", "int32": "TYPE_INT32", "bool": "TYPE_BOOL"}


@dataclass(frozen=True)
class WarmupInput:
    """One input of a warmup sample: zeros (`file` None) or the raw bytes of `<model>/warmup/<file>`
    (row-major, little-endian; a TYPE_STRING element is a 4-byte little-endian length then its bytes).

    `dims` excludes the batch axis and has no -1: the sample's actual shape."""

    name: str
    data_type: str
    dims: tuple[int, ...]
    file: str | None = None


def _schema() -> tuple[Any, Any]:
    """(model_config_pb2, text_format), or one line naming the extra that provides them."""
    purpose = "writing a Triton model repository"
    pb2 = import_optional("tritonclient.grpc.model_config_pb2", "serving", purpose)
    text_format = import_optional("google.protobuf.text_format", "serving", purpose)
    return pb2, text_format


def spec_dims(shape: list[Any]) -> list[int]:
    """Manifest shape without the batch axis; named (dynamic) axes become -1."""
    return [d if isinstance(d, int) else -1 for d in shape[1:]]


def max_caption_bytes(max_tokens: int) -> int:
    """The longest caption (UTF-8 bytes) the tokenizer reads: far more than `max_tokens` words need,
    small enough that a huge string is refused before it is tokenised."""
    return CAPTION_BYTES_PER_TOKEN * max_tokens


def _add_tensors(pb2: Any, field: Any, tensors: list[dict[str, Any]], ragged: tuple[str, ...] = ()) -> None:
    """The `input` / `output` entries (`ragged`: inputs whose requests the dynamic batcher may merge at
    different shapes)."""
    for t in tensors:
        dtype = DTYPES.get(str(t["dtype"]))
        if dtype is None:
            raise VsrnError(f"tensor {t['name']} has dtype {t['dtype']!r}, which has no Triton type here; "
                            "re-export with a current vsrn-deploy")
        entry = field.add(name=t["name"], data_type=pb2.DataType.Value(dtype))
        dims = spec_dims(list(t["shape"]))
        if dims:
            entry.dims.extend(dims)
        else:
            # A per-row scalar ([batch] in the model): Triton needs at least one dim besides the
            # batch, so clients send [batch, 1] and Triton reshapes it to [batch] for the model.
            entry.dims.append(1)
            entry.reshape.SetInParent()  # reshape { shape: [] }
        if t["name"] in ragged:
            entry.allow_ragged_batch = True


def _parameters(config: Any, params: dict[str, str]) -> None:
    """String key/value pairs the python-backend model.py (or the backend itself) reads."""
    for key, value in params.items():
        config.parameters[key].string_value = value


def _batching(config: Any, preferred: tuple[int, ...], max_queue_delay_us: int) -> None:
    """`dynamic_batching`: requests queued together reach one execute()."""
    config.dynamic_batching.preferred_batch_size.extend(preferred)
    config.dynamic_batching.max_queue_delay_microseconds = max_queue_delay_us


def _instances(pb2: Any, config: Any, count: int, kind: str, profiles: tuple[int, ...] = ()) -> None:
    group = config.instance_group.add(count=count,
                                      kind=pb2.ModelInstanceGroup.Kind.Value(f"KIND_{kind.upper()}"))
    # Triton's instance_group.profile is a list of strings (profile indices).
    group.profile.extend(str(p) for p in profiles)


def _common(pb2: Any, config: Any, *, version: int | None, warmup: list[WarmupInput] | None,
            python_env: str | None) -> None:
    """The version policy, the warmup sample and the packed environment, where asked for."""
    if version is not None:
        config.version_policy.specific.versions.append(version)
    if warmup:
        sample = config.model_warmup.add(name="vsrn_warmup", batch_size=1, count=1)
        for item in warmup:
            data = sample.inputs[item.name]
            data.data_type = pb2.DataType.Value(item.data_type)
            data.dims.extend(item.dims)
            if item.file is None:
                data.zero_data = True
            else:
                data.input_data_file = item.file
    if python_env is not None:
        _parameters(config, {ENV_PARAMETER: f"{MODEL_DIR_VARIABLE}/{python_env}"})


def _text(config: Any) -> str:
    _, text_format = _schema()
    return text_format.MessageToString(config)


def render_config(model: str, backend: str, spec: dict[str, Any], *, max_batch: int,
                  preferred: tuple[int, ...], max_queue_delay_us: int, instances: int, kind: str,
                  profiles: tuple[int, ...] = (), version: int | None = None,
                  warmup: list[WarmupInput] | None = None, python_env: str | None = None) -> str:
    """config.pbtxt (protobuf text format) of one encoder.

    Args:
        model: the model (and folder) name.
        backend: "onnxruntime", "tensorrt" or "python".
        spec: the manifest's graph entry ({"inputs": [...], "outputs": [...]}, shapes with batch).
        max_batch: max_batch_size (>= 1: Triton adds the batch axis, dims exclude it).
        preferred: dynamic_batching preferred sizes (may be empty).
        max_queue_delay_us: dynamic_batching max_queue_delay_microseconds.
        instances: instance_group count.
        kind: "gpu" or "cpu".
        profiles: TensorRT optimisation profiles the instances may use (empty: Triton's default,
            the first).
        version: serve only this version folder (None: Triton's default, the latest).
        warmup: the warmup sample's inputs (None: no warmup).
        python_env: backend python: the packed environment, relative to the model's folder.

    Returns:
        The file's text.
    """
    pb2, _ = _schema()
    config = pb2.ModelConfig(name=model, max_batch_size=max_batch)
    if backend == "python":
        config.backend = "python"
    else:
        config.platform = PLATFORM[backend]
    # The tokenizer pads each request to its own width; Triton's batcher merges only same-shaped requests
    # unless an input allows ragged batches. The python backend's model.py pads them to one width
    # (inert: lengths count the real ids), so there the text encoder batches captions of any length.
    ragged = (TEXT.inputs[0].name,) if backend == "python" and model == TEXT.graph else ()
    _add_tensors(pb2, config.input, spec["inputs"], ragged)
    _add_tensors(pb2, config.output, spec["outputs"])
    if backend == "python":
        params = {"providers": PROVIDERS[kind], "intra_op_threads": "0"}
        if model == TEXT.graph:  # model.py checks lengths against the token width
            params.update(tokens_input=TEXT.inputs[0].name, lengths_input=TEXT.inputs[1].name)
        _parameters(config, params)
    elif python_env is not None:
        raise VsrnError(f"{model}: a packed Python environment is for python-backend models only")
    _batching(config, preferred, max_queue_delay_us)
    _instances(pb2, config, instances, kind, profiles)
    _common(pb2, config, version=version, warmup=warmup, python_env=python_env)
    return _text(config)


def render_tokenizer_config(*, max_batch: int, max_tokens: int, instances: int,
                            preferred: tuple[int, ...] = (), max_queue_delay_us: int = 100,
                            version: int | None = None, warmup: list[WarmupInput] | None = None,
                            python_env: str | None = None) -> str:
    """config.pbtxt of `tokenizer`: captions TYPE_STRING [1] -> token_ids INT64 [-1], lengths INT64 [1].

    Always a CPU python-backend model (tokenising is string work), whatever the encoders' backend. It
    is dynamically batched like the encoders, so concurrent caption requests reach one execute() (the
    model answers each request on its own; the text encoder then runs them as one batch).
    """
    pb2, _ = _schema()
    ids, lengths = TEXT.inputs
    config = pb2.ModelConfig(name=TOKENIZER, backend="python", max_batch_size=max_batch)
    config.input.add(name=CAPTIONS, data_type=pb2.TYPE_STRING, dims=[1])
    config.output.add(name=ids.name, data_type=pb2.DataType.Value(ids.triton_dtype), dims=[-1])
    config.output.add(name=lengths.name, data_type=pb2.DataType.Value(lengths.triton_dtype), dims=[1])
    _parameters(config, {"max_tokens": str(max_tokens), "pad_to_multiple": str(PAD_TO_MULTIPLE),
                         "max_caption_bytes": str(max_caption_bytes(max_tokens))})
    _batching(config, preferred, max_queue_delay_us)
    _instances(pb2, config, instances, "cpu")
    _common(pb2, config, version=version, warmup=warmup, python_env=python_env)
    return _text(config)


def render_ensemble_config(*, max_batch: int, embed_dims: list[int], version: int | None = None) -> str:
    """config.pbtxt of `caption_encoder`: captions TYPE_STRING [1] -> tokenizer -> text_encoder ->
    text_embedding FP32 [embed_dim]. With `version`, the ensemble and both steps use that version."""
    pb2, _ = _schema()
    ids, lengths = TEXT.inputs
    out = TEXT.outputs[0]
    config = pb2.ModelConfig(name=CAPTION_ENCODER, platform="ensemble", max_batch_size=max_batch)
    config.input.add(name=CAPTIONS, data_type=pb2.TYPE_STRING, dims=[1])
    config.output.add(name=out.name, data_type=pb2.DataType.Value(out.triton_dtype), dims=embed_dims)
    step_version = -1 if version is None else version
    tok = config.ensemble_scheduling.step.add(model_name=TOKENIZER, model_version=step_version)
    tok.input_map[CAPTIONS] = CAPTIONS
    tok.output_map[ids.name] = f"_{ids.name}"
    tok.output_map[lengths.name] = f"_{lengths.name}"
    txt = config.ensemble_scheduling.step.add(model_name=TEXT.graph, model_version=step_version)
    txt.input_map[ids.name] = f"_{ids.name}"
    txt.input_map[lengths.name] = f"_{lengths.name}"
    txt.output_map[out.name] = out.name
    _common(pb2, config, version=version, warmup=None, python_env=None)
    return _text(config)


def parse_config(text: str) -> Any:
    """A config.pbtxt's text as a ModelConfig message (tests, `serve`'s look at a repository)."""
    pb2, text_format = _schema()
    return text_format.Parse(text, pb2.ModelConfig())


def check_schema() -> None:
    """Raise the one-line VsrnError naming the serving extra when tritonclient is missing."""
    _schema()
