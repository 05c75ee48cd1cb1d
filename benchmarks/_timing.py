"""Wall-clock timing shared by the benchmarks: median of repeats, CUDA-synchronised."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


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
