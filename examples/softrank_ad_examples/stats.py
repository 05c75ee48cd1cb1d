"""Paired comparisons over seeds, as the toy demo and the method study report them."""

from __future__ import annotations

import math
import statistics


def paired_interval(diffs: list[float], level: float = 0.95) -> tuple[float, float, float] | None:
    """Mean of paired differences and its two-sided t-interval; None with fewer than two pairs."""
    if len(diffs) < 2:
        return None
    from scipy import stats

    mean, sd = statistics.mean(diffs), statistics.stdev(diffs)
    half = stats.t.ppf(0.5 + level / 2, len(diffs) - 1) * sd / math.sqrt(len(diffs))
    return mean, mean - half, mean + half


def format_difference(diffs: list[float]) -> str:
    """``+2.0 [-0.5, +4.5]`` in percentage points (``*`` where the interval excludes 0), or the
    single difference for one pair."""
    if not diffs:
        return "–"
    interval = paired_interval(diffs)
    if interval is None:
        return f"{100 * diffs[0]:+.1f} (1 pair)"
    mean, lo, hi = interval
    star = " *" if lo > 0 or hi < 0 else ""
    return f"{100 * mean:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]{star}"
