"""The writer every kind builds on (io.outputs.OutputFolder through artifacts.base.Kind): file by file,
its own files only, a failure half-way puts everything back."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from vsrn_deploy.artifacts.base import Kind, marker
from vsrn_deploy.core.errors import VsrnError

sys.path.insert(0, str(Path(__file__).parents[1] / "system" / "faults"))
from faultkit import snapshot  # noqa: E402

KIND = Kind("test kind", "made.json", "make --out {folder}")


def write(out: Path, files: dict[str, str], **kw) -> None:
    top = sorted({name.split("/")[0] for name in files})
    with KIND.writer(out, entries=top, **kw) as folder:
        for name, text in files.items():
            (folder.staging / name).parent.mkdir(parents=True, exist_ok=True)
            (folder.staging / name).write_text(text)
        (folder.staging / "made.json").write_text(json.dumps({"written_by": marker(KIND.name),
                                                              "files": {n: {} for n in files}}))
        folder.commit([*top, "made.json"])


def test_rewrite_replaces_listed_files_removes_stale_ones_and_keeps_the_rest(tmp_path):
    out = tmp_path / "out"
    write(out, {"a.txt": "1", "sub/b.txt": "1", "sub/deep/c.txt": "1", "old/gone.txt": "1"})
    (out / "sub" / "mine.txt").write_text("user")
    (out / "sub" / "deep" / "mine").mkdir()
    os.symlink(out / "a.txt", out / "sub" / "link")
    write(out, {"a.txt": "2", "sub/b.txt": "2", "sub/deep/c.txt": "2"})
    assert (out / "a.txt").read_text() == "2" and (out / "sub/deep/c.txt").read_text() == "2"
    assert (out / "sub" / "mine.txt").read_text() == "user" and (out / "sub" / "deep" / "mine").is_dir()
    assert os.readlink(out / "sub" / "link") == str(out / "a.txt")
    assert not (out / "old").exists()  # its only file was the tool's: the emptied folder goes too


def test_a_failure_half_way_puts_every_file_back(tmp_path, monkeypatch):
    out = tmp_path / "out"
    write(out, {"a.txt": "1", "sub/b.txt": "1", "z.txt": "1"})
    (out / "sub" / "mine.txt").write_text("user")
    before = snapshot(out)
    real = os.replace

    def failing(src, dst):
        if str(dst).endswith("z.txt") and ".tmp" in str(src):
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError):
        write(out, {"a.txt": "2", "sub/b.txt": "2", "sub/new/c.txt": "2", "z.txt": "2"})
    monkeypatch.undo()
    assert snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging or aside folder left


def test_a_symlink_where_the_tool_writes_a_folder_is_refused_without_overwrite(tmp_path):
    out = tmp_path / "out"
    write(out, {"sub/b.txt": "1"})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "sub" / "b.txt").unlink()
    (out / "sub").rmdir()
    os.symlink(elsewhere, out / "sub")
    with pytest.raises(VsrnError, match="in the way"):
        write(out, {"sub/b.txt": "2"})
    assert list(elsewhere.iterdir()) == []  # nothing written through the link
    write(out, {"sub/b.txt": "2"}, overwrite=True)  # the link itself is replaced, not its target
    assert (out / "sub").is_dir() and not (out / "sub").is_symlink() and list(elsewhere.iterdir()) == []
