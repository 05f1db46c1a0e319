#!/usr/bin/env bash
# The dashboard's real-browser test: headless Chromium + chromedriver (Debian's `chromium` and
# `chromium-driver`) driven by Selenium from a venv kept under target/. Exit status 0 on pass,
# 1 on failure, 77 when the browser is missing (the caller decides whether skipping is allowed).
# Usage: tests/browser/run.sh [--screenshot docs/dashboard.png]
set -euo pipefail
cd "$(dirname "$0")/../.."

for tool in chromium chromedriver; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "SKIPPED: $tool is not installed (apt-get install chromium chromium-driver)" >&2
    exit 77
  fi
done

venv=target/browser-venv
if ! "$venv/bin/python" -c 'import selenium' >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'selenium>=4.20,<5'
fi

binary=${SECURESCORE_BIN:-target/debug/securescore}
if [ ! -x "$binary" ]; then
  cargo build --quiet --bin securescore
fi

exec "$venv/bin/python" tests/browser/dashboard_test.py --binary "$binary" "$@"
