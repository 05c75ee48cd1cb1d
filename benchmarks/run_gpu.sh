#!/usr/bin/env bash
# Every GPU check of the project in one command: the CUDA tests (Triton kernel, dtypes, Grad-CAM
# under autocast), the soft-rank throughput grid and training-step times. Results land in
# benchmarks/results/ (and in $OUT when set).
#   bash benchmarks/run_gpu.sh
#   bash benchmarks/run_gpu.sh --check     # only the prechecks (what a machine without a GPU sees)
set -uo pipefail
cd "$(dirname "$0")/.."

# Prechecks: stop with one clear line instead of running on into tracebacks.
missing=()
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null \
    || missing+=("a CUDA GPU visible to torch (torch.cuda.is_available() is False)")
python -c "import triton" 2>/dev/null || missing+=("triton (installed with the CUDA build of torch)")
for module in pytest hypothesis scipy pytorch_grad_cam; do
    python -c "import $module" 2>/dev/null || missing+=("$module (pip install -e \".[dev]\")")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "run_gpu.sh: cannot run the GPU checks here; missing:" >&2
    printf '  - %s\n' "${missing[@]}" >&2
    exit 2
fi
[ "${1:-}" = "--check" ] && { echo "run_gpu.sh: prechecks passed"; exit 0; }

out=${OUT:-benchmarks/results}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$out/gpu.txt"
python -m pytest -q -p no:cacheprovider tests/test_rank.py tests/test_triton_kernel.py tests/test_attribution.py \
    2>&1 | tail -5 | tee "$out/gpu_tests.txt"
timeout 420 python benchmarks/soft_rank_throughput.py --device cuda --repeats 10 --out "$out" 2>&1 | tail -3
timeout 240 python benchmarks/train_step.py --device cuda --repeats 5 --out "$out" 2>&1 | tail -12
