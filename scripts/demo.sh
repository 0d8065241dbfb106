#!/usr/bin/env bash
# Install Rollwave into .venv (first run only) and run the demo: a fleet of 12 customer
# instances on this machine receives release 1.0, then 1.1 in waves; 1.1 breaks one
# customer's customization, which is detected and rolled back while the rest completes.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
ensure_venv ""
exec .venv/bin/rollwave demo "$@"
