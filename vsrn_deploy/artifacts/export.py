"""The export folder (`vsrn-deploy export`): manifest.json, the graphs, vocab.json, test_vectors/,
MODEL_CARD.md.

Keys of manifest.json: format_version, written_by, config (asdict VSRNConfig), source {path, sha256,
kind}, files {relative path: {sha256, bytes}}, graphs {image_encoder|text_encoder: {fp32, fp16?,
int8?, inputs, outputs, dynamic_axes, nodes}}, opset, precision, max_batch, fp32_islands,
fp32_island_reasons, fp16_policy, int8, parity, text_gru, trt_lint, versions, created,
polygraphy_lint (when run). Readers open it with `read_export_manifest` / `verify_export` and ask
`graph_file` where a precision's graph is (verified before it is used).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vsrn_deploy.artifacts.base import ABSENT, Kind, Manifest, load_manifest, verify_files
from vsrn_deploy.core import contract
from vsrn_deploy.core.contract import MANIFEST_NAME
from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.io.files import sha256_file

FORMAT_VERSION = 1  # the newest export manifest format this version reads (and the one it writes)
MODEL_CARD = "MODEL_CARD.md"
PRODUCER = "vsrn-deploy"


def _legacy(data: dict[str, Any]) -> bool:
    """Exports written before the ownership marker existed, recognised by their own fields."""
    versions = data.get("versions")
    return (isinstance(versions, dict) and "vsrn_deploy" in versions and isinstance(data.get("files"), dict)
            and isinstance(data.get("graphs"), dict) and "parity" in data)


KIND = Kind("export", MANIFEST_NAME, "vsrn-deploy export CKPT --out {folder}", recognise=_legacy)


@dataclass
class ExportManifest(Manifest):
    """manifest.json of an export, one field per key (see the module docstring)."""

    format_version: Any = ABSENT
    written_by: Any = ABSENT
    config: Any = ABSENT
    source: Any = ABSENT
    files: Any = ABSENT
    graphs: Any = ABSENT
    opset: Any = ABSENT
    precision: Any = ABSENT
    max_batch: Any = ABSENT
    fp32_islands: Any = ABSENT
    fp32_island_reasons: Any = ABSENT
    fp16_policy: Any = ABSENT
    int8: Any = ABSENT
    parity: Any = ABSENT
    text_gru: Any = ABSENT
    trt_lint: Any = ABSENT
    versions: Any = ABSENT
    created: Any = ABSENT
    polygraphy_lint: Any = ABSENT


def rebuild_hint(onnx_dir: str | os.PathLike, manifest: dict[str, Any] | None = None) -> str:
    """The command that rebuilds the export in `onnx_dir` (naming the folder as given)."""
    ckpt = "CKPT"
    precision = ""
    if manifest:
        ckpt = str((manifest.get("source") or {}).get("path") or "CKPT")
        if manifest.get("precision") in ("fp16", "all", "int8"):
            precision = f" --precision {manifest['precision']}"
    return f"vsrn-deploy export {ckpt} --out {onnx_dir}{precision}"


def read_export_manifest(onnx_dir: str | os.PathLike) -> dict[str, Any]:
    """The manifest of an export folder, or a VsrnError with the command that writes one.

    Raises:
        VsrnError: missing, unreadable, not a vsrn-deploy manifest, or newer than this version.
    """
    folder = Path(onnx_dir)
    if folder.exists() and not folder.is_dir():
        raise VsrnError(f"--onnx-dir {onnx_dir} is a file; give the export folder")
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise VsrnError(f"{path} not found: {onnx_dir} holds no export; write one with: "
                        f"{rebuild_hint(onnx_dir)}")
    manifest = load_manifest(path, what="a vsrn-deploy export manifest",
                             fix=f"rebuild the export with: {rebuild_hint(onnx_dir)}")
    if not isinstance(manifest.get("files"), dict) or not isinstance(manifest.get("graphs"), dict):
        raise VsrnError(f"{path} is not a vsrn-deploy export manifest; rebuild the export with: "
                        f"{rebuild_hint(onnx_dir)}")
    version = manifest.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise VsrnError(f"{path} has format_version {version!r}, newer than this vsrn-deploy understands "
                        f"({FORMAT_VERSION}); upgrade vsrn-deploy")
    return manifest


def verify_listed_files(onnx_dir: str | os.PathLike, manifest: dict[str, Any],
                        files: list[str] | None = None) -> None:
    """Every file the manifest lists (or `files`) has its recorded sha256, else one VsrnError naming
    the first missing or changed file and the command that rebuilds `onnx_dir`."""
    verify_files(onnx_dir, manifest["files"], files, manifest_name=MANIFEST_NAME, since="export",
                 fix=f"rebuild with: {rebuild_hint(onnx_dir, manifest)}")


def verify_export(onnx_dir: str | os.PathLike, files: list[str] | None = None) -> dict[str, Any]:
    """Open an export and check it before use: the manifest, then the sha256 of every file it lists
    (or of `files`). Returns the manifest."""
    manifest = read_export_manifest(onnx_dir)
    verify_listed_files(onnx_dir, manifest, files)
    return manifest


def manifest_sha256(onnx_dir: str | os.PathLike) -> str:
    """sha256 of the export's manifest.json: what an index or a repository records as its source."""
    return sha256_file(Path(onnx_dir) / MANIFEST_NAME)


