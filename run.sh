#!/usr/bin/env bash
# kdlab launcher: installs the locked environment into .venv when the lock changes, then runs a command in it.
#   ./run.sh reproduce            the main job (embedded mini-en default; see README)
#   ./run.sh test [pytest args]   the test suite
#   ./run.sh doctor               the environment's self-check (also run after every install)
#   ./run.sh install              re-install requirements.lock into .venv now (repairs a hand-changed venv)
#   ./run.sh lock                 re-resolve pyproject.toml into requirements.lock (uv, from PyPI)
#   ./run.sh <kdlab command> ...  any other kdlab command (data, train, decode, bench, ...)
set -euo pipefail
cd "$(dirname "$0")"
VENV=.venv
PY=${PYTHON:-python3}
LOCK=requirements.lock
STAMP=$VENV/.kdlab-lock-sha256   # the content hash of the lock (and pyproject.toml) that .venv holds
UV_VERSION=0.13.10               # the resolver that writes the lock

lock_hash() { cat "$LOCK" pyproject.toml | sha256sum | cut -d' ' -f1; }

# The lock, installed with hash checking; then kdlab itself without re-resolving anything.
install_locked() {
  if ! "$VENV/bin/python" -c '' 2>/dev/null; then
    rm -rf "$VENV"
    "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
      || { echo "[run.sh] error: $PY is $("$PY" -V 2>&1); kdlab needs Python >= 3.10 (set PYTHON=...)" >&2; exit 2; }
    "$PY" -m venv "$VENV"
  fi
  rm -f "$STAMP"
  pip_quiet install --require-hashes -r "$LOCK"
  pip_quiet install --no-deps --no-build-isolation -e .
  "$VENV/bin/kdlab" doctor
}

# pip, without the warnings some machines' pip configuration prints for every package (a local extra
# index folder that lacks it); real errors still come through.
pip_quiet() {
  "$VENV/bin/python" -m pip -q --disable-pip-version-check "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}

ensure_venv() {
  local want
  want=$(lock_hash)
  [ "${1:-}" = force ] && rm -f "$STAMP"
  [ -x "$VENV/bin/kdlab" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ] && return 0
  mkdir -p "$VENV"
  exec 9>"$VENV/.install.lock"
  if command -v flock >/dev/null && ! flock -n 9; then  # two installs into one venv: one waits (util-linux)
    echo "[run.sh] another ./run.sh is installing into $VENV; waiting for it" >&2
    flock 9
  fi
  if [ ! -x "$VENV/bin/kdlab" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
    echo "[run.sh] installing $LOCK into $VENV (its content changed or it is new; the first time downloads" \
         "torch, a few minutes)" >&2
    install_locked
    echo "$want" > "$STAMP"
  fi
  exec 9>&-
}

refresh_lock() {
  local tools=.venv-lock
  [ -x "$tools/bin/uv" ] && "$tools/bin/uv" --version | grep -q " $UV_VERSION" \
    || { "$PY" -m venv "$tools" && "$tools/bin/python" -m pip install -q "uv==$UV_VERSION"; }
  # Every platform and Python >= 3.10 in one file, with hashes; setuptools is the build backend
  # (kdlab is installed with --no-build-isolation, so the backend comes from the lock too).
  echo "setuptools>=68" | "$tools/bin/uv" pip compile pyproject.toml - --extra dev --universal \
    --python-version 3.10 --generate-hashes --custom-compile-command "./run.sh lock" -o "$LOCK" "$@"
}

# The synthesizers' Debian packages (flite, festival and its voices: mini-en's corpus) are installed as
# root through apt, as .ci/run does; otherwise the one command to run is printed.
system_packages() {
  local need
  need=$("$VENV/bin/python" -m kdlab.env.checks 2>/dev/null) || return 0
  [ -z "$need" ] && return 0
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "[run.sh] installing the synthesizers' Debian packages: $need" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null \
      || echo "[run.sh] apt-get could not install $need; mini-en cannot be synthesized" >&2
  else
    echo "[run.sh] mini-en's synthesizers are missing; install them with: sudo apt-get install -y $need" >&2
  fi
}

cmd=${1:-reproduce}
[ $# -gt 0 ] && shift
case "$cmd" in
  lock) refresh_lock "$@"; exit ;;
  install) ensure_venv force; exit ;;
esac
ensure_venv
system_packages
case "$cmd" in
  test) exec "$VENV/bin/python" -m pytest -q -n 2 --dist loadgroup --durations=15 "$@" ;;
  *) exec "$VENV/bin/kdlab" "$cmd" "$@" ;;
esac
