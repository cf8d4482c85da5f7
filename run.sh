#!/usr/bin/env bash
# kdlab launcher: creates .venv and installs kdlab on first use, then runs a command in it.
#   ./run.sh reproduce            the main job (embedded mini-en default; see README)
#   ./run.sh test [pytest args]   the test suite
#   ./run.sh <kdlab command> ...  any other kdlab command (data, train, decode, bench, ...)
set -euo pipefail
cd "$(dirname "$0")"
VENV=.venv
PY=${PYTHON:-python3}

ensure_venv() {
  if [ ! -x "$VENV/bin/kdlab" ] || [ pyproject.toml -nt "$VENV/.kdlab-installed" ]; then
    echo "[run.sh] setting up $VENV (first use: downloads torch/torchaudio, a few minutes)" >&2
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e ".[dev]"
    touch "$VENV/.kdlab-installed"
  fi
}

ensure_venv
cmd=${1:-reproduce}
[ $# -gt 0 ] && shift
case "$cmd" in
  test) exec "$VENV/bin/python" -m pytest -q -n 2 --dist loadgroup --durations=15 "$@" ;;
  *) exec "$VENV/bin/kdlab" "$cmd" "$@" ;;
esac
