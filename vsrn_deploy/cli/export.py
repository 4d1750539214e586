"""`vsrn-deploy export CKPT`: deploy-form ONNX graphs, checked against the eager model before exit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vsrn_deploy.cli.common import handle_errors
from vsrn_deploy.cli.options import ExportPrecision, Overwrite, Vocab
from vsrn_deploy.core import contract


def _summary_table(result) -> str:
    rows = [("file", "bytes", "sha256")]
    for name, entry in result.files.items():
        rows.append((name, f"{entry['bytes']:,}", entry["sha256"][:16]))
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(width[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in width))
    results = result.parity.get("results", {})
    for key, outputs in results.items():
        for output, metrics in outputs.items():
            shown = ", ".join(f"{m} {v:.3g}" for m, v in metrics.items() if m != "passed")
            lines.append(f"{key:<36} {output:<18} {shown}")
    for graph, chosen in result.islands.items():
        lines.append(f"{graph}: {len(chosen)} FP32 island nodes")
    return "\n".join(lines)


def export_command(
    checkpoint: Annotated[
        Path, typer.Argument(help="vsrn-deploy checkpoint or the authors' model_best.pth.tar")
    ],
    out: Annotated[Path, typer.Option("--out", help="export folder")] = Path("export"),
    vocab: Vocab = None,
    precision: Annotated[ExportPrecision, typer.Option(
        "--precision", case_sensitive=False,
        help="Graph precision(s) to write: fp32 always; fp16 adds *.fp16.onnx with FP32 islands, int8 "
             "*.int8.onnx for the CPU, all both.")] = ExportPrecision("fp32"),
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset (13..24)")] = 17,
    calibration: Annotated[
        Path | None,
        typer.Option(
            "--calibration",
            help="region features .npy (N, k, F) for choosing FP16 islands; default: synthetic",
        ),
    ] = None,
    max_batch: Annotated[int, typer.Option("--max-batch", max=contract.MAX_EXPORT_BATCH,
                                           help="largest batch validated")] = 32,
    overwrite: Overwrite = False,
    polygraphy_lint: Annotated[bool, typer.Option(
        "--polygraphy-lint/--no-polygraphy-lint",
        help="also run `polygraphy check lint` on the graphs (when polygraphy is installed)")] = True,
) -> None:
    """Export both encoders to ONNX (deploy form), check them against the eager model.

    An earlier export in --out is rewritten; with --overwrite a non-empty folder vsrn-deploy did not
    write is written into too (only the export's own files are replaced).
    """
    from vsrn_deploy.export.exporter import ExportConfig, export_model

    cfg = ExportConfig(
        precision=precision.value,
        opset=opset,
        vocab=str(vocab) if vocab else None,
        calibration=str(calibration) if calibration else None,
        max_batch=max_batch,
        overwrite=overwrite,
        polygraphy_lint=polygraphy_lint,
    )
    result = export_model(checkpoint, out, cfg)
    typer.echo(_summary_table(result))
    typer.echo(f"wrote {out} ({result.seconds:.1f} s)")


def register(app: typer.Typer) -> None:
    """Add `export` to the root app."""
    app.command("export")(handle_errors(export_command))
