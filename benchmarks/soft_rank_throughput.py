"""Soft-rank speed and memory: softrank_ad's backends against the field, in one run.

For each (device, dtype, n, B): forward and forward+backward time (median of repeats) and peak
memory of

- softrank_ad with every backend that runs there (auto, reference, window, compiled, and
  native on CPU, triton on CUDA), and ``auto`` inside a ``torch.compile`` graph (full runs);
- naive pairwise autograd in plain PyTorch (materialises B×n×n, kept by autograd);
- the authors' released per-element loop, one 1-D row at a time (small sizes only);
- torchsort (``soft_rank``, l2 regularisation) and diffsort (bitonic network) when installed.

Every implementation is timed as a training loop calls it: default arguments (softrank_ad checks
its input for NaN/inf), an untimed 256×256 matmul before each call (a model forward precedes the
loss, and leaves torch's OpenMP workers spinning), and fwd+bwd as ``out.square().sum().backward()``.
The implementations' calls on a cell are interleaved, one of each per round, so that a slow
spell of a shared machine hits all of them rather than the one being timed (medians over the
rounds). Ratios in the Markdown table are against the naive pairwise baseline and against
torchsort measured in the same run. Memory is the CUDA allocator's peak on GPU, and the peak of
sampled resident memory above the starting point on CPU (sampled every 0.5 ms; an approximation).

    python benchmarks/soft_rank_throughput.py --quick          # four sizes, float32 (run in the tests)
    python benchmarks/soft_rank_throughput.py --grid long      # long rows, B = 1 and 128
    python benchmarks/soft_rank_throughput.py --device cuda    # full grid on a GPU
    python benchmarks/soft_rank_throughput.py --record         # write into benchmarks/results/
    MARCH=x86-64-v3 CC=benchmarks/cc_march.sh SOFTRANK_AD_CACHE=/tmp/softrank-v3 \
        python benchmarks/soft_rank_throughput.py --quick --tag x86-64-v3   # the AVX2 build, this core

The peers are optional: ``pip install torchsort diffsort`` (torchsort builds a C++/CUDA extension
against the installed torch). A peer that is not installed is named at the start and its columns
show "–".
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import _partial as partial
import torch
from _timing import hardware, hardware_line, median_ms, results_stem

import softrank_ad
from softrank_ad import soft_rank
from softrank_ad.rank import _triton

FULL_N = (10, 100, 1000, 4096)
FULL_B = (1, 128, 4096, 65536)
#: (n, B) per grid; a (n, B, γ) entry fixes γ for that size, else --gamma (and --gamma-long at
#: n = 1000, B = 128, where a large γ makes the window narrow).
GRIDS = {
    "full": [(n, b) for n in FULL_N for b in FULL_B],
    # The three sizes a training loss sees most (and n = 100, B = 128): run in the tests.
    "quick": [(10, 4096), (100, 128), (100, 4096), (1000, 128)],
    # The GPU check sized for a short device budget (run_gpu.sh): the claims' sizes only.
    "gpu": [(10, 65536), (100, 128), (100, 65536), (1000, 128), (1000, 4096)],
    # Long rows: a Spearman loss over a whole batch of predictions is one row of n = batch size.
    "long": [(n, b, g) for g in (0.1, 1.0, 10.0) for n, b in ((4096, 1), (16384, 1), (65536, 1), (4096, 128))],
    # A few seconds anywhere, Triton's interpreter included (run_gpu.sh --dry-run).
    "tiny": [(10, 64), (100, 16)],
}
# The naive baseline materialises a few B×n×n tensors; skip it (and the reference's dense
# chunks are bounded anyway) above this many pairwise elements.
NAIVE_MAX_ELEMENTS = {"cpu": 2**28, "cuda": 2**31}
LOOP_MAX_ELEMENTS = 128 * 100  # the authors' loop runs one Python iteration per element
# Any implementation does B·n² sigmoid work; on CPU skip sizes that would take minutes each
# (n = 65,536, B = 1 of the long grid still runs: seconds per call).
CPU_MAX_PAIRS = 2**33


def naive_pairwise(x: torch.Tensor, gamma: float) -> torch.Tensor:
    return torch.sigmoid(gamma * (x.unsqueeze(-1) - x.unsqueeze(-2))).sum(-1) + 0.5


def authors_loop(x: torch.Tensor, gamma: float) -> torch.Tensor:
    """The released snippet's soft rank, per element of one row, applied row by row (it also
    rebuilds the ranks with torch.tensor(...), which cuts the gradient; stack keeps it here so
    that forward+backward can be timed)."""
    rows = []
    for row in x:
        rows.append(torch.stack([torch.sigmoid(gamma * (row - xi)).sum() for xi in row]))
    return torch.stack(rows)


#: Optional peers: module name → how to install it.
PEERS = {"torchsort": "pip install torchsort", "diffsort": "pip install diffsort"}


def missing_peers() -> list[str]:
    import importlib.util

    return [name for name in PEERS if importlib.util.find_spec(name) is None]


def implementations(device: str, quick: bool = False) -> dict[str, Callable]:
    impls: dict[str, Callable] = {}
    backends = ["auto", "reference", "window", "compiled"]
    if device == "cpu":
        backends.append("native")
    if (device == "cuda" or os.environ.get("TRITON_INTERPRET") == "1") and _triton().available():
        backends.append("triton")
    for b in backends:
        impls[f"softrank_ad[{b}]"] = lambda x, g, b=b: soft_rank(x, gamma=g, backend=b)
    if not quick:  # the same call inside a torch.compile graph, where the kernels run as one operator
        impls["softrank_ad[auto] in torch.compile"] = torch.compile(lambda x, g: soft_rank(x, gamma=g), dynamic=False)
    impls["naive pairwise"] = naive_pairwise
    impls["authors' loop"] = authors_loop
    try:
        import torchsort

        impls["torchsort"] = lambda x, g: torchsort.soft_rank(x, regularization_strength=1.0 / g)
    except ImportError:
        pass
    try:
        from diffsort import DiffSortNet

        nets: dict = {}

        def diffsort_rank(x, g):
            n = x.shape[-1]
            key = (n, x.device, x.dtype)
            if key not in nets:
                nets[key] = DiffSortNet("bitonic", n, steepness=g, device=x.device).to(x.dtype)
            _, perm = nets[key](x)
            return (perm * torch.arange(1, n + 1, device=x.device, dtype=x.dtype)).sum(-2)

        impls["diffsort"] = diffsort_rank
    except ImportError:
        pass
    return impls


class PeakMemory:
    """Peak bytes allocated during the block: CUDA's allocator, or sampled RSS on CPU."""

    def __init__(self, device: str) -> None:
        self.device, self.peak = device, 0

    def _rss(self) -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self):
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
        else:
            self._base, self._stop = self._rss(), False
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        while not self._stop:
            self.peak = max(self.peak, self._rss() - self._base)
            time.sleep(0.0005)

    def __exit__(self, *exc):
        if self.device == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self._base
        else:
            self._stop = True
            self._thread.join()
            self.peak = max(self.peak, self._rss() - self._base)


