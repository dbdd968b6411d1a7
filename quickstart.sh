#!/usr/bin/env bash
# Set up hwnas in ./.venv and run the whole pipeline on embedded defaults.
#
#   bash quickstart.sh               # set up, then: hwnas run --device cpu --max-latency 5ms
#   bash quickstart.sh --setup-only  # set up only (what CI uses)
#
# torch is installed first and pinned: a bare 'torch' requirement would pull
# several GB of CUDA packages on a CPU-only machine.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
TORCH_SPEC=${HWNAS_TORCH_SPEC:-torch==2.13.0}

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check "$TORCH_SPEC"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'

if [ "${1:-}" = "--setup-only" ]; then
  echo "hwnas is installed in .venv; try: .venv/bin/hwnas --help"
  exit 0
fi

.venv/bin/hwnas run --device cpu --max-latency 5ms
