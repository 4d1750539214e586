"""A Triton Inference Server model repository from an export folder (and optionally TensorRT plans).

`build_model_repository(TritonRepoConfig(...))` is the library behind `vsrn-deploy triton-repo`. It
writes::

    <out>/README.md                       how to serve it; the TensorRT version of the plans
    <out>/vsrn_repo.json                  what it was built from (marks the folder as ours)
    <out>/image_encoder/config.pbtxt
    <out>/image_encoder/N/model.onnx      (or model.plan; N: --model-version, default 1)
    <out>/text_encoder/config.pbtxt
    <out>/text_encoder/N/model.onnx       (or model.plan)
    <out>/text_encoder/vocab.json         the tokeniser's vocabulary (Triton ignores extra files)
    <out>/text_encoder/warmup/            token_ids, lengths: the warmup sample (one real caption)
    <out>/tokenizer/config.pbtxt          python backend: captions (strings) -> token_ids, lengths
    <out>/tokenizer/N/model.py            (+ vsrn_tokens.py, a copy of vsrn_deploy/core/tokens.py, and
    <out>/tokenizer/N/vocab.json           the export's vocab.json)
    <out>/tokenizer/warmup/captions       the warmup caption (TYPE_STRING file: length, UTF-8 bytes)
    <out>/caption_encoder/config.pbtxt    ensemble: captions -> tokenizer -> text_encoder

Configs are Triton's own ModelConfig messages (`triton_config`, tritonclient: the `serving` extra).
Every config pins version N (`version_policy specific`): what Triton serves is what this command
wrote, never another version folder beside it. Files of other versions an earlier run wrote stay
byte-identical (still listed in vsrn_repo.json). Each model but the ensemble has a warmup sample.

With `--backend python` each encoder is a python-backend model running its graph with ONNX Runtime
(`<encoder>/1/model.py` + `model.onnx`), for servers without Triton's onnxruntime backend (CPU
builds, the server inside nvidia-pytriton). The python-backend models need numpy, onnxruntime
(encoders) and nltk (tokenizer) in the server's Python, never torch or vsrn-deploy.

Tensor names, data types and shapes come from the export manifest, so the configuration matches
the graphs the exporter checked. Every copied file is checked against its sha256 (manifest or
engine sidecar) first; the repository is built in a temporary folder beside `out` and committed
file by file by the repository's writer (`vsrn_deploy.artifacts.triton`): only files an earlier
repository's vsrn_repo.json lists are replaced, anything else a user keeps there (another model
version folder, notes) stays, and a failure leaves nothing half-written. No torch, no tensorrt imports.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vsrn_deploy.artifacts import triton as repo_artifact
from vsrn_deploy.artifacts.base import file_entry
from vsrn_deploy.artifacts.export import rebuild_hint, verify_export
from vsrn_deploy.artifacts.outputs import MARKER_KEY
from vsrn_deploy.artifacts.outputs import marker as owner_marker
from vsrn_deploy.core import contract
from vsrn_deploy.core.contract import TEXT
from vsrn_deploy.core.errors import VsrnError, import_optional
from vsrn_deploy.io.files import atomic_write_json, atomic_write_text, sha256_file
from vsrn_deploy.serving import triton_config
from vsrn_deploy.serving.triton_config import (
    CAPTIONS,
    PAD_TO_MULTIPLE,
    WarmupInput,
    render_config,
    render_ensemble_config,
    render_tokenizer_config,
)
from vsrn_deploy.serving.triton_config import spec_dims as _spec_dims

BACKENDS = ("onnxruntime", "tensorrt", "python")
PRECISIONS = contract.PRECISIONS
KINDS = ("gpu", "cpu")
MODELS = tuple(spec.graph for spec in contract.ENCODERS.values())
TOKENIZER = repo_artifact.TOKENIZER  # python backend: captions -> token_ids + lengths
CAPTION_ENCODER = repo_artifact.CAPTION_ENCODER  # ensemble: captions -> text_embedding
REPO_ENTRIES = (*MODELS, TOKENIZER, CAPTION_ENCODER, "README.md")  # what a repository holds (+ its marker)
DEFAULT_MAX_TOKENS = 256  # longest caption (ids incl. <start>/<end>) the tokenizer accepts
MARKER_NAME = repo_artifact.MARKER_NAME
REPO_KIND = repo_artifact.REPO_KIND
DEFAULT_PREFERRED = (8, 32)
FALLBACK_MAX_BATCH = 128  # when neither the manifest nor the plans record a limit

_MODEL_FILE = {"onnxruntime": "model.onnx", "tensorrt": "model.plan", "python": "model.onnx"}
_TEMPLATES = Path(__file__).parent / "triton_models"  # python-backend model.py files


@dataclass(frozen=True)
class TritonRepoConfig:
    """Options of one model repository.

    Args:
        onnx_dir: the export folder (`vsrn-deploy export`); always needed (tensor specs, vocab.json).
        out: the model repository to write.
        backend: "onnxruntime" (the ONNX graphs), "tensorrt" (plans from `engine_dir`) or "python"
            (the ONNX graphs run by ONNX Runtime inside Triton's python backend).
        precision: "fp32", "fp16" or "int8" (the INT8 graphs: onnxruntime or python, on the CPU);
            None: fp32 for onnxruntime and python, for tensorrt the fp16 plans when both encoders
            have one, else fp32.
        engine_dir: folder of `<encoder>.<precision>.plan` + sidecar (backend tensorrt).
        max_batch: Triton's max_batch_size; None: the largest the export (manifest max_batch) and
            the plans (profiles) allow, or 128 where nothing is recorded.
        preferred_batch: dynamic batcher preferred sizes; None: those of (8, 32) <= max_batch.
        max_queue_delay_us: how long the dynamic batcher waits to fill a batch.
        instances: model instances per device.
        kind: "gpu" or "cpu" (instance_group kind; for python, also ONNX Runtime's provider).
        max_tokens: the tokenizer refuses captions with more ids than this (<start>/<end> counted).
        overwrite: replace a non-empty `out` that is not a repository written by this command.
        model_version: the version folder written (`<model>/<N>/`); every config pins it
            (version_policy specific), so Triton serves this version and no other folder. Files of
            other versions an earlier run wrote stay as they are (and stay listed as this command's).
        python_env: a packed Python environment (.tar.gz of venv-pack or conda-pack) or a venv folder
            (`python -m venv`, packed here with venv-pack) holding what the python-backend models import;
            copied into the repository once (`tokenizer/python_env/`), and every python-backend config
            names it (EXECUTION_ENV_PATH), so the server needs no packages in its own Python.
    """

    onnx_dir: str | os.PathLike[str] = "export"
    out: str | os.PathLike[str] = "model_repository"
    backend: str = "onnxruntime"
    precision: str | None = None
    engine_dir: str | os.PathLike[str] | None = "engines"
    max_batch: int | None = None
    preferred_batch: tuple[int, ...] | None = None
    max_queue_delay_us: int = 2000  # 100 us split 16 in-flight captions into batches of ~4 (python backend)
    instances: int = 1
    kind: str = "gpu"
    max_tokens: int = DEFAULT_MAX_TOKENS
    overwrite: bool = False
    model_version: int = 1
    python_env: str | os.PathLike[str] | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise VsrnError(f"--backend must be one of {', '.join(BACKENDS)} (got {self.backend!r})")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise VsrnError(f"--precision must be one of {', '.join(PRECISIONS)} (got {self.precision!r})")
        if self.kind not in KINDS:
            raise VsrnError(f"--kind must be one of {', '.join(KINDS)} (got {self.kind!r})")
        if self.backend == "tensorrt" and self.kind != "gpu":
            raise VsrnError("--backend tensorrt needs --kind gpu: a TensorRT plan only runs on the GPU "
                            "it was built for; use --backend onnxruntime or python for CPU serving")
        if self.precision == "int8" and (self.backend == "tensorrt" or self.kind != "cpu"):
            raise VsrnError("--precision int8 serves the INT8 graphs, which are made for ONNX Runtime's CPU "
                            "provider: use --backend onnxruntime or python with --kind cpu")
        if self.max_batch is not None and self.max_batch < 1:
            raise VsrnError(f"--max-batch must be >= 1 (got {self.max_batch})")
        # the ranges of the ModelConfig fields they fill (int32 counts and sizes, uint64 delay, int64 version)
        for flag, number, top in (("--max-batch", self.max_batch, _INT32_MAX),
                                  ("--instances", self.instances, _INT32_MAX),
                                  ("--max-tokens", self.max_tokens, _INT32_MAX),
                                  ("--max-queue-delay-us", self.max_queue_delay_us, 2**64 - 1),
                                  ("--model-version", self.model_version, MAX_MODEL_VERSION),
                                  *(("--preferred-batch", b, _INT32_MAX) for b in self.preferred_batch or ())
                                  ):
            if number is not None and number > top:
                raise VsrnError(f"{flag} must be <= {top}, the largest Triton's model configuration holds "
                                f"(got {number})")
        if self.preferred_batch is not None and any(b < 1 for b in self.preferred_batch):
            raise VsrnError(f"--preferred-batch sizes must be >= 1 (got {list(self.preferred_batch)})")
        if self.max_queue_delay_us < 0:
            raise VsrnError(f"--max-queue-delay-us must be >= 0 (got {self.max_queue_delay_us})")
        if self.instances < 1:
            raise VsrnError(f"--instances must be >= 1 (got {self.instances})")
        if self.model_version < 1:
            raise VsrnError(f"--model-version must be >= 1, Triton's version folders are 1, 2, ... "
                            f"(got {self.model_version})")
        if self.max_tokens < 3:
            raise VsrnError(f"--max-tokens must be >= 3, room for <start>, a word and <end> "
                            f"(got {self.max_tokens})")


_INT32_MAX = 2**31 - 1
MAX_MODEL_VERSION = 2**63 - 1  # a version is an int64 in Triton's model configuration
_log = logging.getLogger(__name__)  # progress lines; the command line shows them on stderr


def parse_batches(text: str) -> tuple[int, ...]:
    """'8,32' -> (8, 32); raises VsrnError on anything but integers (the config checks the range)."""
    try:
        values = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise VsrnError(
            f"--preferred-batch must be comma-separated integers like 8,32 (got {text!r})"
        ) from None
    return values


@dataclass(frozen=True)
class _Source:
    """One model's file to copy and what Triton needs to know about it."""

    model: str
    path: Path
    sha256: str
    spec: dict[str, Any]
    batch_limit: int | None  # largest batch the plan's profiles cover from 1, None: unbounded
    profiles: tuple[int, ...] = ()  # plan profile indices Triton may use
    sidecar: dict[str, Any] | None = None


def _check_graph_names(path: Path, spec: dict[str, Any]) -> None:
    """The ONNX graph's inputs/outputs are the manifest's (a graph swapped in under the same name
    and a fresh manifest would still pass the sha256 check, but not this)."""
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file
        raise VsrnError(f"{path} is not a readable ONNX model ({exc}); rebuild with: "
                        f"{rebuild_hint(path.parent)}") from None
    want_in = [t["name"] for t in spec["inputs"]]
    want_out = [t["name"] for t in spec["outputs"]]
    inits = {i.name for i in graph.initializer}
    got_in = [i.name for i in graph.input if i.name not in inits]
    got_out = [o.name for o in graph.output]
    if got_in != want_in or got_out != want_out:
        raise VsrnError(f"{path} has inputs {got_in} / outputs {got_out}, the manifest says {want_in} / "
                        f"{want_out}; rebuild with: {rebuild_hint(path.parent)}")


def _batch_coverage(profiles: list[dict[str, Any]]) -> tuple[int, tuple[int, ...]]:
    """Largest N with every batch 1..N inside some profile, and the profiles that reach it."""
    ranges = sorted((int(p["batch"][0]), int(p["batch"][2]), i) for i, p in enumerate(profiles))
    covered, used = 0, []
    for lo, hi, index in ranges:
        if lo > covered + 1:
            break
        if hi > covered:
            covered = hi
            used.append(index)
    return covered, tuple(sorted(used))


def _engine_source(model: str, engine_dir: Path, precision: str, manifest: dict[str, Any],
                   spec: dict[str, Any]) -> _Source:
    from vsrn_deploy.backend.sidecar import read_sidecar, rebuild_hint

    plan = engine_dir / contract.plan_name(model, precision)
    if not plan.is_file():
        flag = " --fp16" if precision == "fp16" else ""
        raise VsrnError(f"--backend tensorrt needs {plan}, which is missing; build it on the serving GPU "
                        f"with: vsrn-deploy build-engine --onnx-dir EXPORT --out {engine_dir}{flag}")
    sidecar = read_sidecar(plan)
    encoder = model.split("_")[0]
    if sidecar.get("encoder") != encoder or sidecar.get("precision") != precision:
        raise VsrnError(f"{plan}'s sidecar describes the {sidecar.get('encoder')} encoder at "
                        f"{sidecar.get('precision')}, not {encoder} at {precision}; {rebuild_hint(plan)}")
    digest = sha256_file(plan)
    if digest != sidecar["plan_sha256"]:
        raise VsrnError(f"{plan} changed since it was built (sha256 differs from its sidecar); "
                        f"{rebuild_hint(plan)}")
    built_from = (sidecar.get("source_onnx") or {}).get("sha256")
    exported = {manifest["files"][f]["sha256"] for k in contract.PLAN_PRECISIONS  # what plans are built from
                if (f := manifest["graphs"][model].get(k)) and f in manifest["files"]}
    if built_from and built_from not in exported:
        raise VsrnError(f"{plan} was built from another export than the one in the manifest given "
                        f"(source ONNX sha256 differs); pass the export it was built from, or "
                        f"{rebuild_hint(plan)}")
    profiles = list(sidecar.get("profiles") or [])
    limit, used = (None, ()) if not profiles else _batch_coverage(profiles)
    if profiles and limit == 0:
        raise VsrnError(f"{plan}'s optimisation profiles do not start at batch 1, but Triton sends any "
                        f"batch from 1 up; rebuild with --min-batch 1")
    return _Source(model, plan, digest, spec, limit, used if len(profiles) > 1 else (), sidecar)


def _onnx_source(model: str, onnx_dir: Path, precision: str, manifest: dict[str, Any],
                 spec: dict[str, Any]) -> _Source:
    name = manifest["graphs"][model].get(precision)
    if not name:
        raise VsrnError(f"{onnx_dir} has no {precision} graph of {model}; re-export with: "
                        f"{rebuild_hint(onnx_dir, manifest)} --precision all")
    if name not in manifest["files"]:
        raise VsrnError(f"{onnx_dir}/manifest.json names {name} for {model} but does not list its "
                        f"sha256; rebuild with: {rebuild_hint(onnx_dir, manifest)}")
    path = onnx_dir / name
    _check_graph_names(path, spec)
    return _Source(model, path, manifest["files"][name]["sha256"], spec, None)


def _owned_entries(marker_data: dict[str, Any]) -> list[str]:
    """What an earlier repository's vsrn_repo.json says this command wrote
    (`vsrn_deploy.artifacts.triton.owned_files`)."""
    return repo_artifact.owned_files(marker_data)


def _env_needs(backend: str) -> tuple[str, ...]:
    """The modules the python-backend models of a repository import."""
    return ("numpy", "nltk", "onnxruntime") if backend == "python" else ("numpy", "nltk")


def _needs(backend: str) -> str:
    """The same as pip arguments."""
    # numpy < 2: the python backend stub of these Triton releases garbles string tensors under numpy 2
    return " ".join("'numpy<2'" if module == "numpy" else module for module in _env_needs(backend))


def _readme(cfg: TritonRepoConfig, out: Path, sources: list[_Source], max_batch: int,
            precision: str) -> str:
    trt_versions = sorted({str(s.sidecar["tensorrt_version"]) for s in sources if s.sidecar})
    gpus = sorted({str((s.sidecar.get("gpu") or {}).get("name")) for s in sources if s.sidecar})
    root = out.resolve()
    lines = [
        "# VSRN encoders for Triton Inference Server",
        "",
        f"Written by `vsrn-deploy triton-repo` from `{cfg.onnx_dir}`: backend {cfg.backend}, "
        f"precision {precision}, max_batch_size {max_batch}, instance kind {cfg.kind}.",
        "",
        "On this machine, with a tritonserver `vsrn-deploy serve` finds (--server, $TRITONSERVER, PATH, or "
        "the one `bash .ci/setup` unpacks in a vsrn-deploy checkout; docs/serving.md):",
        "",
        "```",
        f"vsrn-deploy serve --repo {root} --http-port 8000 --grpc-port 8001",
        "```",
        "",
    ]
    if cfg.python_env is not None:
        lines += [
            f"This repository carries its own Python environment, `{ENV_FILE}` (packed from "
            f"`{cfg.python_env}`), which every python-backend config names (EXECUTION_ENV_PATH): the "
            "python backend unpacks and activates it, so the server's Python needs no packages. Serve it "
            "with the official container, nothing installed at start:",
            "",
            "```",
            f"docker run --rm -p 8000:8000 -p 8001:8001 -v {root}:/models \\",
            "  nvcr.io/nvidia/tritonserver:24.10-py3 tritonserver --model-repository=/models",
            "```",
            "",
            "A conda-pack archive carries Python itself; a venv-pack archive (what a venv folder is "
            "packed into) points at its base Python by path, so that Python 3.11 must exist at the same "
            "path inside the container: for containers, pack a conda environment with conda-pack.",
        ]
    else:
        lines += [
            "Or serve it with the official container (its python backend runs `tokenizer`"
            + (" and the encoders" if cfg.backend == "python" else "")
            + f"; install what they import into the container's Python first: {_needs(cfg.backend)}; "
            "or write the repository with `--python-env` to carry them):",
            "",
            "```",
            f"docker run --rm -p 8000:8000 -p 8001:8001 -v {root}:/models \\",
            "  nvcr.io/nvidia/tritonserver:24.10-py3 \\",
            f"  sh -c \"pip install {_needs(cfg.backend)} && tritonserver --model-repository=/models\"",
            "```",
        ]
    lines += [
        "",
        "or with the CPU server inside the nvidia-pytriton wheel by hand (`--backend python --kind cpu` "
        "repositories; VENV is a Python 3.11 environment with " + _needs("python") + "; the server's "
        "environment, which `vsrn-deploy serve` sets itself, is on its line: VENV's bin first on PATH, "
        "and its libpython's folder first on LD_LIBRARY_PATH, as the stub links libpython3.11.so.1.0):",
        "",
        "```",
        "$VENV/bin/pip install --no-deps --target /opt/pytriton nvidia-pytriton==0.7.0",
        "S=/opt/pytriton/pytriton/tritonserver",
        "cp $S/python_backend_stubs/3.11/triton_python_backend_stub $S/backends/python/",
        "L=$($VENV/bin/python -c \"import sysconfig; print(sysconfig.get_config_var('LIBDIR'))\")",
        "PATH=$VENV/bin:$PATH LD_LIBRARY_PATH=$L:$LD_LIBRARY_PATH $S/bin/tritonserver "
        f"--model-repository={root} \\",
        "  --backend-directory=$S/backends --http-address=127.0.0.1 --grpc-address=127.0.0.1",
        "```",
        "",
        "- `image_encoder`: input `region_features` FP32 [batch, regions, feature_dim]; outputs "
        "`image_embedding` FP32 [batch, embed_dim] and `region_embeddings` FP32 "
        "[batch, regions, embed_dim], l2-normalised.",
        "- `text_encoder`: inputs `token_ids` INT64 [batch, tokens] (padded with 0) and `lengths` "
        "INT64 [batch, 1] (Triton reshapes it to the model's [batch]); output `text_embedding` FP32 "
        "[batch, embed_dim], l2-normalised.",
        f"- `{CAPTION_ENCODER}` (ensemble): input `{CAPTIONS}` STRING [batch, 1] (UTF-8 captions); "
        f"output `text_embedding` FP32 [batch, embed_dim]: `{TOKENIZER}` then `text_encoder`, so clients "
        "send raw strings.",
        f"- `{TOKENIZER}`: input `{CAPTIONS}` STRING [batch, 1]; outputs `token_ids` INT64 [batch, tokens] "
        f"and `lengths` INT64 [batch, 1], vsrn-deploy's tokenisation (`{TOKENIZER}/1/vsrn_tokens.py`) "
        "with the export's vocabulary. A caption with no known word (search's rule and message) or more "
        f"than {cfg.max_tokens} ids (`--max-tokens`) is refused (HTTP 400). Each request is padded to a "
        f"multiple of {PAD_TO_MULTIPLE} tokens so the text encoder's dynamic batcher can merge similar "
        "requests.",
        "- To tokenise on the client instead: "
        "`vsrn_deploy.load_vocab('text_encoder/vocab.json').encode(caption)` gives the ids, "
        "`<start>` first and `<end>` last; `lengths` counts them.",
        "- The dynamic batcher only merges requests of the same shape: pad `token_ids` to one "
        "length (e.g. the longest caption you expect) to let it batch text requests.",
        f"- Versions: this run wrote version {cfg.model_version} (`<model>/{cfg.model_version}/`) and every "
        f"config.pbtxt pins it (`version_policy {{ specific {{ versions: {cfg.model_version} }} }}`), so "
        "Triton serves this version and no other folder, yours included. Other versions an earlier "
        "`vsrn-deploy triton-repo` wrote stay as they were (not served; `--model-version N` serves N again, "
        "rewritten from the export); version folders you add yourself are never touched.",
        f"- Warmup: `image_encoder`, `text_encoder` and `{TOKENIZER}` run one batch-1 sample "
        "(`model_warmup`; the text samples are one caption of the vocabulary's first words, in "
        "`<model>/warmup/`) before they report ready, so the first request does not pay for loading; a "
        "sample that fails fails the load.",
    ]
    if trt_versions:
        lines += [
            "",
            f"TensorRT plans built with TensorRT {', '.join(trt_versions)} on {', '.join(gpus)}. A plan "
            "only runs on the TensorRT version and GPU model that built it: use a Triton release that "
            "ships that TensorRT version, on that GPU, or rebuild the plans there with "
            "`vsrn-deploy build-engine` and run `vsrn-deploy triton-repo --backend tensorrt` again.",
        ]
    return "\n".join(lines) + "\n"


ENV_FILE = f"{TOKENIZER}/python_env/vsrn-python.tar.gz"  # the packed environment, inside a model folder
# (tritonserver refuses a repository-root folder without config.pbtxt; in a model folder a non-numeric
# folder is only a warning). Every python-backend config names it by the same path, so it is unpacked once.
ENV_FROM_MODEL = f"../{ENV_FILE}"
WARMUP_DIR = "warmup"  # <model>/warmup/<file>: where Triton reads model_warmup's input_data_file
_WARMUP_WORDS = 3  # the warmup caption: the vocabulary's first words the tokeniser reproduces
_NUMPY = {"TYPE_INT64": "<i8", "TYPE_INT32": "<i4"}  # little-endian, as Triton reads warmup files


def warmup_caption(word2idx: dict[str, int]) -> tuple[str, list[int]] | None:
    """A caption of known words for the warmup samples and its ids (`<start>` ... `<end>`): the first
    words after the special tokens that the tokeniser maps to themselves; None if the vocabulary has none."""
    from vsrn_deploy.core.tokens import SPECIAL_TOKENS, UNK, encode, unusable_query

    words: list[str] = []
    for word, index in sorted(word2idx.items(), key=lambda item: item[1]):
        if word not in SPECIAL_TOKENS and encode(word2idx, word)[1:-1] == [index]:
            words.append(word)
            if len(words) == _WARMUP_WORDS:
                break
    if not words:
        return None
    caption = " ".join(words)
    ids = encode(word2idx, caption)
    if unusable_query(ids, caption, word2idx[UNK]):
        return None
    return caption, ids


def string_tensor_bytes(values: list[str]) -> bytes:
    """A TYPE_STRING tensor as Triton reads it from a file: per element a 4-byte little-endian length,
    then its UTF-8 bytes."""
    import struct

    return b"".join(struct.pack("<I", len(v.encode("utf-8"))) + v.encode("utf-8") for v in values)


def _token_width(count: int, profiles: list[dict[str, Any]]) -> int:
    """The warmup's token_ids width: the tokenizer's padding of `count` ids, moved inside the plan's
    token range (the profiles the instances use) where there is one."""
    width = -(-count // PAD_TO_MULTIPLE) * PAD_TO_MULTIPLE
    ranges = [p["tokens"] for p in profiles if isinstance(p, dict) and p.get("tokens")]
    if ranges:
        low, high = max(int(r[0]) for r in ranges), min(int(r[-1]) for r in ranges)
        if low <= high:
            width = min(max(width, low, count), high)
    return width


def _warmups(tmp: Path, sources: list[_Source], caption: tuple[str, list[int]] | None
             ) -> dict[str, list[WarmupInput]]:
    """Each model's warmup sample (batch 1), its files written under `<model>/warmup/`: the image
    encoder on zeros, the text encoder and the tokenizer on the warmup caption. The ensemble has none
    (its steps are warmed up themselves)."""
    import numpy as np

    samples: dict[str, list[WarmupInput]] = {}
    for src in sources:
        inputs = []
        if src.model == TEXT.graph:
            if caption is None:
                continue
            _, ids = caption
            profiles = list((src.sidecar or {}).get("profiles") or [])
            used = [profiles[i] for i in (src.profiles or (0,)) if i < len(profiles)]
            width = _token_width(len(ids), used)
            rows = {TEXT.inputs[0].name: (ids + [0] * width)[:width],
                    TEXT.inputs[1].name: [min(len(ids), width)]}
            for t in src.spec["inputs"]:
                data_type = triton_config.DTYPES.get(str(t["dtype"]), "")
                if t["name"] not in rows or data_type not in _NUMPY:
                    raise VsrnError(f"{src.model}'s input {t['name']} ({t['dtype']}) is not the text "
                                    "encoder's token_ids / lengths; re-export with a current vsrn-deploy")
                folder = tmp / src.model / WARMUP_DIR
                folder.mkdir(parents=True, exist_ok=True)
                raw = np.asarray(rows[t["name"]], dtype=_NUMPY[data_type]).tobytes()
                (folder / t["name"]).write_bytes(raw)
                dims = tuple(d if d > 0 else width for d in _spec_dims(list(t["shape"]))) or (1,)
                inputs.append(WarmupInput(t["name"], data_type, dims, t["name"]))
        else:
            for t in src.spec["inputs"]:
                dims = tuple(d if d > 0 else 1 for d in _spec_dims(list(t["shape"]))) or (1,)
                inputs.append(WarmupInput(t["name"], triton_config.DTYPES.get(str(t["dtype"]), "TYPE_FP32"),
                                          dims))
        samples[src.model] = inputs
    if caption is not None:
        folder = tmp / TOKENIZER / WARMUP_DIR
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CAPTIONS).write_bytes(string_tensor_bytes([caption[0]]))
        samples[TOKENIZER] = [WarmupInput(CAPTIONS, "TYPE_STRING", (1,), CAPTIONS)]
    return samples


def _keep_other_versions(folder: Any, tmp: Path, version: int) -> list[str]:
    """Stage, unchanged, the files of other version folders that the earlier repository's marker lists
    (hard links where possible): the writer would otherwise remove them as its own stale files."""
    old = folder.old_manifest or {}
    listed = old.get("files") if isinstance(old.get("files"), dict) else {}
    kept = []
    for rel in listed:
        parts = str(rel).split("/")
        if (len(parts) < 3 or parts[0] not in (*MODELS, TOKENIZER, CAPTION_ENCODER) or not parts[1].isdigit()
                or int(parts[1]) == version or any(p in ("", ".", "..") for p in parts)):
            continue
        source = folder.target / rel
        if source.is_symlink() or not source.is_file():
            continue
        target = tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)
        kept.append(str(rel))
    return kept


def _env_hint(backend: str) -> str:
    return (f"make one with: python3.11 -m venv ENV && ENV/bin/pip install {_needs(backend)}, then pass "
            "--python-env ENV (or a conda-pack / venv-pack archive of it)")


def check_env_archive(path: Path, backend: str) -> None:
    """A .tar.gz of venv-pack or conda-pack holds Python 3.11's site-packages with numpy < 2 and what
    the models import (by its members: nothing is unpacked)."""
    import re
    import tarfile

    try:
        with tarfile.open(path, "r:gz") as archive:
            names = archive.getnames()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise VsrnError(f"--python-env {path} is not a readable .tar.gz ({exc}); pass an archive made by "
                        f"venv-pack or conda-pack, or a venv folder") from None
    site = re.compile(r"^(?:\./)?lib/python(?P<version>3\.\d+)/site-packages/(?P<rest>.+)$")
    found: dict[str, set[str]] = {}
    numpy_versions = []
    for name in names:
        hit = site.match(name)
        if not hit:
            continue
        found.setdefault(hit["version"], set()).add(hit["rest"].split("/")[0])
        dist = re.match(r"numpy-(?P<v>[\d.]+[^/]*)\.dist-info/", hit["rest"])
        if dist:
            numpy_versions.append(dist["v"])
    if "3.11" not in found:
        got = ", ".join(sorted(found)) or "none"
        raise VsrnError(f"--python-env {path} holds no Python 3.11 site-packages (found: {got}); "
                        f"tritonserver 2.51's python backend stub embeds Python 3.11: {_env_hint(backend)}")
    missing = [m for m in _env_needs(backend) if m not in found["3.11"]]
    if missing:
        raise VsrnError(f"--python-env {path} lacks {', '.join(missing)}, which the repository's "
                        f"python-backend models import; {_env_hint(backend)}")
    if any(int(v.split(".")[0]) >= 2 for v in numpy_versions):
        raise VsrnError(f"--python-env {path} has numpy {numpy_versions[0]}; tritonserver 2.51's python "
                        f"backend garbles string tensors (captions) under numpy 2: {_env_hint(backend)}")


def pack_venv(venv: Path, output: Path, backend: str) -> None:
    """Pack a `python -m venv` folder with venv-pack after checking it runs and holds what the models
    import (numpy < 2, nltk, onnxruntime for the python backend)."""
    from vsrn_deploy.serving.triton_server import python_problems

    if not (venv / "pyvenv.cfg").is_file() or not (venv / "bin" / "python").exists():
        raise VsrnError(f"--python-env {venv} is a folder but not a venv made by `python -m venv` (no "
                        "pyvenv.cfg or bin/python); pass such a venv, or an archive made by venv-pack or "
                        "conda-pack")
    problems = [p for p in python_problems(venv / "bin" / "python")
                if backend == "python" or not p.startswith("onnxruntime")]
    if problems:
        raise VsrnError(f"--python-env {venv}: {'; '.join(problems)}; {_env_hint(backend)}")
    venv_pack = import_optional("venv_pack", "serving", "--python-env with a venv folder")
    try:
        venv_pack.pack(prefix=str(venv), output=str(output), format="tar.gz", compress_level=4, force=True)
    except Exception as exc:  # noqa: BLE001 - venv-pack's refusals (an editable install, a conda env ...)
        raise VsrnError(f"--python-env {venv}: venv-pack cannot pack it ({str(exc).splitlines()[0]}); "
                        "pass a venv made by `python -m venv` with regular installs, or a conda-pack "
                        "archive") from None


def _stage_python_env(cfg: TritonRepoConfig, tmp: Path) -> dict[str, Any] | None:
    """Put the packed environment at `tmp/ENV_FILE`; its marker entry."""
    if cfg.python_env is None:
        return None
    given = Path(cfg.python_env)
    target = tmp / ENV_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    if given.is_dir():
        pack_venv(given, target, cfg.backend)
        _log.info(f"packed {given} with venv-pack -> {ENV_FILE}")
        return {"file": ENV_FILE, "sha256": sha256_file(target), "source": str(given), "packed_from": "venv"}
    digest = sha256_file(given)
    shutil.copyfile(given, target)
    if sha256_file(target) != digest:
        raise VsrnError(f"--python-env {given} changed while it was copied; run the command again")
    return {"file": ENV_FILE, "sha256": digest, "source": str(given), "packed_from": "archive"}


def _check_python_env(cfg: TritonRepoConfig) -> None:
    """Before anything is written: the path exists and is a venv folder or a checked archive."""
    if cfg.python_env is None:
        return
    given = Path(cfg.python_env)
    if given.is_dir():
        return  # checked (and packed) by pack_venv
    if not given.is_file():
        raise VsrnError(f"--python-env {given} does not exist; pass a venv folder (`python -m venv`) or a "
                        ".tar.gz made by venv-pack or conda-pack")
    if not given.name.endswith((".tar.gz", ".tgz")):
        raise VsrnError(f"--python-env {given} is neither a folder nor a .tar.gz; pass a venv folder or an "
                        "archive made by venv-pack or conda-pack")
    check_env_archive(given, cfg.backend)


def build_model_repository(cfg: TritonRepoConfig) -> Path:
    """Write a Triton model repository for the two encoders.

    Args:
        cfg: the options.

    Returns:
        The repository folder (`cfg.out`).

    Raises:
        VsrnError: missing or changed files, a max batch beyond what the export or plans allow,
            an `out` that is neither empty nor an earlier repository (without overwrite).
    """
    say = _log.info
    onnx_dir, out = Path(cfg.onnx_dir), Path(cfg.out)
    triton_config.check_schema()  # tritonclient (the serving extra) writes the configs
    _check_python_env(cfg)
    inputs = [onnx_dir, cfg.engine_dir if cfg.backend == "tensorrt" else None]
    # checked before anything is read or created: path, overlap with the inputs, ownership
    folder = repo_artifact.KIND.writer(out, entries=REPO_ENTRIES, overwrite=cfg.overwrite, input_dirs=inputs)
    manifest = verify_export(onnx_dir)
    for model in MODELS:
        if model not in manifest["graphs"]:
            raise VsrnError(f"{onnx_dir}/manifest.json has no {model}; rebuild with: "
                            f"{rebuild_hint(onnx_dir, manifest)}")
    if contract.VOCAB_NAME not in manifest["files"]:
        raise VsrnError(f"{onnx_dir} has no {contract.VOCAB_NAME}, which clients need to tokenise captions; "
                        f"re-export with: {rebuild_hint(onnx_dir, manifest)} --vocab PATH")

    precision = cfg.precision
    if cfg.backend == "tensorrt":
        if cfg.engine_dir is None:
            raise VsrnError("--backend tensorrt needs --engine-dir (the folder `vsrn-deploy build-engine` "
                            "wrote)")
        engine_dir = Path(cfg.engine_dir)
        if precision is None:
            both = all((engine_dir / contract.plan_name(m, "fp16")).is_file() for m in MODELS)
            precision = "fp16" if both else "fp32"
        sources = [_engine_source(m, engine_dir, precision, manifest, manifest["graphs"][m]) for m in MODELS]
    else:  # onnxruntime and python: the ONNX graphs
        precision = precision or "fp32"
        sources = [_onnx_source(m, onnx_dir, precision, manifest, manifest["graphs"][m]) for m in MODELS]

    # The largest batch: the export validated up to manifest max_batch; a plan accepts its profiles.
    limits = {f"{onnx_dir}/manifest.json max_batch": manifest.get("max_batch")}
    limits.update({str(s.path): s.batch_limit for s in sources})
    known = {k: int(v) for k, v in limits.items() if v is not None}
    ceiling = min(known.values()) if known else None
    max_batch = cfg.max_batch if cfg.max_batch is not None else (ceiling or FALLBACK_MAX_BATCH)
    for where, limit in known.items():
        if max_batch > limit:
            raise VsrnError(f"--max-batch {max_batch} exceeds the largest batch {limit} recorded in {where}; "
                            f"pass --max-batch {ceiling} or less, or re-export / rebuild for larger batches")
    if cfg.preferred_batch is None:
        preferred = tuple(b for b in DEFAULT_PREFERRED if b <= max_batch)
    else:
        preferred = tuple(sorted(set(cfg.preferred_batch)))
        if any(b > max_batch for b in preferred):
            raise VsrnError(f"--preferred-batch {','.join(map(str, preferred))} has sizes above "
                            f"--max-batch {max_batch}; Triton refuses such a configuration")

    from vsrn_deploy.core.tokens import read_word2idx

    caption = warmup_caption(read_word2idx(onnx_dir / contract.VOCAB_NAME))
    if caption is None:
        _log.warning(f"warning: {onnx_dir / contract.VOCAB_NAME} has no word the tokeniser reproduces; "
                     "the text encoder and tokenizer get no warmup sample")
    version = cfg.model_version
    with folder:  # locked; ownership checked again under the lock
        tmp = folder.staging
        kept = _keep_other_versions(folder, tmp, version)
        env = _stage_python_env(cfg, tmp)
        env_path = ENV_FROM_MODEL if env else None
        warmups = _warmups(tmp, sources, caption)
        for src in sources:
            version_dir = tmp / src.model / str(version)
            version_dir.mkdir(parents=True)
            target = version_dir / _MODEL_FILE[cfg.backend]
            shutil.copyfile(src.path, target)
            # Check the copy, not only the source: what Triton loads is what was verified.
            if sha256_file(target) != src.sha256:
                raise VsrnError(f"{src.path} changed while it was copied; run the command again")
            if cfg.backend == "python":
                shutil.copyfile(_TEMPLATES / "onnx_model.py", version_dir / "model.py")
            config = render_config(src.model, cfg.backend, src.spec, max_batch=max_batch,
                                   preferred=preferred, max_queue_delay_us=cfg.max_queue_delay_us,
                                   instances=cfg.instances, kind=cfg.kind, profiles=src.profiles,
                                   version=version, warmup=warmups.get(src.model),
                                   python_env=env_path if cfg.backend == "python" else None)
            atomic_write_text(tmp / src.model / "config.pbtxt", config)
            say(f"{src.model}: {src.path} -> {out / src.model / str(version) / target.name}")
        tok_dir = tmp / TOKENIZER / str(version)
        tok_dir.mkdir(parents=True, exist_ok=True)
        vocab_source = onnx_dir / contract.VOCAB_NAME
        for vocab in (tmp / TEXT.graph / contract.VOCAB_NAME, tok_dir / contract.VOCAB_NAME):
            shutil.copyfile(vocab_source, vocab)
            if sha256_file(vocab) != manifest["files"][contract.VOCAB_NAME]["sha256"]:
                raise VsrnError(f"{vocab_source} changed while it was copied; run the command again")
        shutil.copyfile(_TEMPLATES / "tokenizer_model.py", tok_dir / "model.py")
        shutil.copyfile(Path(__file__).parents[1] / "core" / "tokens.py", tok_dir / "vsrn_tokens.py")
        atomic_write_text(tmp / TOKENIZER / "config.pbtxt", render_tokenizer_config(
            max_batch=max_batch, max_tokens=cfg.max_tokens, instances=cfg.instances, preferred=preferred,
            max_queue_delay_us=cfg.max_queue_delay_us, version=version, warmup=warmups.get(TOKENIZER),
            python_env=env_path))
        embed_dims = _spec_dims(list(manifest["graphs"][TEXT.graph]["outputs"][0]["shape"]))
        # an ensemble needs an (empty) version folder
        (tmp / CAPTION_ENCODER / str(version)).mkdir(parents=True, exist_ok=True)
        atomic_write_text(tmp / CAPTION_ENCODER / "config.pbtxt",
                          render_ensemble_config(max_batch=max_batch, embed_dims=embed_dims, version=version))
        say(f"{TOKENIZER} + {CAPTION_ENCODER}: captions -> {TEXT.embedding}")
        atomic_write_text(tmp / "README.md", _readme(cfg, out, sources, max_batch, precision))
        marker = {
            "format_version": 1,
            MARKER_KEY: owner_marker(REPO_KIND),
            "backend": cfg.backend,
            "precision": precision,
            "max_batch_size": max_batch,
            "model_version": version,
            "python_env": env,
            "export": {"dir": str(onnx_dir),
                       "manifest_sha256": sha256_file(onnx_dir / contract.MANIFEST_NAME)},
            "models": {s.model: {"source": str(s.path), "sha256": s.sha256} for s in sources},
            "tokenizer": {"max_tokens": cfg.max_tokens, "pad_to_multiple": PAD_TO_MULTIPLE},
            "tensorrt_version": sorted({str(s.sidecar["tensorrt_version"]) for s in sources if s.sidecar})
            or None,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        # every file the repository holds, so a later run replaces those and nothing else
        marker["files"] = {p.relative_to(tmp).as_posix(): file_entry(p) for p in sorted(tmp.rglob("*"))
                           if p.is_file() and p.name != MARKER_NAME}
        atomic_write_json(tmp / MARKER_NAME, repo_artifact.RepoMarker.from_dict(marker).to_dict())
        if kept:
            say(f"kept {len(kept)} file(s) of other versions an earlier run wrote (not served: every config "
                f"pins version {version})")
        folder.commit()  # file by file (only the earlier repository's files are replaced), the marker last
    say(f"wrote {out} (serve with: tritonserver --model-repository={out})")
    return out
