"""examples/cpp: the C++ client built against ONNX Runtime's headers (set-up) and the pip wheel's
library. Every bash block of examples/cpp/README.md runs as written, in a folder laid out like a demo
run (its export: a tiny one with the FP32, FP16 and INT8 graphs); the embeddings it writes equal
ONNX Runtime's in Python, the checks pass at the documented tolerances, and bad input is one
`error:` line with exit 2."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from vsrn_deploy.core.contract import IMAGE, TEXT, onnx_name
from vsrn_deploy.export.test_vectors import FOLDER, read_test_vectors

pytestmark = pytest.mark.cpp

REPO = Path(__file__).resolve().parents[3]
README = REPO / "examples" / "cpp" / "README.md"
HEADERS = REPO / ".venv" / "onnxruntime-headers" / "include" / "onnxruntime"
PRECISIONS = ("fp32", "fp16", "int8")
_FENCE = re.compile(r"^(`{3,})\s*(\w*)\s*$")


def readme_blocks() -> list[str]:
    """The bash blocks of examples/cpp/README.md, in order."""
    blocks, lines, i = [], README.read_text(encoding="utf-8").splitlines(), 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        i += 1
        if not match:
            continue
        body = []
        while not lines[i].startswith(match[1]):
            body.append(lines[i])
            i += 1
        i += 1
        if match[2] == "bash":
            blocks.append("\n".join(body) + "\n")
    return blocks


def _block(needle: str) -> str:
    found = [b for b in readme_blocks() if needle in b]
    assert len(found) == 1, f"examples/cpp/README.md: {len(found)} bash blocks with {needle!r}, not 1"
    return found[0]


def _bash(text: str, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", text], cwd=cwd, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, f"{text}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    return result


def _python_outputs(export: Path, precision: str, spec, feeds: dict) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(export / onnx_name(spec.graph, precision)),
                                   providers=["CPUExecutionProvider"])
    return dict(zip(spec.output_names, session.run(list(spec.output_names), feeds), strict=True))


@pytest.fixture(scope="module")
def work(all_export, tmp_path_factory) -> Path:
    """A folder laid out like the repository after a demo run (examples/ and .venv/ linked, runs/demo/
    with a tiny all-precision export and a features file), with the README's build block run in it."""
    if not (shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")):
        pytest.skip("no C++ compiler (c++, g++ or clang++) on PATH: the C++ client cannot be built here")
    assert shutil.which("cmake"), "cmake not found: install it (the C++ client builds with CMake)"
    assert (HEADERS / "onnxruntime_cxx_api.h").is_file(), (
        f"ONNX Runtime headers missing in {HEADERS}: run `bash .ci/setup` "
        "(.ci/setup.d/31-onnxruntime-headers.sh)")
    work = tmp_path_factory.mktemp("cpp")
    (work / "examples").symlink_to(REPO / "examples")
    (work / ".venv").symlink_to(REPO / ".venv")
    demo = work / "runs" / "demo"
    demo.mkdir(parents=True)
    (demo / "export").symlink_to(all_export)
    graph = read_test_vectors(all_export)["region_features"]
    features = np.abs(np.random.default_rng(0).standard_normal((5, *graph.shape[1:]))).astype(np.float32)
    (demo / "data" / "synth_precomp").mkdir(parents=True)
    np.save(demo / "data" / "synth_precomp" / "test_ims.npy", features)
    built = _bash(_block("cmake --build build/cpp"), work)
    assert "usage: vsrn_embed EXPORT_DIR" in built.stdout  # the block ends with --help
    return work


@pytest.fixture(scope="module")
def vsrn_embed(work) -> Path:
    return work / "build" / "cpp" / "vsrn_embed"


@pytest.fixture(scope="module")
def export(work) -> Path:
    return (work / "runs" / "demo" / "export").resolve()


def _run(binary: Path, *args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True, timeout=120,
                          cwd=cwd)


def test_every_readme_block_is_run_here():
    """The build block (fixture) and the three below: no block of the README goes untested."""
    needles = ("cmake --build build/cpp", "vsrn_embed runs/demo/export\n", "--images ",
               "--token-ids ")
    assert len(readme_blocks()) == len(needles)
    for needle in needles:
        _block(needle)


def test_readme_checks_pass_at_each_precisions_default_tolerance(work):
    result = _bash(_block("vsrn_embed runs/demo/export\n"), work)
    assert result.stdout.count("PASS") == 3, result.stdout
    assert "image_encoder.int8.onnx and text_encoder.int8.onnx" in result.stdout
    assert "image_encoder.fp16.onnx and text_encoder.fp16.onnx" in result.stdout
    for precision, tolerance in (("fp32", "1e-05"), ("fp16", "0.005"), ("int8", "0.03")):
        assert f"(tolerance {tolerance}," in result.stdout, (precision, result.stdout)


def test_readme_image_embeddings_equal_python(work, export):
    _bash(_block("--images "), work)
    features = np.load(work / "runs" / "demo" / "data" / "synth_precomp" / "test_ims.npy")
    want = _python_outputs(export, "fp32", IMAGE, {IMAGE.inputs[0].name: features})
    np.testing.assert_array_equal(np.load(work / "image_embeddings.npy"), want["image_embedding"])
    np.testing.assert_array_equal(np.load(work / "region_embeddings.npy"), want["region_embeddings"])
    # the raw .bin form, on the export's own vectors, INT8 graph
    vectors = read_test_vectors(export)
    want = _python_outputs(export, "int8", IMAGE, {IMAGE.inputs[0].name: vectors["region_features"]})
    got = np.fromfile(work / "image_embeddings.int8.bin", dtype="<f4").reshape(want["image_embedding"].shape)
    np.testing.assert_array_equal(got, want["image_embedding"])


def test_readme_caption_embeddings_equal_python(work, export):
    from vsrn_deploy.data.vocab import load_vocab

    block = _block("--token-ids ")
    _bash(block, work)
    captions = re.findall(r'"([^"]+)"', block.split("encode(word2idx, c) for c in", 1)[1].split("]", 1)[0])
    assert captions == ["a man riding a horse", "two dogs play in the snow"]
    ids, lengths = load_vocab(export / "vocab.json").encode_batch(captions)
    np.testing.assert_array_equal(np.load(work / "token_ids.npy"), ids)
    want = _python_outputs(export, "fp32", TEXT, {"token_ids": ids, "lengths": lengths})["text_embedding"]
    np.testing.assert_array_equal(np.load(work / "caption_embeddings.npy"), want)
    vectors = read_test_vectors(export)
    feeds = {n: vectors[n] for n in TEXT.input_names}
    want = _python_outputs(export, "fp16", TEXT, feeds)["text_embedding"]
    got = np.fromfile(work / "text_embeddings.fp16.bin", dtype="<f4").reshape(want.shape)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_cpp_distance_from_the_fp32_vectors_equals_pythons(vsrn_embed, export, precision):
    """Each precision's graphs through the C++ API are as far from the FP32 test vectors as ONNX Runtime
    in Python makes them, output by output (the FP32 graphs: 0)."""
    vectors = read_test_vectors(export)
    python = {}
    for spec in (IMAGE, TEXT):
        got = _python_outputs(export, precision, spec, {n: vectors[n] for n in spec.input_names})
        for name, array in got.items():
            python[name] = float(np.abs(array.astype(np.float64) - vectors[name]).max())
    result = _run(vsrn_embed, export, "--precision", precision, "--tolerance", "1")
    assert result.returncode == 0 and "PASS" in result.stdout, result.stdout + result.stderr
    for name, diff in python.items():
        line = next(x for x in result.stdout.splitlines() if x.startswith(f"{name}: max_abs_diff="))
        cpp = float(line.split("=", 1)[1].split()[0])
        assert cpp == pytest.approx(diff, rel=1e-3, abs=1e-9), (name, cpp, diff)
    if precision != "fp32":
        assert max(python.values()) > 1e-5  # not FP32: the FP32 tolerance would fail
        strict = _run(vsrn_embed, export, "--precision", precision, "--tolerance", "1e-5")
        assert strict.returncode == 1 and "FAIL" in strict.stdout, strict.stdout + strict.stderr


def test_cpp_client_fails_on_a_corrupted_expected_vector(vsrn_embed, export, tmp_path):
    copy = tmp_path / "export"
    shutil.copytree(export, copy)
    path = copy / FOLDER / "text_embedding.bin"
    values = np.fromfile(path, dtype="<f4")
    values[3] += 1e-3  # 100x the tolerance, in one value
    values.tofile(path)
    result = _run(vsrn_embed, copy)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "text_embedding: max_abs_diff=" in result.stdout and "FAIL" in result.stdout
    assert "image_embedding" in result.stdout and " ok " in result.stdout  # the image graph still checked


def _bad_inputs(export: Path, folder: Path) -> dict[str, tuple[list[str], str]]:
    """case -> (arguments, what the error line must name)."""
    vectors = read_test_vectors(export)
    feats = vectors["region_features"]
    np.save(folder / "wide.npy", np.zeros((2, feats.shape[1], feats.shape[2] + 1), np.float32))
    np.save(folder / "f64.npy", feats.astype(np.float64))
    np.save(folder / "fortran.npy", np.asfortranarray(feats))
    (folder / "short.bin").write_bytes(feats.tobytes()[:-4])
    np.save(folder / "ids.npy", vectors["token_ids"])
    np.save(folder / "float_ids.npy", vectors["token_ids"].astype(np.float32))
    np.save(folder / "long.npy", vectors["lengths"] + vectors["token_ids"].shape[1])
    np.save(folder / "three.npy", vectors["lengths"][:3])
    np.save(folder / "outside.npy", vectors["token_ids"] + 10_000)
    f, ids, lengths = str(folder / "x.npy"), str(folder / "ids.npy"), str(export / FOLDER / "lengths.bin")
    out = ["--out", str(folder / "out.npy")]
    return {
        "no export": ([], "no EXPORT_DIR"),
        "unknown option": ([str(export), "--colour", "red"], "unknown argument --colour"),
        "bad precision": ([str(export), "--precision", "int4"], "--precision must be"),
        "tolerance not a number": ([str(export), "--tolerance", "tight"], "--tolerance needs a number"),
        "no --out": ([str(export), "--images", f], "--out FILE"),
        "images and ids": ([str(export), "--images", f, "--token-ids", ids, "--lengths", lengths, *out],
                           "not both"),
        "ids without lengths": ([str(export), "--token-ids", ids, *out], "go together"),
        "missing graph": ([str(export), "--image-graph", "nope.onnx"], "nope.onnx"),
        "missing features file": ([str(export), "--images", f, *out], "cannot open"),
        "wrong feature width": ([str(export), "--images", str(folder / "wide.npy"), *out],
                                "wide.npy has shape"),
        "float64 features": ([str(export), "--images", str(folder / "f64.npy"), *out], "<f8"),
        "fortran order": ([str(export), "--images", str(folder / "fortran.npy"), *out], "Fortran order"),
        "truncated raw features": ([str(export), "--images", str(folder / "short.bin"), *out], "short.bin"),
        "float ids": ([str(export), "--token-ids", str(folder / "float_ids.npy"), "--lengths", lengths, *out],
                      "float_ids.npy holds <f4"),
        "length beyond the ids": ([str(export), "--token-ids", ids, "--lengths", str(folder / "long.npy"),
                                   *out], "caption 0 has length"),
        "fewer lengths than rows": ([str(export), "--token-ids", ids, "--lengths", str(folder / "three.npy"),
                                     *out], "must be [3, T]"),
        "id outside the vocabulary": ([str(export), "--token-ids", str(folder / "outside.npy"), "--lengths",
                                       lengths, *out], "ONNX Runtime"),
    }


def test_bad_input_is_one_error_line_and_exit_2(vsrn_embed, export, tmp_path):
    cases = _bad_inputs(export, tmp_path)
    failures = []
    for case, (args, needle) in cases.items():
        result = _run(vsrn_embed, *args)
        lines = result.stderr.splitlines()
        one_line = len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
        if not (result.returncode == 2 and one_line and not (tmp_path / "out.npy").exists()):
            failures.append((case, result.returncode, result.stdout, result.stderr))
    assert not failures, failures


def test_cpp_client_refuses_a_truncated_vector_file(vsrn_embed, export, tmp_path):
    copy = tmp_path / "export"
    shutil.copytree(export, copy)
    path = copy / FOLDER / "region_features.bin"
    path.write_bytes(path.read_bytes()[:-4])
    result = _run(vsrn_embed, copy)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error: ") and "region_features.bin" in result.stderr


def test_help_names_every_option(vsrn_embed):
    result = _run(vsrn_embed, "--help")
    assert result.returncode == 0 and not result.stderr
    source = (REPO / "examples" / "cpp" / "vsrn_embed.cpp").read_text()
    options = set(re.findall(r'"(--[a-z-]+)"', source))
    assert options >= {"--images", "--token-ids", "--lengths", "--out", "--precision", "--tolerance"}
    for option in options:
        assert option in result.stdout, option
