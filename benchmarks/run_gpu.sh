#!/usr/bin/env bash
# Every GPU check of the project in one command, sized to finish within 6 minutes on one H100
# (a lent machine's 15 minutes must also hold its start-up and a rerun): the CUDA tests, the
# soft-rank throughput at the sizes the README claims, and training-step times (batch 128,
# ResNet-18 student, WRN-34-10 teacher, fp32 and bf16, AdaAD vs SmaraAD). Each stage has its own
# time limit; at the end one table sums up every stage and the numbers that matter. Results land
# in benchmarks/results/ (or $OUT).
#   bash benchmarks/run_gpu.sh
#   bash benchmarks/run_gpu.sh --check     # only the prechecks (what a machine without a GPU sees)
#   bash benchmarks/run_gpu.sh --dry-run   # every stage on CPU at toy sizes (Triton interpreted)
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-run}

# Prechecks: stop with one clear line instead of running on into tracebacks.
missing=()
if [ "$mode" != "--dry-run" ]; then
    python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null \
        || missing+=("a CUDA GPU visible to torch (torch.cuda.is_available() is False)")
fi
python -c "import triton" 2>/dev/null || missing+=("triton (installed with the CUDA build of torch)")
for module in pytest hypothesis scipy pytorch_grad_cam; do
    python -c "import $module" 2>/dev/null || missing+=("$module (pip install -e \".[dev]\")")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "run_gpu.sh: cannot run the GPU checks here; missing:" >&2
    printf '  - %s\n' "${missing[@]}" >&2
    exit 2
fi
[ "$mode" = "--check" ] && { echo "run_gpu.sh: prechecks passed"; exit 0; }

out=${OUT:-benchmarks/results}
mkdir -p "$out"
stages="$out/gpu_stages.tsv"
: > "$stages"
# stage NAME LIMIT_S COMMAND...: runs it under its own time limit, logs to $out/gpu_NAME.log and
# records name, exit status and seconds for the summary.
stage() {
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout "$limit" "$@" > "$out/gpu_$name.log" 2>&1
    local status=$?
    printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$((SECONDS - start))" "$limit" >> "$stages"
    echo "run_gpu.sh: $name finished (exit $status) in $((SECONDS - start)) s" >&2
}

if [ "$mode" = "--dry-run" ]; then
    export TRITON_INTERPRET=1
    device=cpu
    stage tests 300 python -m pytest -q -p no:cacheprovider tests/test_triton_kernel.py
    stage throughput 120 python benchmarks/soft_rank_throughput.py --device cpu --grid tiny --repeats 2 \
        --only "auto]" triton naive torchsort --out "$out"
    stage train_step 120 python benchmarks/train_step.py --device cpu --tiny --batch 4 --steps 1 --repeats 1 \
        --methods adaad smaraad --precisions fp32 bf16 --out "$out"
else
    device=cuda
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
    python -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$out/gpu.txt"
    stage tests 90 python -m pytest -q -p no:cacheprovider tests/test_triton_kernel.py tests/test_rank.py \
        tests/test_attribution.py -k "cuda or triton or autocast"
    stage throughput 120 python benchmarks/soft_rank_throughput.py --device cuda --grid gpu --repeats 10 \
        --only "auto]" triton reference naive torchsort --out "$out"
    stage train_step 120 python benchmarks/train_step.py --device cuda --batch 128 --steps 10 --repeats 3 \
        --methods adaad smaraad --precisions fp32 bf16 --out "$out"
fi
python benchmarks/gpu_summary.py "$out" "$device" | tee "$out/gpu_summary_$device.md"