def skipped(name: str, n: int, batch: int, dtype, device: str, quick: bool) -> bool:
    """Cells an implementation is not run on (too slow, too much memory, or not supported)."""
    if name == "naive pairwise" and batch * n * n > NAIVE_MAX_ELEMENTS[device]:
        return True
    if device == "cpu" and batch * n * n > CPU_MAX_PAIRS and name not in ("torchsort", "diffsort"):
        return True
    if name == "authors' loop" and batch * n > LOOP_MAX_ELEMENTS:
        return True
    if name == "diffsort" and (n & (n - 1) or n * n * batch > 2**22):
        return True  # bitonic networks need powers of two and keep an n×n matrix per layer
    if name in ("torchsort", "diffsort") and dtype != torch.float32:
        return True
    # slow eager paths the auto dispatch never picks there: keep --quick short
    return quick and name in ("softrank_ad[window]", "softrank_ad[reference]") and n < 256 and batch > 128


def measure(impls: dict, n, batch, dtype, device, gamma, repeats, quick=False) -> dict[str, dict]:
    """Every implementation on one cell, their calls interleaved (one of each per round, forward
    rounds then forward + backward rounds), so that a slow spell of a shared machine hits them
    alike rather than whichever was being timed; median over the rounds."""
    x = torch.randn(batch, n, device=device, dtype=dtype)
    weight = torch.randn(256, 256, device=device)

    def model_forward():
        torch.mm(weight, weight)

    calls, results = {}, {}
    for name, impl in impls.items():
        if skipped(name, n, batch, dtype, device, quick):
            continue

        def forward(impl=impl):
            with torch.no_grad():
                impl(x, gamma)

        def forward_backward(impl=impl):
            leaf = x.detach().requires_grad_()
            impl(leaf, gamma).float().square().sum().backward()

        try:  # one untimed call of each (compiling, autotuning), and its peak memory
            forward()
            with PeakMemory(device) as mem:
                forward_backward()
        except (RuntimeError, MemoryError) as err:  # out of memory: record and move on
            results[name] = {"error": str(err).splitlines()[0][:120]}
            continue
        reps = 1 if name == "authors' loop" else repeats
        calls[name] = (forward, forward_backward, reps, mem.peak)
    times: dict[str, tuple[list, list]] = {name: ([], []) for name in calls}
    for kind in (0, 1):
        for round_ in range(repeats):
            for name, (forward, forward_backward, reps, _) in calls.items():
                if round_ < reps:
                    fn = forward_backward if kind else forward
                    times[name][kind].append(median_ms(fn, device, 1, warmup=False, before=model_forward))
    for name, (*_, peak) in calls.items():
        fwd, both = times[name]
        results[name] = {
            "fwd_ms": statistics.median(fwd),
            "fwd_bwd_ms": statistics.median(both),
            "peak_mb": peak / 2**20,
        }
    return {name: results[name] for name in impls if name in results}


