"""Does ``auto`` pick the faster path on this CPU? Per row class, the path the native kernel takes
for float32 rows (the exact sweep, dense or windowed, or the far-field expansion) and the time of
a forward + backward on each path, forced.

The choice rests on a cost model whose exact-sweep constant is measured on the CPU at the first
build (``native.exact_cost_scales()``); this benchmark checks that model against the clock over
rows the calibration never saw. The forward and the backward choose separately, so each is timed
separately on each path, forced (the backward as ``soft_rank`` runs it, with the order the forward
kept): a choice is right when the path taken is the faster one, or within 5% of it (timing
noise); a wrong one costs the ratio of the two. The same for the fitted constants alone (scales
1) with ``--uncalibrated``.

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
from _timing import RESULTS, hardware, hardware_line, median_ms, write_report

from softrank_ad._kernels import native

GRIDS = {
    # B = 128 up to n = 4,096 (a training batch's rows); single rows up to 65,536
    "full": [(n, b) for n in (512, 1024, 2048, 4096) for b in (1, 128)] + [(16_384, 1), (65_536, 1)],
    "quick": [(256, 1), (2048, 1)],  # run in the tests
}
GAMMAS = {"full": (0.1, 1.0, 10.0), "quick": (1.0,)}


#: Within this ratio of the faster path a choice counts as right: closer than timing noise.
NOISE = 1.05


def time_direction(x: torch.Tensor, gamma: float, mode: str, repeats: int) -> tuple[float, float]:
    """Median ms of the forward and of the backward (its vector a fixed random one, and the order
    the forward kept on this path, as under autograd) on ``mode``."""
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    with native.farfield(mode):
        _, saved = native.forward_saving(x, gamma)
        forward = median_ms(lambda: native.forward_saving(x, gamma), "cpu", repeats)
        backward = median_ms(lambda: native.backward(x, grad, gamma, saved=saved), "cpu", repeats)
    return forward, backward


def measure(n: int, batch: int, gamma: float, repeats: int) -> dict:
    x = torch.randn(batch, n, generator=torch.Generator().manual_seed(0))
    row = {"n": n, "batch": batch, "gamma": gamma}
    times = {
        "exact": time_direction(x, gamma, "never", repeats),
        "expansion": time_direction(x, gamma, "always", repeats),
    }
    for k, direction in enumerate(("forward", "backward")):
        path = native.method(x[0], gamma, backward=bool(k), rows=batch)
        taken, other = ("expansion", "exact") if path == "far-field" else ("exact", "expansion")
        row[f"{direction}_path"] = path
        row[f"{direction}_exact_ms"] = times["exact"][k]
        row[f"{direction}_expansion_ms"] = times["expansion"][k]
        # > 1: the path taken was slower than the other by that factor
        row[f"{direction}_loss"] = times[taken][k] / times[other][k]
    return row


def markdown(report: dict) -> str:
    lines = [
        f"# Path choice of the native kernel ({report['date']})",
        "",
        f"Hardware: {hardware_line(report['hardware'])}. Exact-sweep cost scales "
        f"{report['scales']} ({report['calibration']}). Float32, median of {report['repeats']} calls "
        "of each direction on each path, forced. Taken / other: the time of the path `auto` took "
        f"over the other's (≤ {NOISE}: right, within timing noise).",
        "",
        "| n | B | γ | forward: path | exact ms | expansion ms | taken / other | backward: path | exact ms "
        "| expansion ms | taken / other |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        cells = [f"{r['n']:,}", str(r["batch"]), f"{r['gamma']:g}"]
        for d in ("forward", "backward"):
            loss = r[f"{d}_loss"]
            mark = "" if loss <= NOISE else " **wrong**"
            cells += [r[f"{d}_path"], f"{r[f'{d}_exact_ms']:.3g}", f"{r[f'{d}_expansion_ms']:.3g}", f"{loss:.2f}{mark}"]
        lines.append("| " + " | ".join(cells) + " |")
    wrong = [(r, d) for r in report["rows"] for d in ("forward", "backward") if r[f"{d}_loss"] > NOISE]
    lines += ["", f"Choices: {2 * len(report['rows'])}, wrong (the other path faster by more than 5%): {len(wrong)}."]
    if wrong:
        r, d = max(wrong, key=lambda item: item[0][f"{item[1]}_loss"])
        lines.append(
            f"Worst: the {d} at n = {r['n']:,}, B = {r['batch']}, γ = {r['gamma']:g}, "
            f"{r[f'{d}_loss']:.2f}× the faster path's time."
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--grid", choices=sorted(GRIDS), default="full")
    parser.add_argument("--uncalibrated", action="store_true", help="the fitted constants (scales 1) instead")
    parser.add_argument("--record", action="store_true", help="write into benchmarks/results/")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks"))
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
                    f"n={n:>6} B={batch:>3} γ={gamma:<4g} forward {r['forward_path']:>9} "
                    f"(taken/other {r['forward_loss']:.2f})  backward {r['backward_path']:>9} "
                    f"(taken/other {r['backward_loss']:.2f})",
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
        f"path_choice_{report['date']}{'_uncalibrated' if args.uncalibrated else ''}",
        RESULTS if args.record else args.out,
    )
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
