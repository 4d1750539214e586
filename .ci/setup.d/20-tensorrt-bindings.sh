#!/usr/bin/env bash
# The real TensorRT Python bindings, two versions side by side, for the `trt_api` test layer.
#
# tensorrt-cu12-bindings (module `tensorrt_bindings`) is an ordinary wheel, but its tensorrt.so
# links libnvinfer, libnvonnxparser and libnvinfer_plugin (.so.10 / .so.11), which ship only with
# TensorRT's own libraries (GPU machines). From them it imports nine C factory functions and
# nothing else (everything else goes through C++ interfaces those factories return), so three
# tiny stub libraries exporting the nine (returning NULL / 0) let the module import with every
# real class, method, enum member and pybind11 signature. Nothing can be built with them:
# `Builder(logger)` fails with "factory function returned nullptr".
#
# Layout (git-ignored, under .venv/):
#   .venv/trt-bindings/<version>/tensorrt_bindings/...   pip install --target, no dependencies
#   .venv/trt-bindings/<version>/stubs/lib*.so.<major>    the stubs for that major version
#   .venv/trt-bindings/versions.txt                       "<major> <version> <folder>" per line
# The test helper (tests/system/trt_api/bindings.py) reads versions.txt; it never installs anything.
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSIONS=(10.13.3.9 11.4.0.106)
ROOT=.venv/trt-bindings
stamp=$ROOT/.stamp
want=$(cat "$0" | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
command -v cc >/dev/null || { echo "20-tensorrt-bindings: no C compiler (cc) found; apt-get install gcc" >&2; exit 1; }
rm -rf "$ROOT.tmp"
mkdir -p "$ROOT.tmp"
src=$ROOT.tmp/src
mkdir -p "$src"
# Signatures after NvInfer.h / NvOnnxParser.h / NvInferPlugin.h; only the symbol names matter to
# the dynamic linker, the bodies make every factory report failure.
cat > "$src/nvinfer.c" <<'EOF'
#include <stddef.h>
void *createInferBuilder_INTERNAL(void *logger, int version) { return NULL; }
void *createInferRefitter_INTERNAL(void *engine, void *logger, int version) { return NULL; }
void *createInferRuntime_INTERNAL(void *logger, int version) { return NULL; }
void *getBuilderPluginRegistry(int capability) { return NULL; }
void *getPluginRegistry(void) { return NULL; }
EOF
cat > "$src/nvonnxparser.c" <<'EOF'
#include <stddef.h>
void *createNvOnnxParser_INTERNAL(void *network, void *logger, int version) { return NULL; }
void *createNvOnnxParserRefitter_INTERNAL(void *refitter, void *logger, int version) { return NULL; }
int getNvOnnxParserVersion(void) { return 0; }
EOF
cat > "$src/nvinfer_plugin.c" <<'EOF'
int initLibNvInferPlugins(void *logger, const char *lib_namespace) { return 0; }
EOF
: > "$ROOT.tmp/versions.txt"
for version in "${VERSIONS[@]}"; do
  major=${version%%.*}
  dest=$ROOT.tmp/$version
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --target "$dest" \
    "tensorrt-cu12-bindings==$version"
  mkdir -p "$dest/stubs"
  for lib in nvinfer nvonnxparser nvinfer_plugin; do
    cc -shared -fPIC -O1 -Wl,-soname,"lib$lib.so.$major" -o "$dest/stubs/lib$lib.so.$major" "$src/$lib.c"
  done
  # The sonames the bindings ask for must be exactly the stubs' (fails loudly when a new release
  # links something else).
  needed=$(readelf -d "$dest/tensorrt_bindings/tensorrt.so" | sed -n 's/.*NEEDED.*\[\(libnv[^]]*\)\]/\1/p' | sort)
  have=$(cd "$dest/stubs" && ls | sort)
  if [ "$needed" != "$have" ]; then
    echo "20-tensorrt-bindings: $version needs [$needed], stubs are [$have]" >&2
    exit 1
  fi
  echo "$major $version $version" >> "$ROOT.tmp/versions.txt"
done
rm -rf "$src" "$ROOT"
mv "$ROOT.tmp" "$ROOT"
echo "$want" > "$stamp"
echo "20-tensorrt-bindings: TensorRT bindings ${VERSIONS[*]} with stub libraries in $ROOT"
