"""`vsrn-deploy build-engine`: TensorRT plans (+ JSON sidecars) from an export folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vsrn_deploy.cli.common import handle_errors
from vsrn_deploy.cli.options import MAX_SIZE, OnnxDir, PlanPrecision, bounded, value
from vsrn_deploy.engine.builder import MAX_WORKSPACE_MIB, OPT_LEVELS

_DIMS = "TensorRT's dimensions are int32"


def build_engine(
    onnx_dir: OnnxDir = Path("export"),
    out: Annotated[Path, typer.Option(help="Where to write <encoder>.<precision>.plan and .json.")]
        = Path("engines"),
    precision: Annotated[PlanPrecision | None, typer.Option(
        "--precision", case_sensitive=False,
        help="Plan precision. fp16: TensorRT 10 sets the FP16 flag with the export's FP32 islands "
             "pinned; TensorRT 11 builds the FP16 graph, strongly typed. Default: fp32.")] = None,
    fp16: Annotated[bool, typer.Option(
        "--fp16", help="The same as --precision fp16.")] = False,
    min_batch: Annotated[int, bounded("Smallest batch of the profile.", 1, MAX_SIZE, why=_DIMS)] = 1,
    opt_batch: Annotated[int, bounded("Batch TensorRT tunes for.", 1, MAX_SIZE, why=_DIMS)] = 32,
    max_batch: Annotated[int, bounded("Largest batch of the profile.", 1, MAX_SIZE, why=_DIMS)] = 128,
    min_tokens: Annotated[int, bounded("Text: fewest tokens (incl. <start>/<end>).", 1, MAX_SIZE,
                                       why=_DIMS)] = 2,
    opt_tokens: Annotated[int, bounded("Text: token count TensorRT tunes for.", 1, MAX_SIZE, why=_DIMS)] = 16,
    max_tokens: Annotated[int | None, bounded(
        "Text: most tokens (default 64, or the export's limit when smaller).", 1, MAX_SIZE, why=_DIMS)]
        = None,
    profile: Annotated[list[str] | None, typer.Option(
        help="An extra optimisation profile 'min,opt,max' batch or 'min,opt,max:min,opt,max' "
             "batch:tokens; repeat for several. Given, these replace the --*-batch/--*-tokens one.")]
        = None,
    timing_cache: Annotated[Path | None, typer.Option(
        help="Timing cache file: loaded when present, saved after the build (faster rebuilds).")] = None,
    workspace: Annotated[int | None, bounded("Workspace memory pool limit in MiB.", 1, MAX_WORKSPACE_MIB,
                                             why="1 TiB, more than any GPU holds")] = None,
    opt_level: Annotated[int | None, bounded(
        "Builder optimisation level (TensorRT default 3; higher builds longer).", *OPT_LEVELS)] = None,
    encoder: Annotated[str, typer.Option(help="image, text or both.")] = "both",
    skip_precision_check: Annotated[bool, typer.Option(
        "--skip-precision-check", help="Do not fail when the engine inspector cannot confirm the "
        "requested precision.")] = False,
    verbose: Annotated[bool, typer.Option(
        "--verbose", help="TensorRT's verbose log (vsrn-deploy -v shows vsrn-deploy's debug messages).")]
        = False,
) -> None:
    """Build one TensorRT engine per encoder, checked against the export's manifest and inspected."""
    from vsrn_deploy.core.errors import VsrnError
    from vsrn_deploy.engine.builder import BuildSettings, build_engines
    from vsrn_deploy.engine.profiles import DEFAULT_TOKENS, ProfileSpec

    chosen = value(precision)
    if fp16 and chosen not in (None, "fp16"):
        raise VsrnError(f"--fp16 and --precision {chosen} disagree; give one of them")
    chosen = "fp16" if fp16 else (chosen or "fp32")
    tokens = (min_tokens, opt_tokens, max_tokens if max_tokens is not None else DEFAULT_TOKENS[2])
    if profile:
        specs = tuple(ProfileSpec.parse(p, default_tokens=tokens) for p in profile)
    else:
        specs = (ProfileSpec(batch=(min_batch, opt_batch, max_batch), tokens=tokens),)
    if encoder not in ("image", "text", "both"):
        raise VsrnError(f"--encoder must be image, text or both, got {encoder!r}")
    settings = BuildSettings(
        precision=chosen, profiles=specs, workspace_mib=workspace,
        opt_level=opt_level, timing_cache=str(timing_cache) if timing_cache else None,
        verify_precision=not skip_precision_check, verbose=verbose)
    results = build_engines(onnx_dir, out, settings,
                            encoders=("image", "text") if encoder == "both" else (encoder,))
    for r in results:
        typer.echo(f"{r.encoder:5s}  {r.precision}  {r.seconds:7.1f}s  {r.plan}")


def register(app: typer.Typer) -> None:
    """Add `build-engine` to the root app."""
    app.command("build-engine")(handle_errors(build_engine))
