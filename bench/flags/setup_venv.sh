#!/usr/bin/env bash
# Create bench/.venv-flags (git-ignored) with Rollwave and the peer flag SDKs from PyPI.
# Usage: bash bench/flags/setup_venv.sh      (from the repo root)
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=bench/.venv-flags
PY=${PYTHON:-/work/main/.venv/bin/python}
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --upgrade pip
# Rollwave itself (runtime deps only) plus the peers, each straight from PyPI.
"$VENV/bin/pip" install -q -e . --no-deps
"$VENV/bin/pip" install -q mmh3 pydantic PyYAML fastapi uvicorn httpx openfeature-sdk \
    openfeature-provider-ofrep "uvicorn[standard]" \
    growthbook growthbook-openfeature-provider \
    flagsmith openfeature-provider-flagsmith \
    launchdarkly-server-sdk launchdarkly-openfeature-server \
    UnleashClient openfeature-provider-unleash \
    openfeature-provider-flagd
"$VENV/bin/pip" freeze > bench/flags/peer-versions.txt
echo "ready: $VENV"