def graph_file(onnx_dir: str | os.PathLike, encoder: str, precision: str = "fp32", *,
               verify: bool = True) -> Path:
    """Where the export put `encoder`'s graph of `precision`, checked against the manifest's sha256.

    A folder with a manifest: the manifest names the graph and its sha256 is checked (the graph is
    read whole by the runtime anyway; see the package docstring for the cost). A folder without one
    (graphs made by hand or by the export's own stages): the contract's file name, unchecked.

    Raises:
        VsrnError: the graph is not there, or changed since export (with the command that writes it).
    """
    onnx_dir = Path(onnx_dir)
    graph = contract.ENCODERS[encoder].graph
    name = contract.onnx_name(graph, precision)
    manifest: dict[str, Any] | None = None
    if (onnx_dir / MANIFEST_NAME).is_file():
        manifest = read_export_manifest(onnx_dir)
        entry = manifest["graphs"].get(graph)
        name = (entry.get(precision) if isinstance(entry, dict) else None) or name
    path = onnx_dir / name
    if not path.is_file():
        hint = f" --precision {precision}" if precision != "fp32" else ""
        raise VsrnError(f"no {precision} {encoder} graph at {path}; write it with: "
                        f"vsrn-deploy export CKPT --out {onnx_dir}{hint}")
    if manifest is not None and verify:
        verify_listed_files(onnx_dir, manifest, [name])
    return path


def source_checkpoint(onnx_dir: str | os.PathLike) -> str | None:
    """The checkpoint path the export records (None without a readable manifest naming one)."""
    try:
        manifest = read_export_manifest(onnx_dir)
    except VsrnError:
        return None
    source = (manifest.get("source") or {}).get("path") if isinstance(manifest.get("source"), dict) else None
    return str(source) if source else None


def usable_export(onnx_dir: str | os.PathLike) -> tuple[dict[str, Any] | None, str | None]:
    """(manifest, None) when `onnx_dir` holds a readable export, else (None, the reason)."""
    try:
        return read_export_manifest(onnx_dir), None
    except VsrnError as exc:
        return None, str(exc)


# --- provenance ------------------------------------------------------------------------------

def provenance(source_sha256: str | None) -> dict[str, str]:
    """The metadata_props every exported graph carries: producer, its version, the manifest format,
    the source checkpoint's sha256."""
    from vsrn_deploy.core.version import __version__

    return {"producer": PRODUCER, "producer_version": str(__version__),
            "manifest_format_version": str(FORMAT_VERSION), "source_sha256": str(source_sha256 or "")}


