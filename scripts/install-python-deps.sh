#!/usr/bin/env bash
# Make the venv match requirements.txt exactly, then install course_lib in editable mode.
# uv (bootstrapped from PyPI with the venv's pip) does it in seconds; without uv, pip does
# it, slower, and says so. COURSE_NO_UV=1 takes the pip path on purpose (bench/setup.py).
set -euo pipefail

VENV=${1:-.venv}
PY="$VENV/bin/python"
UV="$VENV/bin/uv"
cd "$(dirname "$0")/.."

uv_pin=$(grep -E '^uv==' requirements.txt || true)
if [ -z "${COURSE_NO_UV:-}" ] && [ -n "$uv_pin" ] && { [ -x "$UV" ] && [ "$("$UV" --version | cut -d' ' -f2)" = "${uv_pin#uv==}" ] ||
  "$PY" -m pip install --quiet --disable-pip-version-check "$uv_pin"; }; then
  # sync also removes what the lock no longer lists; pip stays for the fallback below.
  if "$UV" pip sync --quiet --python "$PY" requirements.txt &&
    "$UV" pip install --quiet --python "$PY" --no-deps -e . pip; then
    exit 0
  fi
  echo "course: uv could not install the requirements; falling back to pip (slower)" >&2
else
  echo "course: could not install uv; installing with pip instead (slower)" >&2
fi
"$PY" -m pip install --quiet --disable-pip-version-check -r requirements.txt
"$PY" -m pip install --quiet --disable-pip-version-check --no-deps -e .
