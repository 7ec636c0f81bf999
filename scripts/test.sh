#!/usr/bin/env bash
# Installs raylite with its test tools and Ray (the API tests also run on Ray) into .venv,
# then runs the whole test suite. Ray is big: its install takes about 1.5 min.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,ray]'
set +e
.venv/bin/python -m pytest -q "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$code"
