"""The fault suite: a careless or hostile user loses nothing and gets one `error:` line.

One test per class of fault (the numbers follow the classes the suite was written for); each checks
the exit code, the single error line, no traceback, and that every file that was there before is
byte-identical afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
from faultkit import TRAIN_SIZES, assert_refused, cli, snapshot

pytestmark = pytest.mark.faults


def _user_folder(path: Path, *, manifest: bool = True) -> Path:
    """A folder of someone else's files, a sub-folder and (optionally) their own manifest.json."""
    (path / "sub").mkdir(parents=True)
    (path / "notes.txt").write_text("mine")
    (path / "sub" / "data.bin").write_bytes(os.urandom(64))
    if manifest:
        (path / "manifest.json").write_text(json.dumps({"files": {}, "graphs": {}, "author": "someone else"}))
    return path


# --- 1-3: data loss -------------------------------------------------------------------------

def test_1_export_into_a_foreign_folder_loses_nothing(world, tmp_path):
    out = _user_folder(tmp_path / "mine")
    shutil.copy(world["ckpt"], out / "model.pt")  # the source checkpoint lives inside --out
    before = snapshot(tmp_path)
    assert_refused(cli("export", out / "model.pt", "--out", out), 2, "not a vsrn-deploy export",
                   "--overwrite")
    assert snapshot(tmp_path) == before

    # --overwrite writes the export into the folder; only the export's own names are replaced
    result = cli("export", out / "model.pt", "--out", out, "--overwrite")
    assert result.exit_code == 0, result.output
    after = snapshot(tmp_path)
    for name, digest in before.items():
        if name != "mine/manifest.json":
            assert after[name] == digest, name
    from vsrn_deploy.artifacts.export import verify_export

    verify_export(out)


@pytest.mark.parametrize("name", ["image_encoder.fp16.onnx", "image_encoder.int8.onnx"])
def test_1_reexport_rewrites_only_its_own_files(world, tmp_path, name):
    out = tmp_path / "export"
    shutil.copytree(world["export"], out)
    (out / "README-mine.txt").write_text("keep me")
    (out / name).write_bytes(b"not the tool's")  # a name the next export writes
    before = snapshot(tmp_path)
    line = assert_refused(cli("export", world["ckpt"], "--out", out, "--precision", "all"), 2, name)
    assert "--overwrite" in line and snapshot(tmp_path) == before
    (out / name).unlink()
    result = cli("export", world["ckpt"], "--out", out, "--precision", "all", "--max-batch", "8")
    assert result.exit_code == 0, result.output
    assert (out / "README-mine.txt").read_text() == "keep me"
    assert (out / "text_encoder.fp16.onnx").is_file()


@pytest.mark.parametrize("where", ["same", "parent"])
def test_2_triton_repo_never_overwrites_its_input(world, tmp_path, where):
    export = tmp_path / "exp" / "export"
    shutil.copytree(world["export"], export)
    out = export if where == "same" else export.parent
    before = snapshot(tmp_path)
    assert_refused(cli("triton-repo", "--onnx-dir", export, "--out", out, "--overwrite", "--kind", "cpu"), 2,
                   "input folder")
    assert snapshot(tmp_path) == before


