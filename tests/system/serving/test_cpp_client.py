"""examples/cpp: the C++ client built against ONNX Runtime's headers (set-up) and the pip wheel's
library reproduces Python's embeddings from the export's test vectors, and says so when they differ."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from vsrn_deploy.export.test_vectors import FOLDER

pytestmark = pytest.mark.cpp

REPO = Path(__file__).resolve().parents[3]
HEADERS = REPO / ".venv" / "onnxruntime-headers" / "include" / "onnxruntime"


def _compiler() -> str:
    found = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if found is None:
        pytest.skip("no C++ compiler (c++, g++ or clang++) on PATH: the C++ client cannot be built here")
    return found


@pytest.fixture(scope="module")
def vsrn_embed(tmp_path_factory) -> Path:
    """examples/cpp built once (CMake, Release)."""
    import onnxruntime

    compiler = _compiler()
    assert shutil.which("cmake"), "cmake not found: install it (the C++ client builds with CMake)"
    assert (HEADERS / "onnxruntime_cxx_api.h").is_file(), (
        f"ONNX Runtime headers missing in {HEADERS}: run `bash .ci/setup` "
        "(.ci/setup.d/31-onnxruntime-headers.sh)")
    libs = sorted((Path(onnxruntime.__file__).parent / "capi").glob("libonnxruntime.so*"))
    assert libs, "the onnxruntime wheel has no capi/libonnxruntime.so*"
    build = tmp_path_factory.mktemp("cpp-build")
    configure = subprocess.run(
        ["cmake", "-S", str(REPO / "examples" / "cpp"), "-B", str(build), f"-DCMAKE_CXX_COMPILER={compiler}",
         f"-DONNXRUNTIME_INCLUDE_DIR={HEADERS}", f"-DONNXRUNTIME_LIBRARY={libs[0]}"],
        capture_output=True, text=True, timeout=300)
    assert configure.returncode == 0, configure.stdout + configure.stderr
    compiled = subprocess.run(["cmake", "--build", str(build)], capture_output=True, text=True, timeout=600)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    return build / "vsrn_embed"


def _run(binary: Path, export: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), str(export)], capture_output=True, text=True, timeout=120)


def test_cpp_client_matches_python(vsrn_embed, tiny_export):
    result = _run(vsrn_embed, tiny_export)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stdout
    for output in ("image_embedding", "region_embeddings", "text_embedding"):
        assert f"{output}: max_abs_diff=" in result.stdout


def test_cpp_client_fails_on_a_corrupted_expected_vector(vsrn_embed, tiny_export, tmp_path):
    export = tmp_path / "export"
    shutil.copytree(tiny_export, export)
    path = export / FOLDER / "text_embedding.bin"
    values = np.fromfile(path, dtype="<f4")
    values[3] += 1e-3  # 100x the tolerance, in one value
    values.tofile(path)
    result = _run(vsrn_embed, export)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "text_embedding: max_abs_diff=" in result.stdout and "FAIL" in result.stdout
    assert "image_embedding" in result.stdout and " ok " in result.stdout  # the image graph still checked


def test_cpp_client_refuses_a_truncated_vector_file(vsrn_embed, tiny_export, tmp_path):
    export = tmp_path / "export"
    shutil.copytree(tiny_export, export)
    path = export / FOLDER / "region_features.bin"
    path.write_bytes(path.read_bytes()[:-4])
    result = _run(vsrn_embed, export)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error: ") and "region_features.bin" in result.stderr


def test_cpp_client_runs_the_int8_graphs_as_python_does(vsrn_embed, int8_export):
    """The INT8 graphs (MatMulInteger, Loop) through the C++ API give what ONNX Runtime gives in Python:
    the same distance from the FP32 test vectors, output by output."""
    import onnxruntime as ort

    from vsrn_deploy.core.contract import IMAGE, TEXT, onnx_name
    from vsrn_deploy.export.test_vectors import read_test_vectors

    vectors = read_test_vectors(int8_export)
    python = {}
    for spec in (IMAGE, TEXT):
        sess = ort.InferenceSession(str(int8_export / onnx_name(spec.graph, "int8")),
                                    providers=["CPUExecutionProvider"])
        got = sess.run(list(spec.output_names), {n: vectors[n] for n in spec.input_names})
        for name, array in zip(spec.output_names, got, strict=True):
            python[name] = float(np.abs(array.astype(np.float64) - vectors[name]).max())
    assert max(python.values()) > 1e-5  # INT8 is not FP32: the default tolerance would fail
    tolerance = 2 * max(python.values())
    graphs = ["--image-graph", onnx_name(IMAGE.graph, "int8"), "--text-graph", onnx_name(TEXT.graph, "int8")]
    result = subprocess.run([str(vsrn_embed), str(int8_export), *graphs, "--tolerance", f"{tolerance:.6g}"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "PASS" in result.stdout, result.stdout + result.stderr
    for name, diff in python.items():
        line = next(x for x in result.stdout.splitlines() if x.startswith(f"{name}: max_abs_diff="))
        cpp = float(line.split("=", 1)[1].split()[0])
        assert cpp == pytest.approx(diff, rel=1e-3, abs=1e-7), (name, cpp, diff)
    strict = _run(vsrn_embed, int8_export)  # the FP32 graphs by default: they match at 1e-5
    assert strict.returncode == 0, strict.stdout + strict.stderr
