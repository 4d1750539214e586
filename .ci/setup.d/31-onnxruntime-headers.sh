#!/usr/bin/env bash
# ONNX Runtime's C/C++ headers for the C++ example (examples/cpp): the pip onnxruntime wheel ships
# the library (capi/libonnxruntime.so.1.*) but no headers. Debian trixie's libonnxruntime-dev holds
# them; it is fetched with apt-get download through a private apt configuration under .venv/apt/
# (its own source list, state and cache: the system's apt sources are not touched) and unpacked
# with dpkg-deb -x. Headers land in .venv/onnxruntime-headers/include/onnxruntime/.
# The C API is versioned (ORT_API_VERSION): headers of 1.21 work with a newer library.
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=.venv/onnxruntime-headers
stamp=.venv/.onnxruntime-headers-installed
want=$(sha256sum "$0" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -f "$dest/include/onnxruntime/onnxruntime_cxx_api.h" ]; then
  exit 0
fi
source .ci/lib/debian-download.sh
deb=$(debian_download libonnxruntime-dev)
rm -rf "$dest.tmp"
mkdir -p "$dest.tmp/root"
dpkg-deb -x "$deb" "$dest.tmp/root"
header=$(find "$dest.tmp/root" -name onnxruntime_cxx_api.h | head -n1)
if [ -z "$header" ]; then
  echo "31-onnxruntime-headers.sh: $deb holds no onnxruntime_cxx_api.h" >&2
  exit 1
fi
mkdir -p "$dest.tmp/include"
cp -r "$(dirname "$header")" "$dest.tmp/include/onnxruntime"
rm -rf "$dest.tmp/root" "$dest"
mv "$dest.tmp" "$dest"
echo "$want" > "$stamp"
echo "ONNX Runtime headers ($(basename "$deb")) in $dest/include/onnxruntime"
