"""Two `index` builds into one --out: the second is refused by the writer's lock (exit 2), never
interleaved with the first, which completes; export's and triton-repo's writers behave the same."""

from __future__ import annotations

import pytest

from vsrn_deploy.artifacts import index as index_artifact
from vsrn_deploy.core.errors import VsrnError


def _config(world, out):
    from vsrn_deploy.search import IndexConfig

    return IndexConfig(onnx_dir=str(world["export"]), images=str(world["images"]), out=str(out), batch=16,
                       progress=False)


def test_a_second_index_build_while_the_first_runs_is_refused(world, tmp_path, monkeypatch):
    from vsrn_deploy.search import build_index
    from vsrn_deploy.search.encoders import ExportEncoders

    out = tmp_path / "index"
    encode = ExportEncoders.encode_images
    second: list[BaseException] = []

    def racing_encode(self, features):  # the first build is encoding: a second one starts now
        if not second:
            try:
                build_index(_config(world, out))
            except VsrnError as exc:
                second.append(exc)
            else:
                second.append(AssertionError("the second build was not refused"))
        return encode(self, features)

    monkeypatch.setattr(ExportEncoders, "encode_images", racing_encode)
    manifest = build_index(_config(world, out))
    assert len(second) == 1 and isinstance(second[0], VsrnError), second
    assert "being written by another vsrn-deploy command" in str(second[0])
    assert manifest["images"]["count"] > 0
    index_artifact.open_index_manifest(out)  # the first build's index, whole and checked


def test_the_index_command_is_refused_while_another_writes_the_folder(world, tmp_path):
    from typer.testing import CliRunner

    from vsrn_deploy.artifacts.outputs import output_lock
    from vsrn_deploy.cli.app import app

    out = tmp_path / "index"
    args = ["index", "--onnx-dir", world["export"], "--images", world["images"], "--out", out,
            "--no-progress"]
    with output_lock(out):  # what a running build holds
        result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 2, result.output
    assert "being written by another vsrn-deploy command" in result.output
    assert not out.exists()
    assert CliRunner().invoke(app, [str(a) for a in args]).exit_code == 0  # once it is free


@pytest.mark.parametrize("kind", ["export", "triton"])
def test_other_writers_hold_the_same_lock(world, tmp_path, kind):
    from vsrn_deploy.artifacts.outputs import output_lock

    out = tmp_path / "out"
    with output_lock(out), pytest.raises(VsrnError, match="being written by another"):
        if kind == "export":
            from vsrn_deploy.export import ExportConfig, export_model

            export_model(world["ckpt"], out, ExportConfig(precision="fp32", max_batch=4))
        else:
            from vsrn_deploy.serving.triton_repo import TritonRepoConfig, build_model_repository

            build_model_repository(TritonRepoConfig(onnx_dir=world["export"], out=out))
    assert not out.exists()
