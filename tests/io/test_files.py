"""The one file writer, the one folder swap and the one hasher: nothing half-written ever remains."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from vsrn_deploy.io import files


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_atomic_writes_replace_whole_files_with_usual_permissions(tmp_path):
    target = tmp_path / "manifest.json"
    target.write_text("old")
    files.atomic_write_json(target, {"b": 1, "a": [1, 2]}, sort_keys=True)
    assert target.read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
    files.atomic_write_text(tmp_path / "t.txt", "é")
    assert (tmp_path / "t.txt").read_bytes() == "é".encode()
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask  # not mkstemp's 0600
    assert _names(tmp_path) == ["manifest.json", "t.txt"]  # no temporary left


def test_a_failed_stream_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "emb.npy"
    with files.atomic_writer(target) as fh:
        np.save(fh, np.arange(3))
    with pytest.raises(RuntimeError), files.atomic_writer(target) as fh:
        fh.write(b"partial")
        raise RuntimeError("interrupted")
    assert np.load(target).tolist() == [0, 1, 2]
    assert _names(tmp_path) == ["emb.npy"]


def test_hashes_of_files_and_bytes_agree(tmp_path):
    data = os.urandom(3 * (1 << 20) + 7)  # more than one read chunk
    path = files.atomic_write_bytes(tmp_path / "blob", data)
    assert files.sha256_file(path) == files.sha256_bytes(data) == hashlib.sha256(data).hexdigest()


def test_folder_swap_replaces_a_folder_whole(tmp_path):
    target = tmp_path / "export"
    target.mkdir()
    (target / "old.onnx").write_text("old")
    with files.staging_folder(target) as staged:
        (staged / "new.onnx").write_text("new")
        files.swap_in_folder(staged, target)
    assert _names(target) == ["new.onnx"]
    assert _names(tmp_path) == ["export"]


def test_a_failed_build_leaves_the_old_folder_and_no_staging(tmp_path):
    target = tmp_path / "export"
    target.mkdir()
    (target / "old.onnx").write_text("old")
    with pytest.raises(ValueError), files.staging_folder(target) as staged:
        (staged / "half.onnx").write_text("half")
        raise ValueError("check failed")
    assert _names(target) == ["old.onnx"]
    assert _names(tmp_path) == ["export"]


def test_a_failed_swap_puts_the_old_folder_back(tmp_path, monkeypatch):
    target = tmp_path / "export"
    target.mkdir()
    (target / "old.onnx").write_text("old")
    real_replace = os.replace

    def failing_replace(src, dst):
        if Path(src).name.endswith(".tmp"):  # the staged folder's move into place
            raise OSError("disk full")
        return real_replace(src, dst)

    with files.staging_folder(target) as staged:
        (staged / "new.onnx").write_text("new")
        monkeypatch.setattr(files.os, "replace", failing_replace)
        with pytest.raises(OSError, match="disk full"):
            files.swap_in_folder(staged, target)
        monkeypatch.setattr(files.os, "replace", real_replace)
    assert _names(target) == ["old.onnx"]
    assert _names(tmp_path) == ["export"]
