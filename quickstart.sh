#!/usr/bin/env bash
# One entry point that does its own set-up on a fresh machine (Python 3.11, nothing else):
#   bash quickstart.sh demo [WORKDIR]     train the embedded demo (no downloads), results in WORKDIR
#   bash quickstart.sh test [PYTEST ARGS] run the test suite
# The virtual environment lives in .venv and is (re)installed when pyproject.toml changes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for cand in python3.11 python3.12 python3; do
    if command -v "$cand" >/dev/null 2>&1; then PY=$cand; break; fi
  done
fi
[ -n "$PY" ] || { echo "quickstart: no python3 found (Python >= 3.11 is needed)" >&2; exit 1; }

setup() {  # $1: pip extras spec, e.g. "." or ".[dev]"
  local stamp=".venv/.installed-$(echo "$1" | tr -c 'a-z' '_')"
  if [ ! -x .venv/bin/python ]; then
    echo "quickstart: creating .venv with $PY" >&2
    "$PY" -m venv .venv
  fi
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "quickstart: installing $1 into .venv (first run takes a few minutes)" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$1"
    touch "$stamp"
  fi
}

cmd=${1:-}
case "$cmd" in
  demo)
    setup "."
    workdir=${2:-runs/demo}
    exec .venv/bin/python scripts/train.py --config configs/demo.py --workdir "$workdir"
    ;;
  test)
    shift
    setup ".[dev]"
    # Default: the whole suite on 2 worker processes (compilation dominates; CI has 2 cores).
    # --dist loadscope: a module's tests share one worker, so a module-scoped fixture (a training run, a
    # subprocess computed once) is built once, not once per worker.
    if [ "$#" -eq 0 ]; then set -- -n 2 --dist loadscope --durations=15; fi
    exec .venv/bin/python -m pytest "$@"
    ;;
  *)
    echo "usage: bash quickstart.sh demo [WORKDIR] | bash quickstart.sh test [PYTEST ARGS]" >&2
    exit 2
    ;;
esac
