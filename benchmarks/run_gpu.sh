#!/usr/bin/env bash
# Every GPU check of the project in one command (sized for ~10 minutes on one H100/H200):
# the CUDA tests (Triton kernel, dtypes, Grad-CAM under autocast), the soft-rank throughput grid,
# and training-step times. Results land in benchmarks/results/ (and in $OUT when set).
#   bash benchmarks/run_gpu.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-benchmarks/results}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$out/gpu.txt"
python -m pytest -q -p no:cacheprovider tests/test_rank.py tests/test_triton_kernel.py tests/test_attribution.py \
    2>&1 | tail -5 | tee "$out/gpu_tests.txt"
timeout 420 python benchmarks/soft_rank_throughput.py --device cuda --repeats 10 --out "$out" 2>&1 | tail -3
timeout 240 python benchmarks/train_step.py --device cuda --repeats 5 --out "$out" 2>&1 | tail -12
