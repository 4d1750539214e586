#!/usr/bin/env bash
# A packed copy of the Triton stub's Python (.venv/triton-python, made by 30-triton.sh) for the tests of
# repositories that carry their own environment (`triton-repo --python-env`,
# tests/system/serving/test_packed_env.py): .venv/triton-python.tar.gz, made by venv-pack (the dev
# extra installs it). Re-packed when this script or the environment (30-triton.sh's stamp) changes.
set -euo pipefail
cd "$(dirname "$0")/../.."
src=.venv/triton-python
dest=.venv/triton-python.tar.gz
stamp=.venv/.triton-python-packed
want=$(cat "$0" .venv/.triton-installed 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -f "$dest" ]; then
  exit 0
fi
if [ ! -x "$src/bin/python" ]; then
  echo "33-triton-python-pack.sh: $src is missing; 30-triton.sh makes it (run bash .ci/setup)" >&2
  exit 1
fi
if [ ! -x .venv/bin/venv-pack ]; then
  echo "33-triton-python-pack.sh: venv-pack is not installed in .venv; pip install -e '.[dev]' brings it" >&2
  exit 1
fi
rm -f "$dest.tmp"
.venv/bin/venv-pack --prefix "$src" --output "$dest.tmp" --format tar.gz --compress-level 1 --force -q
mv "$dest.tmp" "$dest"
echo "$want" > "$stamp"
echo "packed $src into $dest"
