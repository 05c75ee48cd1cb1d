#!/usr/bin/env bash
# Every GPU check of the project in one command, within a lent machine's 15 minutes with its
# start-up and a rerun (one H200, 2026-12-04: 145 s, the tests 80 s of it): the CUDA tests, the
# soft-rank throughput at the sizes the README claims, and training-step times (batch 128,
# ResNet-18 student, WRN-34-10 teacher, fp32 and bf16, AdaAD vs SmaraAD). Each stage has its own
# time limit and writes its rows as they finish; at the end one table sums up every stage and the
# numbers that matter.
#
# It runs on a machine as it comes: python3 with torch, triton, pytest, hypothesis and scipy, the
# repository on PYTHONPATH (nothing installed), no pytorch-grad-cam. With $OUT set (the GPU
# machine's return folder, which takes few files) the logs and reports are packed into
# $OUT/gpu_run.tgz after every stage, beside $OUT/gpu_summary_<device>.md; without it they land in
# benchmarks/results/.
#   bash benchmarks/run_gpu.sh
#   bash benchmarks/run_gpu.sh --check     # only the prechecks (what a machine without a GPU sees)
#   bash benchmarks/run_gpu.sh --dry-run   # every stage on CPU at toy sizes (Triton interpreted),
#                                          # as the GPU machine would run them (no grad-cam)
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-run}
py=${PYTHON:-python3}
# A bare machine has nothing installed: the library and the examples' shared code come from the
# checkout.
export PYTHONPATH="$PWD:$PWD/examples${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

# Prechecks: stop with one clear line instead of running on into tracebacks.
missing=()
command -v "$py" > /dev/null || missing+=("$py (set PYTHON= to another interpreter)")
if [ "$mode" != "--dry-run" ]; then
    "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null \
        || missing+=("a CUDA GPU visible to torch (torch.cuda.is_available() is False)")
fi
"$py" -c "import triton" 2>/dev/null || missing+=("triton (installed with the CUDA build of torch)")
for module in softrank_ad pytest hypothesis scipy; do
    "$py" -c "import $module" 2>/dev/null || missing+=("$module (pip install -e \".[test]\")")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "run_gpu.sh: cannot run the GPU checks here; missing:" >&2
    printf '  - %s\n' "${missing[@]}" >&2
    exit 2
fi
[ "$mode" = "--check" ] && { echo "run_gpu.sh: prechecks passed"; exit 0; }

if [ -n "${OUT:-}" ]; then
    work=$(mktemp -d)
else
    work=benchmarks/results
fi
mkdir -p "$work"
stages="$work/gpu_stages.tsv"
: > "$stages"
pack() {
    [ -n "${OUT:-}" ] && tar czf "$OUT/gpu_run.tgz" -C "$work" .
    return 0
}
# stage NAME LIMIT_S COMMAND...: runs it under its own time limit, logs to gpu_NAME.log, records
# name, exit status and seconds for the summary, and packs what there is so far.
stage() {
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout "$limit" "$@" > "$work/gpu_$name.log" 2>&1
    local status=$?
    printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$((SECONDS - start))" "$limit" >> "$stages"
    echo "run_gpu.sh: $name finished (exit $status) in $((SECONDS - start)) s" >&2
    pack
}

tests=(tests/test_triton_kernel.py tests/test_rank.py tests/test_attribution.py)
# First, whether the Triton kernel proves itself on this device (auto trusts it only then).
verify() {
    "$py" -c "import time; from softrank_ad._kernels import triton_kernel as t; s = time.perf_counter(); v = t.verify('$1'); print(('ok: ' if v.ok else 'FAILED: ') + v.message + f' ({1e3 * (time.perf_counter() - s):.0f} ms, compilation included)')" \
        | tee "$work/gpu_verify.txt"
}
if [ "$mode" = "--dry-run" ]; then
    export TRITON_INTERPRET=1
    device=cpu
    # The GPU machine has neither pytorch-grad-cam nor AutoAttack: hide them here too.
    blocked=$(mktemp -d)
    for module in pytorch_grad_cam pyautoattack autoattack; do
        mkdir -p "$blocked/$module"
        echo "raise ImportError('$module is not on the GPU machine (run_gpu.sh --dry-run hides it)')" \
            > "$blocked/$module/__init__.py"
    done
    export PYTHONPATH="$blocked:$PYTHONPATH"
    verify cpu
    stage tests 300 "$py" -m pytest -q -p no:cacheprovider tests/test_triton_kernel.py
    stage throughput 120 "$py" benchmarks/soft_rank_throughput.py --device cpu --grid tiny --repeats 2 \
        --only "auto]" triton naive torchsort --out "$work"
    stage train_step 120 "$py" benchmarks/train_step.py --device cpu --tiny --batch 4 --steps 1 --repeats 1 \
        --methods adaad smaraad --precisions fp32 bf16 --out "$work"
else
    device=cuda
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$work/gpu.txt"
    "$py" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$work/gpu.txt"
    verify cuda
    # The GPU machine has Triton 3.6 itself and no package index: the test that installs 3.6 to
    # check it here has nothing to add there.
    stage tests 150 "$py" -m pytest -q -p no:cacheprovider "${tests[@]}" \
        -k "(cuda or triton or autocast) and not under_the_gpu_machines_triton"
    stage throughput 100 "$py" benchmarks/soft_rank_throughput.py --device cuda --grid gpu --repeats 10 \
        --only "auto]" triton reference naive torchsort --out "$work"
    stage train_step 100 "$py" benchmarks/train_step.py --device cuda --batch 128 --steps 10 --repeats 3 \
        --methods adaad smaraad --precisions fp32 bf16 --out "$work"
fi
"$py" benchmarks/gpu_summary.py "$work" "$device" | tee "$work/gpu_summary_$device.md"
if [ -n "${OUT:-}" ]; then
    cp "$work/gpu_summary_$device.md" "$OUT/"
    pack
fi
