#!/usr/bin/env bash
# The CPU numbers of BENCHMARKS.md: every size, beside PyTorch eager and a hand-written
# NumPy step, on this machine's CPU. Needs `pip install -e '.[plot]' torch`.
# Usage: bash benchmarks/run_cpu.sh [extra bench options]   (about 3 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p results
backprop bench --devices cpu --compare torch,numpy-reference,matmuls --json --plot results/cpu.png "$@" \
    > results/cpu.json
python render.py results/cpu.json
