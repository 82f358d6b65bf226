#!/usr/bin/env bash
# Create the venv if needed, make it match requirements.txt exactly, and install course_lib
# in editable mode. uv does it in seconds; it is bootstrapped from PyPI with pip (the
# system Python's, into a venv created without pip, which saves the slow ensurepip step).
# Without uv, pip does it, more slowly, and says so.
# Usage: install-python-deps.sh VENV PYTHON. COURSE_NO_UV=1 takes the pip path on purpose.
set -euo pipefail

VENV=${1:-.venv}
PYTHON=${2:-python3}
PY="$VENV/bin/python"
UV="$VENV/bin/uv"
cd "$(dirname "$0")/.."

with_pip() {  # the slow path: pip installs the lock
  echo "course: $1; installing with pip instead (slower)" >&2
  [ -x "$PY" ] || "$PYTHON" -m venv "$VENV"
  "$PY" -m pip --version >/dev/null 2>&1 || "$PY" -m ensurepip --upgrade >/dev/null
  "$PY" -m pip install --quiet --disable-pip-version-check -r requirements.txt
  "$PY" -m pip install --quiet --disable-pip-version-check --no-deps -e .
  exit 0
}

[ -z "${COURSE_NO_UV:-}" ] || with_pip "COURSE_NO_UV is set"
uv_pin=$(grep -E '^uv==' requirements.txt) || with_pip "requirements.txt pins no uv"

if [ ! -x "$PY" ]; then
  if "$PYTHON" -m pip --version >/dev/null 2>&1; then
    "$PYTHON" -m venv --without-pip "$VENV"
  else
    "$PYTHON" -m venv "$VENV"
  fi
fi
install_uv() {  # with the venv's pip; else the system pip (>= 22.3) into it; else ensurepip
  local pip_args=(install --quiet --disable-pip-version-check "$uv_pin")
  if "$PY" -m pip --version >/dev/null 2>&1; then
    "$PY" -m pip "${pip_args[@]}"
  elif "$PYTHON" -m pip --python "$PY" "${pip_args[@]}" 2>/dev/null; then
    return 0
  else
    "$PY" -m ensurepip --upgrade >/dev/null && "$PY" -m pip "${pip_args[@]}"
  fi
}
if ! { [ -x "$UV" ] && [ "$("$UV" --version | cut -d' ' -f2)" = "${uv_pin#uv==}" ]; }; then
  install_uv || with_pip "could not install uv"
fi
# sync also removes what the lock no longer lists (pip is in the lock: it stays).
"$UV" pip sync --quiet --python "$PY" requirements.txt || with_pip "uv could not install the lock"
"$UV" pip install --quiet --python "$PY" --no-deps -e . || with_pip "uv could not install course_lib"
