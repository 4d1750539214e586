"""`vsrn-deploy embed` on the command line: bad shards and bad numbers are one line, exit 2, before any
encoding; the embedded default starts Ray here and shuts it down; --help imports neither Ray nor
pyarrow."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from dist_fixtures import FEATURE_DIM, REGIONS, SHARD_ROWS, one_error_line
from typer.testing import CliRunner

from vsrn_deploy.cli.app import app

TOTAL = sum(SHARD_ROWS)


@pytest.mark.parametrize("bad, needle", [
    (np.zeros((3, REGIONS + 1, FEATURE_DIM), np.float32), f"{REGIONS + 1} regions"),
    (np.zeros((3, REGIONS, FEATURE_DIM), np.int32), "int32"),
    (np.zeros((3, REGIONS * FEATURE_DIM), np.float32), "float region features"),
    ("nan", "NaN or Inf in image 2 (global id 9)"),
])
def test_bad_shard_is_one_line_before_encoding(tiny_export, shards, tmp_path, ray_session, bad, needle):
    target = shards[1]
    if isinstance(bad, str):
        feats = np.load(target)
        feats[2, 3, 4] = np.nan
        np.save(target, feats)
    else:
        np.save(target, bad)
    out = tmp_path / "emb"
    result = CliRunner().invoke(app, ["embed", "--onnx-dir", str(tiny_export), "--images",
                                      str(target.parent / "*.npy"), "--out", str(out)])
    one_error_line(result, str(target), needle)
    assert not list(out.glob("*.parquet"))  # nothing encoded


def test_no_match_and_bad_numbers(tiny_export, tmp_path):
    result = CliRunner().invoke(app, ["embed", "--onnx-dir", str(tiny_export), "--images",
                                      str(tmp_path / "none*.npy"), "--out", str(tmp_path / "o")])
    one_error_line(result, "matches no file")
    result = CliRunner().invoke(app, ["embed", "--onnx-dir", str(tiny_export), "--images", "x*.npy",
                                      "--out", str(tmp_path / "o"), "--workers", "0"])
    one_error_line(result, "--workers must be >= 1")


def test_command_line_starts_and_stops_local_ray(tiny_export, shards, tmp_path):
    """The embedded default: no --ray-address, no session: Ray starts here and is shut down after."""
    out = tmp_path / "emb"
    argv = ["vsrn-deploy", "embed", "--onnx-dir", str(tiny_export),
            "--images", str(shards[0].parent / "*.npy"),
            "--out", str(out), "--workers", "2"]
    code = ("import sys\nfrom vsrn_deploy.cli.app import main\n"
            f"sys.argv = {argv!r}\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    rc = exc.code or 0\nelse:\n    rc = 0\n"
            "import ray\nprint('ray still up:', ray.is_initialized())\n"
            "print('torch imported:', 'torch' in sys.modules)\nsys.exit(rc)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{TOTAL} images in 3 shards" in done.stdout
    assert "ray still up: False" in done.stdout
    assert "torch imported: False" in done.stdout  # the job's driver never imports torch
    import pyarrow.parquet as pq

    ids = [i for p in sorted(out.glob("shard-*.parquet")) for i in pq.read_table(p).column("id").to_pylist()]
    assert ids == list(range(TOTAL))


def test_help_imports_no_ray_or_pyarrow():
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom vsrn_deploy.cli.app import app\n"
            "r = CliRunner().invoke(app, ['embed', '--help'])\nassert r.exit_code == 0, r.output\n"
            "assert '--ray-address' in r.output\n"
            "bad = [m for m in ('ray', 'pyarrow', 'pymilvus', 'torch') if m in sys.modules]\n"
            "assert not bad, bad\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]



def to_parquet(npy: Path, target: Path, fixed: bool = False) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    feats = np.load(npy)
    per_image = feats.shape[1] * feats.shape[2]
    flat = pa.array(feats.reshape(-1))
    offsets = pa.array(np.arange(0, len(flat) + 1, per_image, dtype=np.int32))
    column = (pa.FixedSizeListArray.from_arrays(flat, per_image) if fixed
              else pa.ListArray.from_arrays(offsets, flat))
    pq.write_table(pa.table({"features": column}), target, row_group_size=3)
    return target


def test_parquet_shards_equal_npy_shards(tiny_export, shards, tmp_path, ray_session):
    """Parquet shards (a list or fixed-size list of k x F floats per image) embed like .npy shards;
    numbering runs across both kinds in sorted path order."""
    import pyarrow.parquet as pq

    from vsrn_deploy.search.encoders import ExportEncoders

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    to_parquet(shards[0], mixed / "part0.parquet")
    to_parquet(shards[1], mixed / "part1.parquet", fixed=True)
    shutil.copy(shards[2], mixed / "part2.npy")
    out = tmp_path / "emb"
    result = CliRunner().invoke(app, ["embed", "--onnx-dir", str(tiny_export), "--images",
                                      str(mixed / "part*"), "--out", str(out), "--batch", "2"])
    assert result.exit_code == 0, result.output
    tables = [pq.read_table(p) for p in sorted(out.glob("shard-*.parquet"))]
    ids = np.concatenate([t.column("id").to_numpy() for t in tables])
    emb = np.concatenate([np.stack(t.column("embedding").to_numpy(zero_copy_only=False)) for t in tables])
    assert ids.tolist() == list(range(TOTAL))
    with ExportEncoders(tiny_export, threads=1) as enc:
        want = enc.encode_images(np.concatenate([np.load(p) for p in shards]))[0]
    np.testing.assert_allclose(emb, want, rtol=0, atol=1e-6)


def test_bad_parquet_shard_is_one_line(tiny_export, shards, tmp_path, ray_session):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "pq"
    folder.mkdir()
    good = to_parquet(shards[0], folder / "a.parquet")
    pq.write_table(pa.table({"pixels": [[1.0, 2.0]]}), folder / "b.parquet")
    args = ["embed", "--onnx-dir", str(tiny_export), "--images", str(folder / "*.parquet"), "--out"]
    result = CliRunner().invoke(app, [*args, str(tmp_path / "o1")])
    one_error_line(result, "b.parquet must have a column 'features'", "pixels: list<element: double>")
    (folder / "b.parquet").unlink()
    values = 2 * REGIONS * FEATURE_DIM - 1
    short = pa.ListArray.from_arrays(pa.array([0, REGIONS * FEATURE_DIM, values], type=pa.int32()),
                                     pa.array(np.ones(values, np.float32)))
    pq.write_table(pa.table({"features": short}), folder / "c.parquet")
    result = CliRunner().invoke(app, [*args, str(tmp_path / "o2")])
    one_error_line(result, f"c.parquet: image 1 holds {REGIONS * FEATURE_DIM - 1} feature values")
    assert good.exists() and not list((tmp_path / "o2").glob("*.parquet"))


def test_an_actor_no_node_can_hold_is_refused_not_waited_for(tiny_export, shards, tmp_path, ray_session):
    """--threads above the session's CPUs: Ray would wait for such an actor forever."""
    out = tmp_path / "emb"
    result = CliRunner().invoke(app, ["embed", "--onnx-dir", str(tiny_export), "--images",
                                      str(shards[0].parent / "*.npy"), "--out", str(out), "--threads", "3"])
    one_error_line(result, "--threads 3 asks for 3 CPUs", "has 2; pass --threads 2 or fewer")
    assert not out.exists()  # refused before --out is made


def test_a_changed_export_file_is_refused_on_the_driver(tiny_export, shards, tmp_path, ray_session):
    """Every file the export lists is checked before Ray work starts, the text graph and vocabulary
    included (the actors open only the image graph)."""
    export = Path(shutil.copytree(tiny_export, tmp_path / "export"))
    out = tmp_path / "emb"
    for name in ("vocab.json", "text_encoder.onnx", "image_encoder.onnx"):
        path = export / name
        original = path.read_bytes()
        path.write_bytes(original[:-1])
        result = CliRunner().invoke(app, ["embed", "--onnx-dir", str(export), "--images",
                                          str(shards[0].parent / "*.npy"), "--out", str(out)])
        path.write_bytes(original)
        one_error_line(result, str(path), "changed since export")
        assert not out.exists()
