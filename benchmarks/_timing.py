"""Wall-clock timing shared by the benchmarks: median of repeats, CUDA-synchronised; the hardware
a result came from; where results are written."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

#: Where ``--record`` writes (the README's and the docs' tables come from here).
RESULTS = Path(__file__).resolve().parent / "results"


def median_ms(
    fn: Callable[[], object], device: str, repeats: int, warmup: bool = True, before: Callable[[], object] | None = None
) -> float:
    """Median milliseconds of ``repeats`` calls, after one untimed call (autotuning, compiling).
    ``before`` runs untimed ahead of each call (e.g. the model forward that precedes a loss)."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        if before is not None:
            before()
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


#: The instruction-set extensions that decide how fast the CPU kernels run.
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512vl", "asimd", "sve")


def hardware(device: str) -> dict:
    """What a timing was measured on: CPU model, ISA flags, cores and threads, the C compiler the
    native kernels are built with and the instruction sets they were built for (the CPU's own
    under ``-march=native``; see ``cc_march.sh``), torch's version, and the GPU when ``device``
    is CUDA."""
    import os
    import platform
    import subprocess

    from softrank_ad._kernels import native

    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in open("/proc/cpuinfo").read().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model") and model in ("", platform.machine(), platform.processor()):
                model = value.strip()
            if key.strip() in ("flags", "Features"):
                flags = set(value.split())
    except OSError:  # not Linux: the model from platform, no flags
        pass
    try:
        compiler = subprocess.run(
            [*native._compiler(), "--version"], capture_output=True, text=True, timeout=10
        ).stdout.splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        compiler = "none found"
    info = {
        "cpu": model,
        "isa": [f for f in ISA_FLAGS if f in flags],
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "compiler": compiler,
        "kernels_built_for": native.build_target(),
        "torch": torch.__version__,
    }
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def hardware_line(info: dict) -> str:
    """``hardware()`` in one line, for the Markdown reports."""
    isa = ", ".join(info.get("isa", [])) or "no ISA flags read"
    gpu = f"{info['gpu']} · " if "gpu" in info else ""
    built = info.get("kernels_built_for")
    kernels = f" · kernels built for {built}" if built else ""
    return (
        f"{gpu}{info['cpu']} ({isa}) · {info['cores']} cores, {info['threads']} threads · "
        f"{info['compiler']}{kernels} · torch {info['torch']}"
    )


def results_stem(*parts: str) -> str:
    """A results file's name without suffix: the non-empty ``parts`` joined by ``_`` (an empty
    part, such as no ``--tag``, leaves no trace in the name)."""
    return "_".join(part for part in parts if part)


def write_report(report: dict, text: str, stem: str, out: Path) -> None:
    """``report`` as ``stem``.json and its Markdown ``text`` as ``stem``.md in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2))
    (out / f"{stem}.md").write_text(text)
