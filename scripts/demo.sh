#!/usr/bin/env bash
# Installs raylite into .venv and runs the main demo (a local cluster, tasks, actors, objects).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
exec .venv/bin/python examples/demo.py "$@"
