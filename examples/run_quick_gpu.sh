#!/usr/bin/env bash
# The real-data check of the README: one fast-AT teacher, SmaraAD and AdaAD students with the same
# teacher and budget (quick preset), clean / PGD-20 / CW∞ / AutoAttack on 1,000 test images.
#   bash examples/run_quick_gpu.sh /path/to/cifar10-jpeg [out_dir [extra flags...]]
# The data folder is an ImageFolder tree (train/<class>/*, test/<class>/*) or torchvision's layout.
set -euo pipefail
data_dir=${1:?usage: run_quick_gpu.sh DATA_DIR [OUT_DIR]}
out=${2:-runs/quick}
extra=("${@:3}")  # further flags override the preset, e.g. --preset smoke for a CPU dry run
here=$(cd "$(dirname "$0")" && pwd)
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python "$here/distill_cifar.py" --preset quick --data-dir "$data_dir" --method smaraad --out "$out/smaraad" --no-progress "${extra[@]}"
python "$here/distill_cifar.py" --preset quick --data-dir "$data_dir" --method adaad --out "$out/adaad" \
    --teacher-ckpt "$out/smaraad/teacher.pt" --autoattack-n 1000 --no-progress "${extra[@]}"
python - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
runs = {m: json.loads((out / m / "results.json").read_text()) for m in ("smaraad", "adaad")}
lines = ["| model | clean | PGD-20 | CW∞-30 | AutoAttack (1,000) | student training (s) |", "|---|---|---|---|---|---|"]
rows = [("teacher (fast-AT PreActResNet-18)", runs["smaraad"]["results"]["teacher"], None)]
rows += [(f"{m} student (ResNet-18)", r["results"][m], r["student_train_seconds"]) for m, r in runs.items()]
for name, s, secs in rows:
    aa = f"{s['autoattack']:.1%}" if s["autoattack"] is not None else "-"
    lines.append(f"| {name} | {s['clean']:.1%} | {s['pgd20']:.1%} | {s['cw']:.1%} | {aa} | {secs and round(secs)} |")
lines.append(f"\ncard: {runs['smaraad']['card']}, torch {runs['smaraad']['torch']}")
(out / "table.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
