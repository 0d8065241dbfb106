#!/usr/bin/env bash
# Create bench/.venv-ansible (git-ignored: bench/.venv*/) with ansible-core from PyPI.
# Usage: bash bench/rollout/setup_ansible.sh      (from anywhere; idempotent)
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=bench/.venv-ansible
PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/ansible-playbook" ]; then
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q "ansible-core${ANSIBLE_CORE_VERSION:+==$ANSIBLE_CORE_VERSION}"
fi
version=$("$VENV/bin/ansible-playbook" --version)
echo "ready: $VENV (${version%%$'\n'*})"
