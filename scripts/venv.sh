# Sourced by the other scripts: create .venv and install Rollwave with the given extras.
ensure_venv() {
  local extras="$1"
  local python="${PYTHON:-python3}"
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "Rollwave needs Python 3.11 or newer (found: $("$python" --version 2>&1))." >&2
    echo "Set PYTHON=/path/to/python3.11 and run again." >&2
    exit 1
  fi
  if [ ! -x .venv/bin/python ]; then
    echo "Creating .venv with $("$python" --version)..."
    "$python" -m venv .venv
  fi
  local stamp=".venv/.installed${extras:+-$extras}"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "Installing Rollwave${extras:+ with [$extras]} into .venv (first run takes a minute)..."
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
    .venv/bin/python -m pip install -q -e ".${extras:+[$extras]}" 2>&1 \
      | grep -v -e "^WARNING: Location" -e "BuildBackendWarning" || true
    .venv/bin/python -c "import rollwave" || { echo "installation failed" >&2; exit 1; }
    touch "$stamp"
  fi
}
