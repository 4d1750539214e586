"""`vsrn-deploy triton-repo`: a Triton Inference Server model repository from an export folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vsrn_deploy.cli.common import handle_errors
from vsrn_deploy.cli.options import MAX_SIZE, EngineDir, OnnxDir, OptionalPrecision, Overwrite, bounded, value
from vsrn_deploy.serving.triton_repo import DEFAULT_MAX_TOKENS, MAX_MODEL_VERSION


def triton_repo(
    onnx_dir: OnnxDir = Path("export"),
    engine_dir: EngineDir = Path("engines"),
    out: Annotated[Path, typer.Option(help="The model repository to write.")] = Path("model_repository"),
    backend: Annotated[str, typer.Option(
        help="onnxruntime (the ONNX graphs), tensorrt (the plans) or python (the ONNX graphs in ONNX Runtime "
             "inside Triton's python backend: CPU servers, servers without the onnxruntime backend).")]
        = "onnxruntime",
    precision: OptionalPrecision = None,
    max_batch: Annotated[int | None, typer.Option(
        help="Triton max_batch_size. Default: the largest the export (manifest max_batch) and the plans' "
             "profiles allow, else 128.")] = None,
    preferred_batch: Annotated[str | None, typer.Option(
        help="Dynamic batcher preferred sizes, e.g. 8,32. Default: those of 8,32 <= --max-batch.")] = None,
    max_queue_delay_us: Annotated[int, typer.Option(
        help="Dynamic batcher: microseconds to wait to fill a batch.")] = 2000,
    instances: Annotated[int, typer.Option(help="Model instances per device (instance_group count).")] = 1,
    kind: Annotated[str, typer.Option(help="gpu or cpu (instance_group kind).")] = "gpu",
    max_tokens: Annotated[int, bounded(
        "The tokenizer model refuses captions with more ids than this (<start>/<end> counted).", 3, MAX_SIZE,
        why="room for <start>, a word and <end>; Triton's dimensions are int32")] = DEFAULT_MAX_TOKENS,
    model_version: Annotated[int, bounded(
        "The version folder to write (<model>/N/); every config serves version N only (version_policy "
        "specific), and other versions an earlier run wrote are kept, not served.", 1, MAX_MODEL_VERSION,
        why="Triton's versions are 1, 2, ..., an int64")] = 1,
    python_env: Annotated[Path | None, typer.Option(
        help="A Python environment for the python-backend models, carried inside the repository: a .tar.gz "
             "made by conda-pack or venv-pack, or a venv folder (packed here with venv-pack). It must hold "
             "'numpy<2', nltk (and onnxruntime for --backend python); the server then needs none of them.")]
        = None,
    overwrite: Overwrite = False,
) -> None:
    """Write a Triton model repository: image_encoder, text_encoder, tokenizer and caption_encoder.

    --precision: the graphs to serve; default fp32 for onnxruntime and python, the fp16 plans for
    tensorrt when both exist; int8 runs on onnxruntime with --kind cpu. --engine-dir is read with
    --backend tensorrt.
    """
    from vsrn_deploy.serving.triton_repo import TritonRepoConfig, build_model_repository, parse_batches

    cfg = TritonRepoConfig(
        onnx_dir=onnx_dir, out=out, backend=backend, precision=value(precision), engine_dir=engine_dir,
        max_batch=max_batch,
        preferred_batch=parse_batches(preferred_batch) if preferred_batch is not None else None,
        max_queue_delay_us=max_queue_delay_us, instances=instances, kind=kind, max_tokens=max_tokens,
        overwrite=overwrite, model_version=model_version, python_env=python_env)
    build_model_repository(cfg)
    typer.echo(str(out))


def register(app: typer.Typer) -> None:
    """Add `triton-repo` to the root app."""
    app.command("triton-repo")(handle_errors(triton_repo))
