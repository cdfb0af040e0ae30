#!/usr/bin/env bash
# Interop with the real MLflow client: export with our app, then read it with mlflow in its own virtualenv.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=.venv-interop
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
fi
"$venv/bin/pip" install --quiet -r tests/interop/requirements.txt
"$venv/bin/pip" install --quiet --no-deps ./client  # our Python client (its dependencies come with mlflow)
export EXPORT_DIR
EXPORT_DIR=$(mktemp -d)
trap 'rm -rf "$EXPORT_DIR"' EXIT
.venv/bin/python tests/interop/make_export.py "$EXPORT_DIR"
INTEROP=1 "$venv/bin/python" -m pytest tests/interop -q -p no:cacheprovider --confcutdir tests/interop -o addopts="" -W ignore
