#!/usr/bin/env bash
# Installs raylite with its test tools and the optional Ray extra (Ray 2.60.0, pinned in
# pyproject.toml) into .venv, then runs the whole test suite: the API tests run on local mode,
# a raylite cluster and Ray itself (one Ray for the session, tests/api/conftest.py).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,ray]'
# Debian's Chromium for the dashboard's browser tests: installed when missing, only as root on
# Debian (apt-get, non-interactive); elsewhere those tests skip and say why.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && [ -f /etc/debian_version ] \
    && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the dashboard's browser tests..." >&2
  t0=$(date +%s)
  export DEBIAN_FRONTEND=noninteractive
  if { apt-get update -q && apt-get install -y -q chromium; } >/dev/null 2>&1; then
    echo "chromium installed in $(( $(date +%s) - t0 )) s" >&2
  else
    echo "could not install chromium (apt-get failed): the browser tests will skip" >&2
  fi
fi
set +e
.venv/bin/python -m pytest -q "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$code"