def long_row_accuracy(n: int, batch: int, gamma: float) -> dict:
    """Max abs error of float32 ranks and gradients against the dense formula in float64 (at the
    float32 γ the kernel uses), for ``auto`` and for the exact float32 sweep on the same input,
    and the method the native kernel picked for the first row."""
    from softrank_ad._kernels import native

    generator = torch.Generator().manual_seed(n + batch)
    x, g = torch.randn(batch, n, generator=generator), torch.randn(batch, n, generator=generator)
    gamma32 = float(torch.tensor(gamma, dtype=torch.float32))
    exact_r = native.forward(x.double(), gamma32)
    exact_g = native.backward(x.double(), g.double(), gamma32)

    def errors(prefix: str) -> dict:
        leaf = x.clone().requires_grad_()
        ranks = soft_rank(leaf, gamma=gamma)
        ranks.backward(g)
        return {
            f"{prefix}rank_err": float((ranks.detach().double() - exact_r).abs().max()),
            f"{prefix}grad_err": float((leaf.grad.double() - exact_g).abs().max()),
        }

    result = {"method": native.method(x[0], gamma, backward=True, rows=batch), **errors("")}
    with native.farfield("never"):
        result.update(errors("exact32_"))
    return result


def run(args) -> dict:
    torch.manual_seed(0)
    missing = missing_peers()
    if missing:
        print("not installed, so not compared: " + "; ".join(f"{m} ({PEERS[m]})" for m in missing), flush=True)
    quick = args.grid != "full"
    dtypes = [torch.float32, torch.bfloat16] if args.grid == "full" else [torch.float32]
    impls = implementations(args.device, quick)
    if args.only:
        impls = {k: v for k, v in impls.items() if any(o in k for o in args.only)}
    rows = []
    header = {
        "date": datetime.date.today().isoformat(),
        "device": args.device,
        "card": torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads",
        "torch": torch.__version__,
        "hardware": hardware(args.device),
        "softrank_ad": softrank_ad.__version__,
        "command": args.command,
        "missing_peers": missing,
    }
    if getattr(args, "partial", None):
        partial.start(args.partial, header)
    for dtype in dtypes:
        for n, batch, *fixed in GRIDS[args.grid]:
            gamma = fixed[0] if fixed else args.gamma_long if (n, batch) == (1000, 128) else args.gamma
            for name, result in measure(impls, n, batch, dtype, args.device, gamma, args.repeats, quick).items():
                if (
                    args.grid == "long"
                    and name == "softrank_ad[auto]"
                    and args.device == "cpu"
                    and "error" not in result
                ):
                    result.update(long_row_accuracy(n, batch, gamma))
                row = {
                    "impl": name,
                    "n": n,
                    "B": batch,
                    "dtype": str(dtype).removeprefix("torch."),
                    "gamma": gamma,
                    **result,
                }
                rows.append(row)
                if getattr(args, "partial", None):
                    partial.add_row(args.partial, row)
                if "error" in result:
                    print(f"{name:24s} n={n:5d} B={batch:6d} {row['dtype']:9s} {result['error']}")
                else:
                    print(
                        f"{name:24s} n={n:5d} B={batch:6d} {row['dtype']:9s} fwd {result['fwd_ms']:9.3f} ms  "
                        f"fwd+bwd {result['fwd_bwd_ms']:9.3f} ms  peak {result['peak_mb']:9.1f} MB",
                        flush=True,
                    )
    return {**header, "rows": rows}


