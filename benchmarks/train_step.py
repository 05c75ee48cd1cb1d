"""Training-step time and peak memory: PGD-AT, AdaAD, SmaraAD, SmaraAD++, ARD, RSLAD, and AdaAD
composed with DIST, soft Kendall, slack matching over samples or IGDM.

One step = the method's attack (10 PGD steps by default) + its outer loss + backward + SGD step,
on random [0, 1] images. On a GPU: CIFAR ResNet-18 student, WRN-34-10 teacher, batch 128, fp32
and bfloat16 autocast (around the whole step, attack included). On CPU: the same architectures
shrunk (``--tiny``), batch 32.

    python benchmarks/train_step.py                 # GPU if present, else tiny models on CPU
    python benchmarks/train_step.py --tiny --steps 3 --repeats 2
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
from contextlib import nullcontext
from pathlib import Path

import _partial as partial
import torch
import torch.nn.functional as F
from _timing import hardware, hardware_line, median_ms

from softrank_ad import make_objective, pgd
from softrank_ad.terms import DIST, IGDM, KendallMatching, SlackMatching
from softrank_ad_examples import models

#: AdaAD's attack and KL with one term added: (published method, added term).
COMPOSED = {
    "adaad+dist": ("adaad", DIST()),
    "adaad+kendall": ("adaad", KendallMatching()),
    "adaad+sm-samples": ("adaad", SlackMatching(rank_axis="samples")),
    "adaad+igdm": ("adaad", IGDM()),
}
METHODS = ["pgd-at", "adaad", "smaraad", "smaraad++", "ard", "rslad", *COMPOSED]


def make_step(method, student, teacher, optimizer, x, y, steps, amp):
    if method == "pgd-at":

        def step():
            with amp():  # the attack too: it is most of a step's work
                student.eval()
                x_adv = pgd(
                    lambda u: F.cross_entropy(student(u), y), x, epsilon=8 / 255, step_size=2 / 255, steps=steps
                )
                student.train()
                loss = F.cross_entropy(student(x_adv), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        return step
    base, added = COMPOSED.get(method, (method, None))
    objective = make_objective(base, student, teacher, steps=steps, add=added)

    def step():
        with amp():  # the attack too: it is most of a step's work
            x_adv = objective.perturb(x, y)
            loss = objective(x, y, x_adv=x_adv, epoch=100)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def measure(steps: dict, device: str, repeats: int, done=None) -> dict[str, tuple[float, float | None]]:
    """Median ms per step and peak MB (CUDA only) of each method. Every method is warmed up
    before any is timed, and the timed steps are interleaved (one of each per round), so neither
    warm-up nor drift in the machine's state favours the method that happens to come first."""
    peaks = {}
    for name, step in steps.items():  # warm-up: cudnn autotuning, allocator, compilation, kernels
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        step()
        peaks[name] = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            times[name].append(median_ms(step, device, 1, warmup=False))
        if done is not None:  # the medians so far, after each round
            done({name: (statistics.median(times[name]), peaks[name]) for name in steps})
    return {name: (statistics.median(times[name]), peaks[name]) for name in steps}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--tiny", action="store_true", help="shrunk models (default on CPU)")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--steps", type=int, default=10, help="PGD steps of every method's attack")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--methods", nargs="*", default=METHODS, choices=METHODS)
    parser.add_argument("--precisions", nargs="*", choices=["fp32", "bf16"])
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks"), help="default runs/benchmarks")
    parser.add_argument("--record", action="store_true", help="write into benchmarks/results/ (the README's tables)")
    args = parser.parse_args(argv)
    if args.record:
        args.out = Path(__file__).parent / "results"
    device = args.device
    tiny = args.tiny or device == "cpu"
    batch = args.batch or (32 if tiny else 128)
    precisions = args.precisions or (["fp32", "bf16"] if device == "cuda" else ["fp32"])
    torch.manual_seed(0)
    memory_format = torch.channels_last if device == "cuda" else torch.contiguous_format
    student = models.build("resnet18", 10, 16 if tiny else None).to(device, memory_format=memory_format)
    teacher = models.build("wrn34_10", 10, 2 if tiny else None).to(device, memory_format=memory_format).eval()
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    date = datetime.date.today().isoformat()
    command = "python benchmarks/train_step.py " + " ".join(argv if argv is not None else sys.argv[1:])
    header = {
        "date": date,
        "card": torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads",
        "torch": torch.__version__,
        "hardware": hardware(device),
        "command": command,
        "config": {
            "student": "resnet18" + (" (width 16)" if tiny else ""),
            "teacher": "wrn34_10" + (" (widen 2)" if tiny else ""),
            "batch": batch,
            "pgd_steps": args.steps,
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"train_step_{date}_{device}"
    partial_path = stem.with_suffix(".partial.jsonl")  # rows as they are measured: a cut run keeps them
    partial.start(partial_path, header)
    rows = []
    for precision in precisions:
        amp = (lambda: torch.autocast(device, dtype=torch.bfloat16)) if precision == "bf16" else nullcontext
        steps = {
            method: make_step(
                method,
                student,
                teacher,
                torch.optim.SGD(student.parameters(), lr=1e-3, momentum=0.9),
                x,
                y,
                args.steps,
                amp,
            )
            for method in args.methods
        }

        def so_far(medians, precision=precision):
            partial.start(partial_path, header)
            for r in rows:
                partial.add_row(partial_path, r)
            for method, (ms, peak) in medians.items():
                partial.add_row(
                    partial_path, {"method": method, "precision": precision, "step_ms": ms, "peak_mb": peak}
                )

        for method, (ms, peak) in measure(steps, device, args.repeats, so_far).items():
            rows.append({"method": method, "precision": precision, "step_ms": ms, "peak_mb": peak})
            memory = f"  peak {peak:.0f} MB" if peak is not None else ""
            print(f"{method:10s} {precision}  {ms:9.1f} ms/step{memory}", flush=True)
    report = {**header, "rows": rows}
    lines = [
        f"{report['date']} · {report['card']} · torch {report['torch']} · `{report['command']}` · "
        f"student {report['config']['student']}, teacher {report['config']['teacher']}, batch {batch}, PGD-{args.steps}",
        "",
        f"Hardware: {hardware_line(report['hardware'])}",
        "",
        "| method | precision | ms / step | × AdaAD | peak MB |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        base = next((b for b in rows if b["method"] == "adaad" and b["precision"] == r["precision"]), None)
        ratio = f"{r['step_ms'] / base['step_ms']:.2f}" if base else "–"
        peak = f"{r['peak_mb']:.0f}" if r["peak_mb"] is not None else "–"
        lines.append(f"| {r['method']} | {r['precision']} | {r['step_ms']:.1f} | {ratio} | {peak} |")
    table = "\n".join(lines)
    print(table)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2))
    stem.with_suffix(".md").write_text(table + "\n")
    partial_path.unlink(missing_ok=True)
    return report


if __name__ == "__main__":
    main()
