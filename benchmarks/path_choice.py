"""Does ``auto`` pick the faster path on this CPU? Per row class, the path the native kernel takes
for float32 rows (the exact sweep, dense or windowed, or the far-field expansion) and the time of
a forward + backward on each path, forced.

The choice rests on a cost model whose exact-sweep constant is measured on the CPU at the first
build (``native.exact_cost_scales()``); this benchmark checks that model against the clock over
rows the calibration never saw. Each direction is timed on each path, forced, and the backward's
exact sweep both with the order a sorting forward keeps (no sort of its own) and without: under
autograd the backward chooses given what the forward left. Two verdicts per row class: the forward + backward ``auto``
took against the best of the four combinations of paths, and the backward's path against the
other given the forward's order. A choice is right within 5% of the best (timing noise); a wrong
one costs the ratio. The same for the fitted constants alone (scales 1) with ``--uncalibrated``.

    python benchmarks/path_choice.py                  # n 512–65,536, B 1 and 128, γ 0.1–10
    python benchmarks/path_choice.py --grid quick     # two cells (run in the tests)
    python benchmarks/path_choice.py --record         # write into benchmarks/results/

Run it with nothing else running: it is a timing.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

import torch
from _timing import RESULTS, hardware, hardware_line, median_ms, results_stem, write_report

from softrank_ad._kernels import native

GRIDS = {
    # B = 128 up to n = 4,096 (a training batch's rows); single rows up to 65,536
    "full": [(n, b) for n in (512, 1024, 2048, 4096) for b in (1, 128)] + [(16_384, 1), (65_536, 1)],
    "quick": [(256, 1), (2048, 1)],  # run in the tests
}
GAMMAS = {"full": (0.1, 1.0, 10.0), "quick": (1.0,)}


#: Within this ratio of the faster path a choice counts as right: closer than timing noise.
NOISE = 1.05


def measure(n: int, batch: int, gamma: float, repeats: int) -> dict:
    """Each direction on each path, forced; the backward's exact sweep both with the order its
    forward kept (no sort) and without; then what ``auto`` chose against every combination."""
    x = torch.randn(batch, n, generator=torch.Generator().manual_seed(0))
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    with native.farfield("never"):
        _, order = native.forward_saving(x, gamma)  # sorted rows' order, None for dense rows
        forward_exact = median_ms(lambda: native.forward_saving(x, gamma), "cpu", repeats)
        backward_sorted = median_ms(lambda: native.backward(x, grad, gamma, saved=order), "cpu", repeats)
        backward_unsorted = median_ms(lambda: native.backward(x, grad, gamma), "cpu", repeats)
    with native.farfield("always"):
        forward_expansion = median_ms(lambda: native.forward_saving(x, gamma), "cpu", repeats)
        backward_expansion = median_ms(lambda: native.backward(x, grad, gamma), "cpu", repeats)
    forward = {"exact": forward_exact, "expansion": forward_expansion}
    backward = {
        (True, "exact"): backward_sorted,
        (False, "exact"): backward_unsorted,
        (True, "expansion"): backward_expansion,
        (False, "expansion"): backward_expansion,
    }
    # what auto does under autograd: a forward that sorted keeps the row's order for the backward
    forward_path = native.method(x[0], gamma, rows=batch)
    kept = forward_path == "window"
    backward_path = native.method(x[0], gamma, backward=True, rows=batch, sorted=kept)
    f_taken, b_taken = ("expansion" if p == "far-field" else "exact" for p in (forward_path, backward_path))
    b_other = "exact" if b_taken == "expansion" else "expansion"
    combinations = {
        (f, b): forward[f] + backward[(f == "exact" and order is not None, b)]
        for f in ("exact", "expansion")
        for b in ("exact", "expansion")
    }
    return {
        "n": n,
        "batch": batch,
        "gamma": gamma,
        "forward_path": forward_path,
        "backward_path": backward_path,
        "forward_exact_ms": forward_exact,
        "forward_expansion_ms": forward_expansion,
        "backward_exact_sorted_ms": backward_sorted,
        "backward_exact_ms": backward_unsorted,
        "backward_expansion_ms": backward_expansion,
        # > 1: slower than the best combination of paths (forward + backward) by that factor
        "pair_loss": combinations[(f_taken, b_taken)] / min(combinations.values()),
        # > 1: given what the forward left, the backward's path was slower than the other
        "backward_loss": backward[(kept, b_taken)] / backward[(kept, b_other)],
    }


def markdown(report: dict) -> str:
    lines = [
        f"# Path choice of the native kernel ({report['date']})",
        "",
        f"Hardware: {hardware_line(report['hardware'])}. Exact-sweep cost scales "
        f"{report['scales']} ({report['calibration']}). Float32, median of {report['repeats']} calls "
        "of each direction on each path, forced; the backward's exact sweep with the order its "
        "forward kept (sorted rows) and without. Pair: the forward + backward `auto` took over the "
        "best of the four combinations of paths; backward: its path over the other, given the order "
        f"the forward left (≤ {NOISE}: right, within timing noise).",
        "",
        "| n | B | γ | paths (forward → backward) | forward exact / expansion ms | backward exact, order kept / "
        "not / expansion ms | pair: taken / best | backward: taken / other |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        marks = {k: f"{r[k]:.2f}" + ("" if r[k] <= NOISE else " **wrong**") for k in ("pair_loss", "backward_loss")}
        lines.append(
            f"| {r['n']:,} | {r['batch']} | {r['gamma']:g} | {r['forward_path']} → {r['backward_path']} | "
            f"{r['forward_exact_ms']:.3g} / {r['forward_expansion_ms']:.3g} | "
            f"{r['backward_exact_sorted_ms']:.3g} / {r['backward_exact_ms']:.3g} / {r['backward_expansion_ms']:.3g} | "
            f"{marks['pair_loss']} | {marks['backward_loss']} |"
        )
    wrong = [(r, k) for r in report["rows"] for k in ("pair_loss", "backward_loss") if r[k] > NOISE]
    lines += ["", f"Choices: {2 * len(report['rows'])}, wrong (slower than the best by more than 5%): {len(wrong)}."]
    if wrong:
        r, k = max(wrong, key=lambda item: item[0][item[1]])
        what = "forward + backward" if k == "pair_loss" else "backward"
        lines.append(
            f"Worst: the {what} at n = {r['n']:,}, B = {r['batch']}, γ = {r['gamma']:g}, {r[k]:.2f}× the best time."
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--grid", choices=sorted(GRIDS), default="full")
    parser.add_argument("--uncalibrated", action="store_true", help="the fitted constants (scales 1) instead")
    parser.add_argument("--record", action="store_true", help="write into benchmarks/results/")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks"))
    parser.add_argument("--tag", default="", help="appended to the results' file names (e.g. the build target)")
    args = parser.parse_args(argv)
    if not native.available():
        raise SystemExit(f"the native kernels are not available here: {native.build_error()}")
    scales = native.exact_cost_scales()
    label = "measured on this CPU at the build"
    if args.uncalibrated:
        scales, label = {"forward": 1.0, "backward": 1.0}, "the fitted constants, uncalibrated"
    rows = []
    with native.exact_cost(**scales):
        for n, batch in GRIDS[args.grid]:
            for gamma in GAMMAS[args.grid]:
                rows.append(measure(n, batch, gamma, args.repeats))
                r = rows[-1]
                print(
                    f"n={n:>6} B={batch:>3} γ={gamma:<4g} {r['forward_path']:>9} → {r['backward_path']:<9} "
                    f"pair taken/best {r['pair_loss']:.2f}  backward taken/other {r['backward_loss']:.2f}",
                    flush=True,
                )
    report = {
        "date": datetime.date.today().isoformat(),
        "hardware": hardware("cpu"),
        "scales": {k: round(v, 3) for k, v in scales.items()},
        "calibration": label,
        "repeats": args.repeats,
        "rows": rows,
    }
    write_report(
        report,
        markdown(report),
        results_stem("path_choice", report["date"], "uncalibrated" if args.uncalibrated else "", args.tag),
        RESULTS if args.record else args.out,
    )
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