def markdown(report: dict) -> str:
    rows = [r for r in report["rows"] if "error" not in r]
    index = {(r["impl"], r["n"], r["B"], r["dtype"], r["gamma"]): r for r in rows}
    lines = [
        f"{report['date']} · {report['card']} · torch {report['torch']} · `{report['command']}`",
        "",
        "Hardware: " + (hardware_line(report["hardware"]) if "hardware" in report else "not recorded"),
        "",
        "| impl | n | B | dtype | γ | fwd ms | fwd+bwd ms | peak MB | × vs naive (fwd+bwd) | × vs torchsort (fwd+bwd) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        key = (r["n"], r["B"], r["dtype"], r["gamma"])
        ratios = []
        for base in ("naive pairwise", "torchsort"):
            b = index.get((base, *key))
            ratios.append(f"{b['fwd_bwd_ms'] / r['fwd_bwd_ms']:.2f}" if b else "–")
        lines.append(
            f"| {r['impl']} | {r['n']} | {r['B']} | {r['dtype']} | {r['gamma']:g} | {r['fwd_ms']:.3f} | "
            f"{r['fwd_bwd_ms']:.3f} | {r['peak_mb']:.1f} | {ratios[0]} | {ratios[1]} |"
        )
    lines.append("")
    lines.append("× > 1: faster than the baseline by that factor (same run, same machine).")
    accurate = [r for r in rows if "rank_err" in r]
    if accurate:
        lines += [
            "",
            (
                "Accuracy of `auto` (float32) against the dense formula in float64, max abs error, beside the "
                "exact float32 sweep on the same input:"
            ),
            "",
            "| n | B | γ | method | ranks | ranks, exact sweep | gradients | gradients, exact sweep |",
            "|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['n']} | {r['B']} | {r['gamma']:g} | {r['method']} | {r['rank_err']:.1e} | "
            f"{r['exact32_rank_err']:.1e} | {r['grad_err']:.1e} | {r['exact32_grad_err']:.1e} |"
            for r in accurate
        ]
    if report.get("missing_peers"):
        lines.append(
            "Not installed, so not compared (their columns show –): "
            + ", ".join(f"{m} (`{PEERS[m]}`)" for m in report["missing_peers"])
            + "."
        )
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["rows"] if "error" not in r and r["dtype"] == "float32"]
    batches = sorted({r["B"] for r in rows})
    impls = list(dict.fromkeys(r["impl"] for r in rows))
    colours = {impl: f"C{i}" for i, impl in enumerate(impls)}  # one colour per impl in every panel
    fig, axes = plt.subplots(
        1, len(batches), figsize=(4.5 * len(batches) + 2.5, 4.2), squeeze=False, layout="constrained"
    )
    gammas = sorted({r["gamma"] for r in rows})
    markers = dict(zip(gammas, "os^Dv"))
    for ax, batch in zip(axes[0], batches):
        for impl in impls:
            for gamma in gammas:  # a line joins only sizes measured at the same γ
                pts = sorted(
                    (r["n"], r["fwd_bwd_ms"])
                    for r in rows
                    if r["impl"] == impl and r["B"] == batch and r["gamma"] == gamma
                )
                if pts:
                    ax.plot(*zip(*pts), marker=markers[gamma], color=colours[impl])
        ax.set(xscale="log", yscale="log", xlabel="n", ylabel="fwd+bwd ms", title=f"B = {batch}")
    handles = [plt.Line2D([], [], color=colours[i], marker="o", label=i) for i in impls]
    handles += [plt.Line2D([], [], color="k", marker=markers[g], linestyle="", label=f"γ = {g:g}") for g in gammas]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8)
    fig.suptitle(f"soft rank, float32, {report['card']}")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    # torch.compile's C++ toolchain lookup logs "No CUDA runtime is found" on CPU-only machines
    # with a CUDA toolkit installed: harmless here, and confusing in a CPU benchmark's output.
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--grid",
        choices=list(GRIDS),
        default="full",
        help="sizes: full (float32 and bfloat16), or float32 only: quick (four training-loss "
        "sizes), gpu (run_gpu.sh), long (long rows, γ ∈ {0.1, 1, 10}), tiny",
    )
    parser.add_argument("--quick", dest="grid", action="store_const", const="quick", help="--grid quick")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--gamma", type=float, default=1.0)
    parser.add_argument("--gamma-long", type=float, default=100.0, help="γ at n=1000, B=128 (a narrow window)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", nargs="*", help="substrings of implementation names to keep")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks"), help="default runs/benchmarks")
    parser.add_argument("--record", action="store_true", help="write into benchmarks/results/ (the README's tables)")
    parser.add_argument("--tag", default="", help="appended to the results' file names (e.g. the build target)")
    args = parser.parse_args(argv)
    if args.record:
        args.out = Path(__file__).parent / "results"
    args.command = "python benchmarks/soft_rank_throughput.py " + " ".join(
        argv if argv is not None else __import__("sys").argv[1:]
    )
    args.out.mkdir(parents=True, exist_ok=True)
    grid = "" if args.grid == "full" else args.grid
    stem = args.out / results_stem("soft_rank", datetime.date.today().isoformat(), args.device, grid, args.tag)
    args.partial = stem.with_suffix(".partial.jsonl")  # each row as it finishes: a run cut short keeps them
    report = run(args)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2))
    args.partial.unlink(missing_ok=True)
    table = markdown(report)
    stem.with_suffix(".md").write_text(table + "\n")
    plot(report, stem.with_suffix(".png"))
    print(table)
    print(f"wrote {stem}.json/.md/.png")
    return report


if __name__ == "__main__":
    main()
