"""Files changed after they were written (other bytes, a same-size flip, truncation) are refused
before first use: by search and attention (the export's graphs, the index's files), and by the
runners validate and bench use. One error line (exit 2) naming the file and the rebuild command."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vsrn_deploy.artifacts import index as index_artifact
from vsrn_deploy.cli.app import app
from vsrn_deploy.core.errors import VsrnError


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_error_line(result, *needles) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, lines
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def tamper(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "flip":  # same size: only a hash sees it
        data[len(data) // 2] ^= 0x01
    elif how == "truncate":
        data = data[: len(data) - 7]
    else:  # other bytes appended
        data += b"\0" * 16
    path.write_bytes(bytes(data))


HOWS = ("flip", "truncate", "append")


def _index(world, export: Path, out: Path) -> Path:
    from vsrn_deploy.search import IndexConfig, build_index

    build_index(IndexConfig(onnx_dir=str(export), images=str(world["images"]), boxes=str(world["boxes"]),
                            captions=str(world["captions"]), out=str(out), batch=16, progress=False))
    return out


@pytest.fixture
def index_copy(world, export_copy, tmp_path) -> tuple[Path, Path]:
    """(a private export, an index built from it)."""
    return export_copy, _index(world, export_copy, tmp_path / "index")


@pytest.mark.parametrize("how", HOWS)
def test_search_refuses_a_graph_changed_after_export(index_copy, how):
    export, index = index_copy
    assert run("search", "--index", index, "--text", "a red dog", "--k", 3, "--json").exit_code == 0
    tamper(export / "text_encoder.onnx", how)
    one_error_line(run("search", "--index", index, "--text", "a red dog", "--k", 3, "--json"),
                   "text_encoder.onnx changed since export", "rebuild with: vsrn-deploy export",
                   f"--out {export}")


@pytest.mark.parametrize("name", [index_artifact.IMAGE_EMBEDDINGS, index_artifact.IMAGE_INDEX,
                                  index_artifact.CAPTIONS])
def test_search_refuses_an_index_file_flipped_in_place(index_copy, name):
    _, index = index_copy
    tamper(index / name, "flip")  # same size: the size check alone let this through
    one_error_line(run("search", "--index", index, "--image-id", 1, "--k", 3, "--json"),
                   f"{name} changed since the index was built", "vsrn-deploy index")


@pytest.mark.parametrize("how", ("truncate", "append"))
def test_search_refuses_a_resized_index_file(index_copy, how):
    _, index = index_copy
    tamper(index / index_artifact.IMAGE_EMBEDDINGS, how)
    one_error_line(run("search", "--index", index, "--text", "a red dog"), "truncated or changed",
                   "vsrn-deploy index")


@pytest.mark.parametrize("how", HOWS)
def test_attention_refuses_a_changed_int8_graph(world, export_copy, tmp_path, how):
    args = ["attention", "--images", world["images"], "--boxes", world["boxes"], "--image-id", 2,
            "--onnx-dir", export_copy, "--backend", "ort-int8"]
    assert run(*args, "--out", tmp_path / "ok.png").exit_code == 0
    tamper(export_copy / "image_encoder.int8.onnx", how)
    one_error_line(run(*args, "--out", tmp_path / "map.png"), "image_encoder.int8.onnx changed since export")
    assert not (tmp_path / "map.png").exists()


@pytest.mark.parametrize("backend,graph", [("ort", "image_encoder.onnx"),
                                           ("ort-fp16", "text_encoder.fp16.onnx"),
                                           ("ort-int8", "text_encoder.int8.onnx")])
@pytest.mark.parametrize("how", HOWS)
def test_runners_refuse_a_changed_graph_before_use(export_copy, backend, graph, how):
    from vsrn_deploy.backend.registry import make_runner

    encoder = "image" if graph.startswith("image") else "text"
    make_runner(backend, encoder, onnx_dir=export_copy)  # sound: built
    tamper(export_copy / graph, how)
    with pytest.raises(VsrnError, match=f"{graph} changed since export.*rebuild with: vsrn-deploy export"):
        make_runner(backend, encoder, onnx_dir=export_copy)


def test_validate_refuses_a_flipped_graph(world, export_copy, tmp_path):
    tamper(export_copy / "image_encoder.fp16.onnx", "flip")
    result = run("validate", "--onnx-dir", export_copy, "--backends", "ort,ort-fp16",
                 "--data", world["images"].parent, "--out", tmp_path / "v.json")
    assert result.exit_code == 2, result.output
    assert "image_encoder.fp16.onnx changed since export" in result.output
    assert not (tmp_path / "v.json").exists()


def test_a_sound_copy_still_opens(world, tmp_path):
    export = Path(shutil.copytree(world["export"], tmp_path / "e"))
    from vsrn_deploy.search import Index

    with Index.open(_index(world, export, tmp_path / "i")) as index:
        assert len(index.search_text("a red dog", k=2)) == 2
