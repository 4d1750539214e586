#!/usr/bin/env bash
# The Triton Inference Server the `triton` tests start: tritonserver 2.51 with its python backend,
# taken from the nvidia-pytriton wheel (its Python dependencies are not installed: they would pin
# numpy < 2 in the main environment, and only the server binary is needed). Lands in .venv/triton/:
#   .venv/triton/pytriton/tritonserver/bin/tritonserver
#   .venv/triton/pytriton/tritonserver/backends/python/   (+ the stub for this Python version)
# The stub embeds the Python found first on PATH. It gets its own environment, .venv/triton-python/
# (same Python, numpy < 2, and the main environment's onnxruntime and nltk versions): this stub's
# pybind11 reads numpy 1's dtype layout, and under numpy 2 it garbles string (BYTES) tensors.
# tritonclient (the tests' client) comes with the package's dev extra.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTRITON_VERSION=0.7.0
dest=.venv/triton
stamp=.venv/.triton-installed
want=$(sha256sum "$0" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$dest/pytriton/tritonserver/bin/tritonserver" ]; then
  exit 0
fi
pyver=$(.venv/bin/python -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
rm -rf "$dest.tmp"
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --target "$dest.tmp" \
  "nvidia-pytriton==$PYTRITON_VERSION"
server="$dest.tmp/pytriton/tritonserver"
stub="$server/python_backend_stubs/$pyver/triton_python_backend_stub"
if [ ! -f "$stub" ]; then
  echo "30-triton.sh: nvidia-pytriton $PYTRITON_VERSION has no python backend stub for Python $pyver" >&2
  exit 1
fi
cp "$stub" "$server/backends/python/triton_python_backend_stub"
chmod +x "$server/bin/tritonserver" "$server/backends/python/triton_python_backend_stub"
# `--help` exits 1 but proves the binary and its libraries load
help=$("$server/bin/tritonserver" --help 2>&1 || true)
case "$help" in
  *--model-repository*) ;;
  *) echo "30-triton.sh: $server/bin/tritonserver does not start on this machine: $help" >&2; exit 1 ;;
esac
base=$(.venv/bin/python -c 'import sys; print(sys._base_executable)')
ort=$(.venv/bin/python -c 'import onnxruntime; print(onnxruntime.__version__)')
nltk=$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("nltk"))')
rm -rf .venv/triton-python
"$base" -m venv .venv/triton-python
.venv/triton-python/bin/python -m pip install -q --disable-pip-version-check "numpy<2" \
  "onnxruntime==$ort" "nltk==$nltk"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
echo "$want" > "$stamp"
echo "tritonserver (nvidia-pytriton $PYTRITON_VERSION) in $dest/pytriton/tritonserver, its Python in .venv/triton-python"