def test_3_train_into_a_run_with_a_model_needs_resume_or_overwrite(world, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(world["ckpt"], run / "model_best.pt")
    (run / "metrics.jsonl").write_text('{"event": "val"}\n')
    before = snapshot(tmp_path)
    assert_refused(cli("train", "--data", world["data"], "--out", run, "--epochs", "1", *TRAIN_SIZES), 2,
                   "--resume", "--overwrite")
    assert snapshot(tmp_path) == before
    (run / "notes.txt").write_text("mine")
    result = cli("train", "--data", world["data"], "--out", run, "--epochs", "1", "--overwrite", *TRAIN_SIZES)
    assert result.exit_code == 0, result.output
    assert (run / "notes.txt").read_text() == "mine"
    assert snapshot(tmp_path)["run/model_best.pt"] != before["run/model_best.pt"]
    assert '{"event": "val"}' not in (run / "metrics.jsonl").read_text().splitlines()  # a fresh log


# --- 4: every OSError and mismatch is exit 2 with one line --------------------------------------

def _encode_inputs(tmp_path: Path, world) -> tuple[Path, Path]:
    feats = np.abs(np.random.default_rng(0).normal(size=(3, 6, 24))).astype(np.float32)
    np.save(tmp_path / "f.npy", feats)
    (tmp_path / "c.txt").write_text("a red cube\na blue ball\n")
    return tmp_path / "f.npy", tmp_path / "c.txt"


def _nested_pickle(depth: int) -> bytes:
    """A protocol-2 pickle of lists nested `depth` deep: [[[...]]]."""
    return b"\x80\x02" + b"(" * depth + b"l" * depth + b"."


def _case_4(name: str, world, tmp_path: Path) -> list:
    feats, caps = _encode_inputs(tmp_path, world)
    (tmp_path / "a_file").write_text("x")
    if name == "out_unwritable":
        return ["export", world["ckpt"], "--out", "/proc/vsrn-deploy-export"]
    if name == "out_under_a_file":
        return ["export", world["ckpt"], "--out", tmp_path / "a_file" / "export"]
    if name == "out_dot":
        _user_folder(tmp_path / "cwd")
        return ["export", world["ckpt"], "--out", "."]
    if name == "out_name_too_long":
        return ["export", world["ckpt"], "--out", tmp_path / ("x" * 300)]
    if name == "encode_empty_npy":
        np.save(tmp_path / "empty.npy", np.zeros((0, 6, 24), np.float32))
        return ["encode", world["ckpt"], "--images", tmp_path / "empty.npy", "--captions", caps,
                "--out", tmp_path / "emb"]
    if name == "encode_zero_byte_npy":
        (tmp_path / "zero.npy").write_bytes(b"")
        return ["encode", world["ckpt"], "--images", tmp_path / "zero.npy", "--out", tmp_path / "emb"]
    if name == "encode_out_is_a_file":
        return ["encode", world["ckpt"], "--images", feats, "--out", tmp_path / "a_file"]
    if name == "make_data_out_is_a_file":
        return ["make-data", "--out", tmp_path / "a_file", "--train", "4", "--dev", "2", "--test", "2"]
    if name == "demo_out_is_a_file":
        return ["demo", "--out", tmp_path / "a_file"]
    if name == "make_data_name_escapes":
        return ["make-data", "--out", tmp_path / "d", "--name", "../../x", "--train", "4"]
    if name == "validate_limit_0":
        return ["validate", "--checkpoint", world["ckpt"], "--onnx-dir", world["export"], "--limit", "0",
                "--data", world["data"]]
    if name == "validate_threads_0":
        return ["validate", "--checkpoint", world["ckpt"], "--onnx-dir", world["export"], "--threads", "0"]
    if name == "bench_threads_0":
        return ["bench", "--tiny", "--threads", "0", "--backends", "torch"]
    if name == "validate_data_other_dims":
        other = tmp_path / "other"
        other.mkdir()
        np.save(other / "test_ims.npy", np.ones((2, 6, 32), np.float32))
        (other / "test_caps.txt").write_text("a cube\n" * 10)
        return ["validate", "--checkpoint", world["ckpt"], "--onnx-dir", world["export"], "--data", other,
                "--backends", "torch", "--vocab", world["vocab"]]
    if name == "validate_other_model":
        return ["validate", "--checkpoint", world["other_ckpt"], "--onnx-dir", world["export"],
                "--backends", "ort", "--synthetic", "10"]
    if name == "validate_out_is_a_folder":
        return ["validate", "--checkpoint", world["ckpt"], "--onnx-dir", world["export"], "--out", tmp_path]
    if name == "evaluate_out_is_a_folder":
        return ["evaluate", world["ckpt"], "--data", world["data"], "--out", tmp_path]
    if name == "bench_out_is_a_folder":
        return ["bench", "--tiny", "--backends", "torch", "--out", tmp_path]
    if name == "vocab_json_nested":
        (tmp_path / "vocab.json").write_text('{"words": ' + "[" * 200_000 + "]" * 200_000 + "}")
        return ["encode", world["ckpt"], "--captions", caps, "--vocab", tmp_path / "vocab.json",
                "--out", tmp_path / "emb"]
    if name == "vocab_pickle_nested":
        (tmp_path / "vocab.pkl").write_bytes(_nested_pickle(200_000))
        return ["encode", world["ckpt"], "--captions", caps, "--vocab", tmp_path / "vocab.pkl",
                "--out", tmp_path / "emb"]
    if name == "checkpoint_pickle_nested":
        (tmp_path / "deep.pt").write_bytes(_nested_pickle(200_000))
        return ["encode", tmp_path / "deep.pt", "--images", feats, "--out", tmp_path / "emb"]
    raise AssertionError(name)


CASES_4 = ["out_unwritable", "out_under_a_file", "out_dot", "out_name_too_long", "encode_empty_npy",
           "encode_zero_byte_npy", "encode_out_is_a_file", "make_data_out_is_a_file", "demo_out_is_a_file",
           "make_data_name_escapes", "validate_limit_0", "validate_threads_0", "bench_threads_0",
           "validate_data_other_dims", "validate_other_model", "validate_out_is_a_folder",
           "bench_out_is_a_folder", "evaluate_out_is_a_folder", "vocab_json_nested", "vocab_pickle_nested",
           "checkpoint_pickle_nested"]


@pytest.mark.parametrize("name", CASES_4)
def test_4_user_errors_are_one_line_exit_2(world, tmp_path, name):
    args = _case_4(name, world, tmp_path)
    before, ws = snapshot(tmp_path), snapshot(world["root"])
    assert_refused(cli(*args, cwd=tmp_path / "cwd" if name == "out_dot" else None), 2)
    assert snapshot(tmp_path) == before and snapshot(world["root"]) == ws


def test_4_any_oserror_becomes_one_line(world, tmp_path, monkeypatch):
    """The one place in the command line that catches what no specific check foresaw."""
    import vsrn_deploy.jobs.encode_files as emb

    def full_disk(*_a, **_k):
        raise OSError(28, "No space left on device", str(tmp_path / "emb" / "image_embeddings.npy"))

    monkeypatch.setattr(emb, "save_array", full_disk)
    feats, _ = _encode_inputs(tmp_path, world)
    before = snapshot(tmp_path)
    line = assert_refused(cli("encode", world["ckpt"], "--images", feats, "--out", tmp_path / "emb"), 2,
                          "No space left on device")
    assert "image_embeddings.npy" in line
    assert snapshot(tmp_path) == before  # nothing half-written, not even the empty --out


# --- 5: NaN / Inf features are refused where features enter ------------------------------------

def test_5_non_finite_features_are_refused_naming_the_image(world, tmp_path):
    feats = np.abs(np.random.default_rng(1).normal(size=(5, 6, 24))).astype(np.float32)
    feats[3, 2, 7] = np.nan
    np.save(tmp_path / "nan.npy", feats)
    calib = feats.copy()
    calib[3, 2, 7] = 0
    calib[1, 0, 0] = np.inf
    np.save(tmp_path / "inf.npy", calib)
    data = tmp_path / "data"
    shutil.copytree(world["data"], data)
    ims = np.load(data / "test_ims.npy")
    ims[4, 0, 0] = np.nan
    np.save(data / "test_ims.npy", ims)
    before = snapshot(tmp_path)
    assert_refused(cli("encode", world["ckpt"], "--images", tmp_path / "nan.npy", "--out", tmp_path / "e"), 2,
                   "image 3", "NaN")
    assert_refused(cli("export", world["ckpt"], "--out", tmp_path / "x", "--precision", "fp16",
                       "--calibration", tmp_path / "inf.npy"), 2, "image 1", "Inf")
    assert_refused(cli("validate", "--checkpoint", world["ckpt"], "--onnx-dir", world["export"],
                       "--data", data, "--backends", "torch", "--vocab", world["vocab"]), 2, "image 4", "NaN")
    assert snapshot(tmp_path) == before

    from vsrn_deploy.core.errors import VsrnError
    from vsrn_deploy.io.inputs import check_finite_features

    big = np.zeros((1000, 2, 3), np.float32)
    big[777, 1, 2] = -np.inf
    with pytest.raises(VsrnError, match="image 777 has Inf"):
        check_finite_features(big, "index --images x.npy", chunk=64)  # the shared check of every command
    check_finite_features(np.ones((3, 2, 2), np.float32), "fine")


# --- 6: checks that check nothing ----------------------------------------------------------------

def test_6_nothing_requested_or_nothing_done_is_not_success(world, tmp_path):
    before = snapshot(tmp_path)
    assert_refused(cli("validate", "--checkpoint", world["ckpt"], "--onnx-dir", world["export"],
                       "--backends", ""), 2, "--backends")
    assert_refused(cli("validate", "--checkpoint", world["ckpt"], "--onnx-dir", world["export"],
                       "--limit", "-1", "--data", world["data"]), 2, "--limit")
    # every measurement skipped (no TensorRT here, or a corrupt graph): exit 1, never an empty success
    result = cli("bench", "--tiny", "--backends", "trt", "--batch", "1", "--iters", "1", "--warmup", "0")
    assert_refused(result, 1, "skipped", "trt")
    assert snapshot(tmp_path) == before


# --- 7: verify before use, with one function ----------------------------------------------------

def test_7_a_changed_or_unlisted_export_is_refused_before_use(world, tmp_path):
    export = tmp_path / "my-export"
    shutil.copytree(world["export"], export)
    with open(export / "image_encoder.onnx", "ab") as fh:
        fh.write(b"\0")
    before = snapshot(tmp_path)
    hint = f"vsrn-deploy export {world['ckpt']} --out {export}"
    for args in (["validate", "--checkpoint", world["ckpt"], "--onnx-dir", export, "--backends", "ort",
                  "--synthetic", "10"],
                 ["bench", "--checkpoint", world["ckpt"], "--onnx-dir", export, "--backends", "ort",
                  "--batch", "1", "--iters", "1"],
                 ["triton-repo", "--onnx-dir", export, "--out", tmp_path / "repo", "--kind", "cpu"]):
        assert_refused(cli(*args), 2, "image_encoder.onnx changed", hint)
    (export / "manifest.json").unlink()
    before = snapshot(tmp_path)
    assert_refused(cli("validate", "--checkpoint", world["ckpt"], "--onnx-dir", export, "--backends", "ort"),
                   2, "manifest.json not found", f"--out {export}")
    assert snapshot(tmp_path) == before

    from vsrn_deploy.artifacts.export import verify_export
    from vsrn_deploy.core.errors import VsrnError

    with pytest.raises(VsrnError, match="my-export"):  # build-engine and index use the same check
        verify_export(export)


# --- 8: a byte-order mark does not eat the first word ------------------------------------------

def test_8_bom_and_crlf_captions_encode_like_plain_ones(world, tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("a red cube on the left\na blue ball\n")
    bom = tmp_path / "bom.txt"
    bom.write_bytes("\ufeffa red cube on the left\r\na blue ball\r\n".encode())
    outs = {}
    for name, path in (("plain", plain), ("bom", bom)):
        result = cli("encode", world["ckpt"], "--captions", path, "--out", tmp_path / name)
        assert result.exit_code == 0, result.output
        outs[name] = np.load(tmp_path / name / "text_embeddings.npy")
    np.testing.assert_array_equal(outs["plain"], outs["bom"])

    from vsrn_deploy.data.precomp import read_captions
    from vsrn_deploy.data.vocab import load_vocab

    vocab = load_vocab(world["vocab"])
    first = read_captions(bom)[0]
    assert first == "a red cube on the left"
    assert vocab.encode(first)[1] != vocab("<unk>") and vocab.encode("\ufeffa cube") == vocab.encode("a cube")


# --- 9: messages that point at the real problem ----------------------------------------------

def test_9_messages_name_the_real_fix(world, tmp_path):
    import torch

    feats, caps = _encode_inputs(tmp_path, world)
    before = snapshot(tmp_path)
    line = assert_refused(cli("encode", world["ckpt"], "--images", feats, "--device", "tpu",
                              "--out", tmp_path / "e"), 2, "--device")
    assert "checkpoint" not in line
    if not torch.cuda.is_available():
        line = assert_refused(cli("encode", world["ckpt"], "--images", feats, "--device", "cuda",
                                  "--out", tmp_path / "e"), 2, "--device cpu")
        assert "map_location" not in line
    assert_refused(cli("encode", tmp_path, "--images", feats, "--out", tmp_path / "e"), 2, "is a folder")
    assert_refused(cli("encode", world["ckpt"], "--captions", tmp_path, "--out", tmp_path / "e"), 2,
                   "is a folder")
    assert_refused(cli("export", world["ckpt"], "--out", tmp_path / "x", "--calibration",
                       tmp_path / "no.npy"), 2, "--calibration", "not found")
    assert_refused(cli("export", world["ckpt"], "--out", tmp_path / "x", "--calibration", feats), 2,
                   "--precision fp16")
    assert_refused(cli("validate", "--checkpoint", world["ckpt"], "--onnx-dir", tmp_path / "elsewhere",
                       "--backends", "ort"), 2, f"--out {tmp_path / 'elsewhere'}")
    assert snapshot(tmp_path) == before


# --- 10: a failed command leaves nothing behind ---------------------------------------------

def test_10_failures_leave_no_leftovers(world, tmp_path, monkeypatch):
    before = snapshot(tmp_path)
    # train: NaN features in the data fail the first step; the new run folder disappears
    data = tmp_path / "nan_data"
    shutil.copytree(world["data"], data)
    ims = np.load(data / "train_ims.npy")
    ims[:] = np.nan
    np.save(data / "train_ims.npy", ims)
    shutil.copy(world["vocab"], data / "vocab.json")
    before = snapshot(tmp_path)
    assert_refused(cli("train", "--data", data, "--out", tmp_path / "runs" / "run", "--epochs", "1",
                       *TRAIN_SIZES), 2)
    assert snapshot(tmp_path) == before
    # train: a missing data folder is found before anything is created
    assert_refused(cli("train", "--data", tmp_path / "nodata", "--out", tmp_path / "run2", *TRAIN_SIZES), 2)
    # encode: a vocabulary of another size fails after the checkpoint is read: no --out appears
    from vsrn_deploy.data.vocab import Vocabulary

    small = Vocabulary.from_words(["<pad>", "<start>", "<end>", "<unk>", "a"])
    small.save_json(tmp_path / "small_vocab.json")
    _, caps = _encode_inputs(tmp_path, world)
    before = snapshot(tmp_path)
    assert_refused(cli("encode", world["ckpt"], "--captions", caps, "--vocab", tmp_path / "small_vocab.json",
                       "--out", tmp_path / "new" / "emb"), 2)
    assert snapshot(tmp_path) == before
    # make-data: a failure while writing leaves neither the data folder nor the new parents
    import vsrn_deploy.data.synthetic as synthetic

    def broken(*_a, **_k):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(synthetic, "_write_split", broken)
    assert_refused(cli("make-data", "--out", tmp_path / "new" / "data", "--train", "4", "--dev", "2",
                       "--test", "2", "--regions", "4", "--feature-dim", "16"), 2, "Input/output error")
    assert snapshot(tmp_path) == before
    # demo --epochs 0 refuses before it generates anything
    assert_refused(cli("demo", "--out", tmp_path / "demo", "--epochs", "0"), 2, "--epochs")
    assert snapshot(tmp_path) == before


# --- 11: permissions follow the umask -------------------------------------------------------

@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_11_outputs_respect_the_umask(world, tmp_path, umask):
    old = os.umask(umask)
    try:
        out = tmp_path / "export"
        result = cli("export", world["ckpt"], "--out", out, "--max-batch", "4")
        assert result.exit_code == 0, result.output
        repo = tmp_path / "repo"
        result = cli("triton-repo", "--onnx-dir", out, "--out", repo, "--kind", "cpu")
        assert result.exit_code == 0, result.output
    finally:
        os.umask(old)
    for path in [out, *out.rglob("*"), repo, *repo.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        want = (0o777 if path.is_dir() else 0o666) & ~umask
        assert mode == want, (path, oct(mode), oct(want))
