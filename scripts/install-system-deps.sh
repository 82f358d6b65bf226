#!/usr/bin/env bash
# Make sure the real binaries the course runs are on PATH.
# Debian/Ubuntu: apt-get install (as root, or through sudo). macOS: Homebrew.
# Anything else: name each missing binary and how to get it, then fail.
set -euo pipefail

# binary -> Debian package / Homebrew formula: one list, shared with course_lib.supervisor.
# `--bench` adds the external load tools the benchmarks drive.
LIST="$(dirname "$0")/../course_lib/system-packages.txt"
declare -A DEBIAN_PACKAGE=() BREW_PACKAGE=()
while read -r bin debian brew needed_by; do
  case "$bin" in ''|'#'*) continue ;; esac
  if [ "$needed_by" = course ] || { [ "$needed_by" = bench ] && [ "${1:-}" = "--bench" ]; }; then
    DEBIAN_PACKAGE[$bin]=$debian; BREW_PACKAGE[$bin]=$brew
  fi
done <"$LIST"

have() {  # have "a|b" -> true when any alternative is on PATH
  local alt
  IFS='|' read -ra alts <<<"$1"
  for alt in "${alts[@]}"; do command -v "$alt" >/dev/null 2>&1 && return 0; done
  return 1
}

missing=()
for bin in "${!DEBIAN_PACKAGE[@]}"; do have "$bin" || missing+=("$bin"); done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "course: missing system binaries: ${missing[*]//|/ or }"
if [ "$(uname -s)" = Darwin ]; then
  pkgs=$(for b in "${missing[@]}"; do echo "${BREW_PACKAGE[$b]}"; done | sort -u | tr '\n' ' ')
  if command -v brew >/dev/null 2>&1; then
    echo "course: brew install $pkgs"
    brew install $pkgs
    exit 0
  fi
  echo "course: install Homebrew (https://brew.sh), then run: brew install $pkgs" >&2
  exit 1
fi

pkgs=$(for b in "${missing[@]}"; do echo "${DEBIAN_PACKAGE[$b]}"; done | sort -u | tr '\n' ' ')
if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo"
  else
    echo "course: cannot install without root. Run, then retry:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends $pkgs" >&2
    exit 1
  fi
  echo "course: installing Debian packages: $pkgs"
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $pkgs >/dev/null
  for bin in "${missing[@]}"; do
    have "$bin" || { echo "course: '$bin' still missing after installing $pkgs" >&2; exit 1; }
  done
  exit 0
fi
echo "course: no apt-get or brew here. Install these yourself and put them on PATH:" >&2
for b in "${missing[@]}"; do echo "  $b (Debian package ${DEBIAN_PACKAGE[$b]}, Homebrew ${BREW_PACKAGE[$b]})" >&2; done
exit 1
