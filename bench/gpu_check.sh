#!/usr/bin/env bash
# The GPU check (bench/gpu_check.py) in one command, for a lent CUDA machine:
#   bash bench/gpu_check.sh [--dry-run] [--out DIR] [more options of bench/gpu_check.py]
# Works from a clone without installing the package (PYTHONPATH=src); results go to $OUT when the
# machine sets it, else to bench/results/gpu/.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
out="${OUT:-bench/results/gpu}"
exec "$PY" bench/gpu_check.py --out "$out" "$@"
