#!/usr/bin/env bash
# The GPU numbers of BENCHMARKS.md, on a machine with an NVIDIA GPU and CuPy (and PyTorch
# with CUDA for the side-by-side columns). Runs through `python3 -m backprop`, so it works
# from a checkout on PYTHONPATH as well as from an install.
# Usage: bash benchmarks/run_gpu.sh   (a few minutes; the large size on the CPU dominates)
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p results
run() { python3 -m backprop bench "$@"; }
# Every size on both devices, beside PyTorch eager and a hand-written NumPy / CuPy step.
run --devices cpu,cuda --compare torch,numpy-reference --json --plot results/gpu.png > results/gpu.json
python3 render.py results/gpu.json
# TF32 tensor cores for the float32 products (GPU rows only).
run --sizes medium,large --devices cuda --precision tf32 --compare torch --json > results/gpu_tf32.json
python3 render.py results/gpu_tf32.json
# Where a small step's time goes on the GPU: host issue time against wall time, and a profile.
for size in xor small medium; do python3 profile_step.py --size "$size" --device cuda; done
