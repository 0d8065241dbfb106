#!/usr/bin/env bash
# The rollout benchmark: 1,000 instances at parallelism 50, Rollwave (SQLite and PostgreSQL)
# vs ansible-core, run alternately. Results print as a table; details in bench/out/rollout/.
# Usage: bash bench/rollout/run.sh [--runs 5] [--no-postgres] [--what-if] [...]  (bench.py -h)
# Needs: .venv with Rollwave (bash scripts/test.sh or scripts/demo.sh makes it); for the
# PostgreSQL row a server at 127.0.0.1:5432 where user postgres may create a database.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -x .venv/bin/python ]; then
    echo "no .venv: run 'bash scripts/demo.sh' or 'bash scripts/test.sh' first" >&2
    exit 1
fi
bash bench/rollout/setup_ansible.sh
exec .venv/bin/python bench/rollout/bench.py "$@"
