"""Does ``auto`` pick the faster path on this CPU? Per row class, the path the native kernel takes
for float32 rows (the exact sweep, dense or windowed, or the far-field expansion) and the time of
a forward + backward on each path, forced.

The choice rests on a cost model whose exact-sweep constant is measured on the CPU at the first
build (``native.exact_cost_scales()``); this benchmark checks that model against the clock over
rows the calibration never saw: for each (n, B, γ) it reports the chosen path, the time of the
chosen and of the other path, and their ratio (other / chosen ≥ 1 where the choice was right).
The same is printed for the fitted constants alone (scales 1) with ``--uncalibrated``.

    python benchmarks/path_choice.py                  # n 512–65,536, B 1 and 128, γ 0.1–10
    python benchmarks/path_choice.py --grid quick     # two cells (run in the tests)
    python benchmarks/path_choice.py --record         # write into benchmarks/results/

Run it with nothing else running: it is a timing.
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import torch
from _timing import hardware, hardware_line, median_ms

from softrank_ad._kernels import native

RESULTS = Path(__file__).resolve().parent / "results"
GRIDS = {
    # B = 128 up to n = 4,096 (a training batch's rows); single rows up to 65,536
    "full": [(n, b) for n in (512, 1024, 2048, 4096) for b in (1, 128)] + [(16_384, 1), (65_536, 1)],
    "quick": [(256, 1), (2048, 1)],  # run in the tests
}
GAMMAS = {"full": (0.1, 1.0, 10.0), "quick": (1.0,)}


def time_path(x: torch.Tensor, gamma: float, mode: str, repeats: int) -> float:
    """Median ms of forward + backward (the backward's vector a fixed random one) on ``mode``, as
    ``soft_rank`` runs them under autograd (the backward reusing the order the forward kept)."""
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))

    def call():
        _, saved = native.forward_saving(x, gamma)
        native.backward(x, grad, gamma, saved=saved)

    with native.farfield(mode):
        return median_ms(call, "cpu", repeats)


def measure(n: int, batch: int, gamma: float, repeats: int) -> dict:
    x = torch.randn(batch, n, generator=torch.Generator().manual_seed(0))
    chosen = {
        "forward": native.method(x[0], gamma, rows=batch),
        "backward": native.method(x[0], gamma, backward=True, rows=batch),
    }
    exact, expansion = time_path(x, gamma, "never", repeats), time_path(x, gamma, "always", repeats)
    auto = time_path(x, gamma, "auto", repeats)
    return {
        "n": n,
        "batch": batch,
        "gamma": gamma,
        "forward_path": chosen["forward"],
        "backward_path": chosen["backward"],
        "exact_ms": exact,
        "expansion_ms": expansion,
        "auto_ms": auto,
        "auto_over_best": auto / min(exact, expansion),  # 1 where auto took the faster path
    }


def markdown(report: dict) -> str:
    lines = [
        f"# Path choice of the native kernel ({report['date']})",
        "",
        f"Hardware: {hardware_line(report['hardware'])}. Exact-sweep cost scales "
        f"{report['scales']} ({report['calibration']}). Forward + backward, float32, median of "
        f"{report['repeats']} calls, each path forced and `auto`.",
        "",
        "| n | B | γ | auto's path (fwd / bwd) | exact sweep ms | expansion ms | auto ms | auto / faster path |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['n']:,} | {r['batch']} | {r['gamma']:g} | {r['forward_path']} / {r['backward_path']} | "
            f"{r['exact_ms']:.3g} | {r['expansion_ms']:.3g} | {r['auto_ms']:.3g} | {r['auto_over_best']:.2f} |"
        )
    worst = max(report["rows"], key=lambda r: r["auto_over_best"])
    lines += [
        "",
        f"Worst cell: n = {worst['n']:,}, B = {worst['batch']}, γ = {worst['gamma']:g}, auto "
        f"{worst['auto_over_best']:.2f}× the faster forced path (1.00: auto took it; timing noise "
        "is about ±5%).",
    ]
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
                    f"n={n:>6} B={batch:>3} γ={gamma:<4g} {r['forward_path']:>9}/{r['backward_path']:<9} "
                    f"exact {r['exact_ms']:8.3f} ms  expansion {r['expansion_ms']:8.3f} ms  "
                    f"auto {r['auto_ms']:8.3f} ms  auto/best {r['auto_over_best']:.2f}",
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
    out = RESULTS if args.record else args.out
    out.mkdir(parents=True, exist_ok=True)
    stem = f"path_choice_{report['date']}{'_uncalibrated' if args.uncalibrated else ''}"
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2))
    (out / f"{stem}.md").write_text(markdown(report))
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