def stamp_graph(model: Any, props: dict[str, str]) -> Any:
    """Set `props` as the ONNX model's metadata_props (replacing same-named keys); returns it."""
    kept = [(p.key, p.value) for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    for key, value in [*kept, *props.items()]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


def render_model_card(manifest: dict[str, Any]) -> str:
    """MODEL_CARD.md of an export: what the graphs are, their inputs and outputs (core.contract),
    the precisions present, the parity results and the source checkpoint."""
    from vsrn_deploy.core.version import __version__

    config = manifest.get("config") or {}
    source = manifest.get("source") or {}
    graphs = manifest.get("graphs") or {}
    lines = ["# VSRN encoders (ONNX)", "",
             "Exported by vsrn-deploy " + str(__version__) + " from a VSRN checkpoint (Li et al., \"Visual "
             "Semantic Reasoning for Image-Text Matching\", ICCV 2019): the image encoder (GCN fused, GRU "
             "unrolled) and the text encoder as separate graphs that embed images and captions in one "
             f"{config.get('embed_size', '?')}-d space; the cosine (inner product of the l2-normalised "
             "embeddings) ranks captions for an image and images for a caption.", "",
             "## Source", "",
             f"- checkpoint: `{source.get('path', '?')}` ({source.get('kind', '?')})",
             f"- sha256: `{source.get('sha256', '?')}`",
             f"- model: {config.get('num_regions', '?')} regions x {config.get('img_dim', '?')} features, "
             f"vocabulary {config.get('vocab_size', '?')} words, opset {manifest.get('opset', '?')}", "",
             "## Graphs", "", "| graph | precision | file |", "|---|---|---|"]
    for graph, entry in graphs.items():
        for precision in contract.PRECISIONS:
            if isinstance(entry, dict) and entry.get(precision):
                lines.append(f"| {graph} | {precision} | `{entry[precision]}` |")
    lines += ["", "## Inputs and outputs", ""]
    for spec in contract.ENCODERS.values():
        io = (graphs.get(spec.graph) or {})
        lines.append(f"`{spec.graph}`:")
        for direction in ("inputs", "outputs"):
            for tensor in io.get(direction) or []:
                shape = ", ".join(str(d) for d in tensor.get("shape", []))
                lines.append(f"- {direction[:-1]} `{tensor.get('name')}` {tensor.get('dtype')} [{shape}]")
        lines.append("")
    lines += ["FP16 and INT8 graphs keep float32/int64 inputs and outputs. Caption lengths may come in any "
              "order.", "", "## Parity (checked before the export was written)", ""]
    parity = manifest.get("parity") or {}
    bounds = parity.get("bounds") or {}
    lines.append(f"- passed: {parity.get('passed')}; batches {parity.get('batches')}, captions up to "
                 f"{parity.get('max_tokens')} tokens, max batch {manifest.get('max_batch')}")
    lines.append("- bounds: " + _compact(bounds))
    for name, result in (parity.get("results") or {}).items():
        lines.append(f"- `{name}`: {_compact(result)}")
    for runtime, result in (parity.get("retrieval") or {}).items():
        lines.append(f"- retrieval {runtime}: {_compact(result)}")
    lines += ["", f"Every file's sha256 is in `{MANIFEST_NAME}`; vsrn-deploy checks them before use.", ""]
    return "\n".join(lines)


def _compact(value: Any, prefix: str = "") -> str:
    """Nested results as `a.b=1.2e-07, c=0.9999` (the "passed" flags left out: the export passed)."""
    if isinstance(value, dict):
        parts = [_compact(v, f"{prefix}{k}.") for k, v in value.items() if k != "passed"]
        return ", ".join(p for p in parts if p)
    if isinstance(value, float):
        value = f"{value:.8g}"
    return f"{prefix[:-1]}={value}" if prefix else str(value)


def check_export_matches_model(onnx_dir: str | os.PathLike, manifest: dict[str, Any], model_config: Any,
                               checkpoint: str | None) -> None:
    """The export was made from a model of the same sizes as `model_config` (asdict-able)."""
    from dataclasses import asdict  # the model config is a dataclass

    theirs = manifest.get("config") or {}
    ours = asdict(model_config)
    differ = sorted(k for k in ours if k in theirs and theirs[k] != ours[k])
    if differ:
        shown = ", ".join(f"{k} {theirs[k]} vs {ours[k]}" for k in differ[:4])
        raise VsrnError(f"the export in {onnx_dir} belongs to another model than {checkpoint or 'the model'} "
                        f"({shown}); pass the checkpoint it was made from, or re-export with: "
                        f"vsrn-deploy export {checkpoint or 'CKPT'} --out {onnx_dir}")


def write_manifest(directory: str | os.PathLike, manifest: dict[str, Any]) -> Path:
    """Write `manifest.json` into `directory` atomically, through `ExportManifest` (the declared keys)."""
    from vsrn_deploy.io.files import atomic_write_json

    return atomic_write_json(Path(directory) / MANIFEST_NAME, ExportManifest.from_dict(manifest).to_dict())
