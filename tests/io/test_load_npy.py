"""The one reader of a user's .npy arrays: memory-mapped, never unpickled, and one message that says
what to do for each way a file can be wrong (the commands that read features, boxes, calibration
images, group ids and index files all go through it)."""

from __future__ import annotations

import numpy as np
import pytest

from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.io.inputs import load_npy


def test_a_good_array_is_memory_mapped_or_read_whole(tmp_path):
    want = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.save(tmp_path / "x.npy", want)
    mapped = load_npy(tmp_path / "x.npy", "features")
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable
    np.testing.assert_array_equal(mapped, want)
    whole = load_npy(tmp_path / "x.npy", "features", mmap=False)
    assert not isinstance(whole, np.memmap)
    np.testing.assert_array_equal(whole, want)


def bad_npy_files(tmp_path):
    """Files that are not usable .npy arrays, each with what its message must say."""
    (tmp_path / "text.npy").write_text("region features, honestly\n")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    np.save(tmp_path / "short.npy", np.zeros((4, 36, 8), dtype=np.float32))
    raw = (tmp_path / "short.npy").read_bytes()
    (tmp_path / "short.npy").write_bytes(raw[:200])
    (tmp_path / "folder.npy").mkdir()
    return {"text.npy": "is not a .npy file (it lacks the NumPy header)",
            "objects.npy": "holds Python objects (dtype object), which vsrn-deploy never unpickles",
            "short.npy": "is not a readable .npy array",
            "folder.npy": "is a folder",
            "missing.npy": "not found"}


def test_every_bad_file_gets_its_own_message_and_no_unpickling_advice(tmp_path):
    for name, says in bad_npy_files(tmp_path).items():
        with pytest.raises(VsrnError) as err:
            load_npy(tmp_path / name, "region features", fix="fix it")
        message = str(err.value)
        assert says in message and "region features" in message, message
        assert "allow_pickle" not in message and "pickle.load" not in message, message
