#!/usr/bin/env bash
# perf_analyzer, Triton's load generator, for benchmarks/bench_triton.py --perf-analyzer. It ships as a
# binary inside the tritonclient 2.51 wheel (later wheels dropped it); it links libb64.so.0d (Debian's
# libb64-0d) and libcudart.so.12 (pip nvidia-cuda-runtime-cu12; loaded even for CPU servers). All three
# land in .venv/perf-analyzer/ (the main environment's tritonclient stays as it is; libb64 comes through
# the private apt configuration under .venv/apt/ that 31-onnxruntime-headers.sh sets up, unpacked with
# dpkg-deb -x: the system is not touched). .venv/perf-analyzer/perf_analyzer is a wrapper that sets
# LD_LIBRARY_PATH and runs the binary.
set -euo pipefail
cd "$(dirname "$0")/../.."
TRITONCLIENT_VERSION=2.51.0
dest=.venv/perf-analyzer
stamp=.venv/.perf-analyzer-installed
want=$(sha256sum "$0" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$dest/perf_analyzer" ]; then
  exit 0
fi
rm -rf "$dest.tmp"
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --target "$dest.tmp/py" \
  "tritonclient==$TRITONCLIENT_VERSION" nvidia-cuda-runtime-cu12
cudart=$(find "$dest.tmp/py" -name 'libcudart.so.12*' | head -n1)
if [ ! -x "$dest.tmp/py/bin/perf_analyzer" ] || [ -z "$cudart" ]; then
  echo "32-perf-analyzer.sh: no perf_analyzer in tritonclient $TRITONCLIENT_VERSION or no libcudart.so.12" >&2
  exit 1
fi
source .ci/lib/debian-download.sh
deb=$(debian_download libb64-0d)
mkdir -p "$dest.tmp/deb" "$dest.tmp/lib"
dpkg-deb -x "$deb" "$dest.tmp/deb"
find "$dest.tmp/deb" -name 'libb64.so.0d*' -exec cp -P {} "$dest.tmp/lib/" \;
cp -P "$(dirname "$cudart")"/libcudart.so.12* "$dest.tmp/lib/"
rm -rf "$dest.tmp/deb"
cat > "$dest.tmp/perf_analyzer" <<'WRAP'
#!/usr/bin/env bash
here=$(cd "$(dirname "$0")" && pwd)
LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$here/py/bin/perf_analyzer" "$@"
WRAP
chmod +x "$dest.tmp/perf_analyzer" "$dest.tmp/py/bin/perf_analyzer"
# `--help` exits non-zero but proves the binary and its libraries load
help=$("$dest.tmp/perf_analyzer" --help 2>&1 || true)
case "$help" in
  *concurrency-range*) ;;
  *) echo "32-perf-analyzer.sh: perf_analyzer does not start on this machine: ${help:0:400}" >&2; exit 1 ;;
esac
rm -rf "$dest"
mv "$dest.tmp" "$dest"
echo "$want" > "$stamp"
echo "perf_analyzer (tritonclient $TRITONCLIENT_VERSION) in $dest/perf_analyzer"
