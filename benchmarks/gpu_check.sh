#!/usr/bin/env bash
# One command for a GPU machine: train, infer, compare with the CPU, resume, measure
# (benchmarks/gpu_check.py). Without CUDA it runs as a CPU smoke test and says what it skipped.
# Usage: benchmarks/gpu_check.sh [--steps N] [--smoke]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || ./setup.sh
exec .venv/bin/python benchmarks/gpu_check.py "$@"
