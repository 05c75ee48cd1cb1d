"""The Triton kernels' launch shape, measured: forward and backward alone (no autograd, no
checks) at each ``num_warps`` for the row lengths and batch sizes of the GPU grid, so a change to
the kernel's tiles or warps rests on a timing of every option in one run.

    python benchmarks/triton_tiles.py                      # on CUDA
    TRITON_INTERPRET=1 python benchmarks/triton_tiles.py --device cpu --sizes 10x4 --warps 1 4
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

import torch
from _timing import hardware, hardware_line, median_ms, write_report

from softrank_ad._kernels import triton_kernel as tk

SIZES = ["10x65536", "100x128", "100x65536", "1000x128", "1000x4096"]


def timed(kernel, inputs, gamma: float, warps: int, device: str, repeats: int) -> float:
    x = inputs[0]
    rows, n = x.shape
    out = torch.empty_like(x)
    grid, tiles = tk._shape(rows, n)  # the library's launch, but for the warps

    def call():
        kernel[grid](*inputs, out, n, gamma, **tiles, num_warps=warps)

    return median_ms(call, device, repeats)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    parser.add_argument("--sizes", nargs="*", default=SIZES, help="NxB: row length x rows")
    parser.add_argument("--warps", nargs="*", type=int, default=[1, 2, 4, 8])
    parser.add_argument("--gamma", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    rows = []
    torch.manual_seed(0)
    for size in args.sizes:
        n, b = (int(v) for v in size.split("x"))
        x = torch.randn(b, n, device=args.device)
        g = torch.randn(b, n, device=args.device)
        for warps in args.warps:
            fwd = timed(tk._forward_kernel, (x,), args.gamma, warps, args.device, args.repeats)
            bwd = timed(tk._backward_kernel, (x, g), args.gamma, warps, args.device, args.repeats)
            rows.append({"n": n, "B": b, "num_warps": warps, "fwd_ms": fwd, "bwd_ms": bwd})
            print(f"n={n:6d} B={b:6d} warps={warps}  fwd {fwd:8.3f} ms  bwd {bwd:8.3f} ms", flush=True)
    date = datetime.date.today().isoformat()
    report = {
        "date": date,
        "hardware": hardware(args.device),
        "command": "python benchmarks/triton_tiles.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "library_warps": tk._WARPS,
        "rows": rows,
    }
    lines = [
        f"{date} · `{report['command']}` · γ = {args.gamma:g}",
        "",
        "Hardware: " + hardware_line(report["hardware"]),
        "",
        "| n | B | num_warps | fwd ms | bwd ms |",
        "|---|---|---|---|---|",
        *(f"| {r['n']} | {r['B']} | {r['num_warps']} | {r['fwd_ms']:.3f} | {r['bwd_ms']:.3f} |" for r in rows),
        "",
        "Kernels alone (no autograd, no input checks), median of the repeats. Triton's default is 4 warps; "
        f"the library launches with {tk._WARPS}.",
    ]
    write_report(report, "\n".join(lines) + "\n", f"triton_tiles_{date}_{args.device}", args.out)
    return rows


if __name__ == "__main__":
    main()
