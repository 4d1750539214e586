#!/usr/bin/env bash
# A second virtual environment WITHOUT torch, .venv/torchfree, for the `torchfree` tests: the package
# (editable, so it always runs this checkout's code) with its `search` extra only. Proves that
# `pip install vsrn-deploy` pulls in no torch and that index + search run there.
# Idempotent: rebuilt only when pyproject.toml or this script changes (stamp inside the venv).
set -euo pipefail
script="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$script")/../.."
PY=${PYTHON:-python3}
venv=.venv/torchfree
want=$(cat pyproject.toml "$script" | sha256sum | cut -d' ' -f1)
stamp=$venv/.vsrn-deploy-torchfree
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
rm -rf "$venv"  # only ever this step's own venv
"$PY" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e ".[search]"
if "$venv/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is None)"; then
  echo "error: torch was installed into $venv by 'pip install vsrn-deploy[search]'" >&2
  exit 1
fi
echo "$want" > "$stamp"
