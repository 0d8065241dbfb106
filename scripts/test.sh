#!/usr/bin/env bash
# Install the test dependencies into .venv and run every test (lint and type checks too).
# Tests that need a service this machine lacks (PostgreSQL, Prometheus, Chromium) skip with
# the reason; with ROLLWAVE_REQUIRE_SERVICES=1 (as in CI) they fail instead.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
ensure_venv "test"
echo "== ruff"; .venv/bin/ruff check src tests
echo "== mypy"; .venv/bin/mypy
echo "== pytest"; exec .venv/bin/python -m pytest "$@"
