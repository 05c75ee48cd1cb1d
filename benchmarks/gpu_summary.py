"""The one table at the end of run_gpu.sh: each stage's status and time, then the numbers the
README's GPU claims rest on (soft-rank fwd+bwd against torchsort and the naive formula, and the
training step of SmaraAD against AdaAD), read from the files the stages wrote.

    python benchmarks/gpu_summary.py benchmarks/results cuda
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import _partial as partial


def newest(folder: Path, pattern: str) -> dict | None:
    """The newest finished report matching ``pattern`` (a .json), else the newest partial one (the
    rows a stage wrote before its time limit cut it)."""
    files = sorted(folder.glob(pattern + ".json"), key=lambda p: p.stat().st_mtime)
    if files:
        return json.loads(files[-1].read_text())
    cut = sorted(folder.glob(pattern + ".partial.jsonl"), key=lambda p: p.stat().st_mtime)
    return partial.read(cut[-1]) if cut else None


def cut_note(report: dict) -> list[str]:
    return (
        ["(partial: the stage was cut by its time limit; these are the rows it finished)"]
        if report.get("partial")
        else []
    )


def stage_lines(folder: Path) -> list[str]:
    lines = ["| stage | exit | seconds (limit) |", "|---|---|---|"]
    total = 0
    for line in (folder / "gpu_stages.tsv").read_text().splitlines():
        name, status, seconds, limit = line.split("\t")
        total += int(seconds)
        verdict = "ok" if status == "0" else "timed out" if status == "124" else f"failed ({status})"
        lines.append(f"| {name} | {verdict} | {seconds} ({limit}) |")
    lines.append(f"| all stages | | {total} |")
    return lines


def throughput_lines(report: dict) -> list[str]:
    rows = [r for r in report["rows"] if "error" not in r]
    ours = "softrank_ad[triton]" if any(r["impl"] == "softrank_ad[triton]" for r in rows) else "softrank_ad[auto]"
    lines = [
        f"Soft rank, float32, fwd+bwd ms ({report['card']}; {ours}):",
        "",
        "| n | B | γ | softrank_ad | torchsort | naive | × vs torchsort | × vs naive | peak MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    index = {(r["impl"], r["n"], r["B"], r["gamma"]): r for r in rows}
    for r in (r for r in rows if r["impl"] == ours):
        peers = [index.get((peer, r["n"], r["B"], r["gamma"])) for peer in ("torchsort", "naive pairwise")]
        times = [f"{p['fwd_bwd_ms']:.3f}" if p else "–" for p in peers]
        ratios = [f"{p['fwd_bwd_ms'] / r['fwd_bwd_ms']:.2f}" if p else "–" for p in peers]
        lines.append(
            f"| {r['n']} | {r['B']} | {r['gamma']:g} | {r['fwd_bwd_ms']:.3f} | {times[0]} | {times[1]} | "
            f"{ratios[0]} | {ratios[1]} | {r['peak_mb']:.1f} |"
        )
    if report.get("missing_peers"):
        lines.append(f"Not installed, so not compared: {', '.join(report['missing_peers'])}.")
    return lines


def train_step_lines(report: dict) -> list[str]:
    config = report["config"]
    title = (
        f"Training step ({config['student']} student, {config['teacher']} teacher, batch {config['batch']}, "
        f"PGD-{config['pgd_steps']}):"
    )
    lines = [title, "", "| method | precision | ms / step | × AdaAD |", "|---|---|---|---|"]
    for r in report["rows"]:
        base = next((b for b in report["rows"] if b["method"] == "adaad" and b["precision"] == r["precision"]), None)
        ratio = f"{r['step_ms'] / base['step_ms']:.2f}" if base else "–"
        lines.append(f"| {r['method']} | {r['precision']} | {r['step_ms']:.1f} | {ratio} |")
    return lines


def main(argv: list[str]) -> str:
    folder, device = Path(argv[0]), argv[1]
    verified = folder / "gpu_verify.txt"
    parts = [[f"Triton kernel check: {verified.read_text().strip()}"]] if verified.exists() else []
    parts.append(stage_lines(folder))
    throughput = newest(folder, f"soft_rank_*_{device}_[gt]*")  # the gpu or tiny grid
    if throughput:
        parts.append(throughput_lines(throughput) + cut_note(throughput))
    steps = newest(folder, f"train_step_*_{device}")
    if steps:
        parts.append(train_step_lines(steps) + cut_note(steps))
    return "\n\n".join("\n".join(part) for part in parts)


if __name__ == "__main__":
    print(main(sys.argv[1:]))
