"""`verify_repository`: a repository's vsrn_repo.json lists every file with its size and sha256;
`vsrn-deploy serve` checks them before it starts a server; a repository without the marker (written
by hand for Triton) is served as it is."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from vsrn_deploy.artifacts.triton import MARKER_NAME, verify_repository
from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.serving.serve import check_repository

FILES = {"image_encoder/config.pbtxt": b'name: "image_encoder"\n',
         "image_encoder/1/model.onnx": bytes(range(256)) * 8,
         "tokenizer/1/model.py": b"print('tokenizer')\n"}


def _repo(root: Path, files: dict[str, bytes] = FILES, listed: object = None) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    listed = listed if listed is not None else {
        rel: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)} for rel, data in files.items()}
    (root / MARKER_NAME).write_text(json.dumps({"format_version": 1, "export": {"dir": "/x/export"},
                                                "files": listed}))
    return root


def test_untouched_repository_passes_and_serve_lists_its_models(tmp_path):
    repo = _repo(tmp_path)
    assert verify_repository(repo)["files"].keys() == FILES.keys()
    assert check_repository(repo) == ["image_encoder"]


@pytest.mark.parametrize("tamper", ["appended", "flip", "truncated", "missing", "replaced"])
@pytest.mark.parametrize("rel", list(FILES))
def test_each_changed_file_is_named(tmp_path, rel, tamper):
    repo = _repo(tmp_path)
    path = repo / rel
    data = path.read_bytes()
    if tamper == "missing":
        path.unlink()
    else:
        path.write_bytes({"appended": data + b"#", "flip": data[:-1] + bytes([data[-1] ^ 1]),
                          "truncated": data[:len(data) // 2],
                          "replaced": next(d for r, d in FILES.items() if r != rel)}[tamper])
    for check in (verify_repository, check_repository):  # serve's check refuses it the same way
        with pytest.raises(VsrnError) as info:
            check(repo)
        message = str(info.value)
        assert str(path) in message and "\n" not in message
        assert "vsrn-deploy triton-repo --onnx-dir /x/export --out" in message


def test_a_hand_written_repository_is_served_unchecked(tmp_path):
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "config.pbtxt").write_text('name: "m"\n')
    assert verify_repository(tmp_path) is None
    assert check_repository(tmp_path) == ["m"]


@pytest.mark.parametrize("listed", [{"../outside.txt": {"sha256": "0" * 64, "bytes": 1}},
                                    {"/etc/hostname": {"sha256": "0" * 64, "bytes": 1}}, ["a list"]])
def test_a_bad_listing_is_refused(tmp_path, listed):
    repo = _repo(tmp_path, listed=listed)
    with pytest.raises(VsrnError, match=MARKER_NAME):
        verify_repository(repo)


def test_an_unreadable_marker_is_refused(tmp_path):
    repo = _repo(tmp_path)
    (repo / MARKER_NAME).write_text("{not json")
    with pytest.raises(VsrnError, match="unreadable"):
        verify_repository(repo)
