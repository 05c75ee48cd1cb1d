"""How the native forward compares with the floor the kernels were once held to: one division
per unordered pair at this CPU's peak division throughput.

The dense forward of a row costs n exponentials and n(n−1)/2 reciprocals (σ(γ(v_i − v_j)) =
E_i / (E_i + E_j) serves both entries of a pair). Computed one division each, those divisions
alone bound the forward from below. Since 2026-12-04 the kernels take two reciprocals from one
division (1/p = q/(pq), 1/q = p/(pq)), so the forward can come in under this floor; the report
says so rather than moving the floor. The floor is measured here, not computed from a datasheet:
a C loop of exactly B·n(n−1)/2 float32 divisions over data in cache, one long vectorised loop per
row's worth (no per-entry overhead), built with the library's flags and run on the same threads.
The forward is ``soft_rank`` as a training loop calls it (default arguments, CPU float32); the
native kernel called directly is timed beside it, so that the report shows what the call itself
adds. The three are interleaved call by call (floor, kernel, ``soft_rank``, floor, …): on a
shared machine a slow spell then falls on all three, and each round gives its own ratio.

    python benchmarks/division_floor.py                 # n = 100, B = 4,096, γ = 1
    python benchmarks/division_floor.py --record        # write into benchmarks/results/
    MARCH=x86-64-v3 CC=benchmarks/cc_march.sh SOFTRANK_AD_CACHE=/tmp/softrank-v3 \
        python benchmarks/division_floor.py --tag x86-64-v3   # floor and kernels built for AVX2

Run it with nothing else running: it is a timing.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import statistics
import subprocess
import tempfile
from pathlib import Path

import torch
from _timing import RESULTS, hardware, hardware_line, median_ms, results_stem, write_report

from softrank_ad import soft_rank
from softrank_ad._kernels import native

FLOOR_SOURCE = r"""
#include <stdint.h>
/* passes × length float32 divisions on `threads` threads, each into a running sum so that none
 * is optimised away; c changes per pass so that no division is hoisted out of the loop. */
float division_floor(const float *a, int64_t length, int64_t passes, int threads)
{
    float total = 0;
#pragma omp parallel for num_threads(threads) reduction(+:total) schedule(static)
    for (int64_t p = 0; p < passes; ++p) {
        const float c = 1.0f + 1e-7f * (float)p;
        float acc = 0;
        for (int64_t k = 0; k < length; ++k)
            acc += 1.0f / (a[k] + c);
        total += acc;
    }
    return total;
}
"""


def build_floor(directory: Path) -> ctypes.CDLL:
    """The floor loop, built like the kernels (same compiler, flags, -march=native, OpenMP)."""
    source, library = directory / "floor.c", directory / "floor.so"
    source.write_text(FLOOR_SOURCE)
    compiler = native._compiler()
    command = [*compiler, *native._FLAGS, "-march=native", "-fopenmp", str(source), "-o", str(library)]
    subprocess.run(command, check=True, capture_output=True, text=True)
    floor = ctypes.CDLL(str(library))
    floor.division_floor.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int]
    floor.division_floor.restype = ctypes.c_float
    return floor


def measure(floor: ctypes.CDLL, n: int, batch: int, gamma: float, threads: int, repeats: int) -> dict:
    pairs = n * (n - 1) // 2
    a = torch.rand(pairs, generator=torch.Generator().manual_seed(0)) + 0.5
    x = torch.randn(batch, n, generator=torch.Generator().manual_seed(0))
    calls = {
        "floor": lambda: floor.division_floor(a.data_ptr(), pairs, batch, threads),
        "kernel": lambda: native.forward(x, gamma),
        "forward": lambda: soft_rank(x, gamma=gamma),
    }
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for call in calls.values():  # untimed: builds, first-touch of memory
            call()
        times: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(repeats):
            for name, call in calls.items():
                times[name].append(median_ms(call, "cpu", 1, warmup=False))
    finally:
        torch.set_num_threads(previous)
    ratios = sorted(f / d for f, d in zip(times["forward"], times["floor"]))
    return {
        "n": n,
        "batch": batch,
        "gamma": gamma,
        "threads": threads,
        "divisions": batch * pairs,
        "floor_ms": statistics.median(times["floor"]),
        "kernel_ms": statistics.median(times["kernel"]),
        "forward_ms": statistics.median(times["forward"]),
        "forward_over_floor": statistics.median(ratios),
        # the middle half of the rounds' own ratios: how much the machine moved under them
        "forward_over_floor_quartiles": [ratios[len(ratios) // 4], ratios[(3 * len(ratios)) // 4]],
        "kernel_over_floor": statistics.median(k / d for k, d in zip(times["kernel"], times["floor"])),
    }


def markdown(report: dict) -> str:
    lines = [
        f"# The native forward against its division floor ({report['date']})",
        "",
        f"Hardware: {hardware_line(report['hardware'])}. Floor: B·n(n−1)/2 float32 divisions in one "
        f"vectorised loop per row's worth, built with the kernels' flags; forward: `soft_rank(x, gamma=γ)` "
        f"on CPU float32, default arguments; kernel: `native.forward` called directly. The three calls "
        f"interleaved, {report['repeats']} rounds; times are medians, ratios the median of the rounds' "
        "own ratios (forward / floor with its quartiles over the rounds).",
        "",
        "| n | B | γ | threads | divisions | floor ms | kernel ms | forward ms | kernel / floor | forward / floor |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        q = r["forward_over_floor_quartiles"]
        lines.append(
            f"| {r['n']:,} | {r['batch']:,} | {r['gamma']:g} | {r['threads']} | {r['divisions']:,} | "
            f"{r['floor_ms']:.3g} | {r['kernel_ms']:.3g} | {r['forward_ms']:.3g} | {r['kernel_over_floor']:.2f} | "
            f"{r['forward_over_floor']:.2f} ({q[0]:.2f}–{q[1]:.2f}) |"
        )
    lines += [
        "",
        "The kernels divide once per two pairs (1/p = q/(pq), 1/q = p/(pq)): a forward under its floor "
        "is that, not a measuring error.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--gamma", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=41, help="rounds of the three calls")
    parser.add_argument("--record", action="store_true", help="write into benchmarks/results/")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks"))
    parser.add_argument("--tag", default="", help="appended to the results' file names (e.g. the build target)")
    args = parser.parse_args(argv)
    if not native.available():
        raise SystemExit(f"the native kernels are not available here: {native.build_error()}")
    with tempfile.TemporaryDirectory() as directory:
        floor = build_floor(Path(directory))
        threads = sorted({1, torch.get_num_threads()})
        rows = [measure(floor, args.n, args.batch, args.gamma, t, args.repeats) for t in threads]
    for r in rows:
        print(
            f"threads {r['threads']}: floor {r['floor_ms']:.3f} ms  kernel {r['kernel_ms']:.3f} ms  "
            f"forward {r['forward_ms']:.3f} ms  forward/floor {r['forward_over_floor']:.2f}",
            flush=True,
        )
    report = {
        "date": datetime.date.today().isoformat(),
        "hardware": hardware("cpu"),
        "repeats": args.repeats,
        "rows": rows,
    }
    write_report(
        report,
        markdown(report),
        results_stem("division_floor", report["date"], args.tag),
        RESULTS if args.record else args.out,
    )
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
