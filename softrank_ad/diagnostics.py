"""Choosing γ from real logits: how closely soft ranks follow hard ones, and how many pairs
still pass gradient, per candidate γ."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from softrank_ad import _validate
from softrank_ad.spearman import soft_spearman

#: A pair (i, j) is "live" while σ'(γ(v_i − v_j)) is above 1% of σ'(0): 1 / cosh²(t/2) > 0.01,
#: i.e. |γ(v_i − v_j)| < 2 acosh(10) ≈ 5.99.
LIVE_WIDTH = 2 * math.acosh(10.0)
DEFAULT_GAMMAS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


class GammaReport(NamedTuple):
    """What :func:`suggest_gamma` measured, per candidate γ, and the γ it picked."""

    gamma: float
    gammas: tuple[float, ...]
    live_pairs: tuple[float, ...]
    rho_gap: tuple[float, ...]

    def table(self) -> str:
        """The measurements as a Markdown table, the pick in bold."""
        lines = ["| γ | pairs with live gradient | mean abs(soft ρ − hard ρ) |", "|---|---|---|"]
        for g, live, gap in zip(self.gammas, self.live_pairs, self.rho_gap):
            mark = "**" if g == self.gamma else ""
            lines.append(f"| {mark}{g:g}{mark} | {live:.2f} | {gap:.3f} |")
        return "\n".join(lines)


def hard_spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman's ρ per row of two (B, C) tensors, from ordinal ranks (a double argsort: real
    logits have no ties), in float64; the exact ρ that :func:`~softrank_ad.soft_spearman`
    relaxes.

    Example:
        >>> hard_spearman(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[3.0, 2.0, 1.0]]))
        tensor([-1.], dtype=torch.float64)
    """
    _validate.check_tensor(a, "a")
    _validate.check_tensor(b, "b")
    _validate.check_same_shape(a, b, "a", "b")
    if a.dim() != 2 or a.shape[1] < 2:
        raise ValueError(f"a must be (B, C) with C >= 2, got shape {tuple(a.shape)}")
    ra, rb = (t.detach().argsort(1).argsort(1).double() for t in (a, b))
    n = a.shape[1]
    return 1 - 6 * (ra - rb).square().sum(1) / (n * (n * n - 1))


def _live_share(rows: torch.Tensor, gamma: float) -> float:
    # Pairs closer than LIVE_WIDTH / γ, counted on sorted rows: O(n log n) memory per row.
    v = rows.sort(1).values
    reach = torch.searchsorted(v, v + LIVE_WIDTH / gamma, right=False)
    close = (reach - torch.arange(v.shape[1], device=v.device) - 1).clamp_min(0).sum()
    n = v.shape[1]
    return float(close) / (v.shape[0] * n * (n - 1) / 2)


def suggest_gamma(
    logits: torch.Tensor,
    other: torch.Tensor | None = None,
    *,
    gammas: tuple[float, ...] = DEFAULT_GAMMAS,
    min_live: float = 0.9,
) -> GammaReport:
    r"""Measure, per candidate γ, what soft ranks do to a batch of real logits, and pick a γ.

    For each γ:

    - **live pairs**: the share of class pairs (i, j) of ``logits`` whose σ'(γ(z_i − z_j)) is
      above 1% of its peak, i.e. whose ranks still pass gradient to each other. Falls as γ grows.
    - **ρ gap**: mean over rows of abs(soft ρ − hard ρ) between ``logits`` and ``other`` (each row
      with the next row of ``logits`` when ``other`` is None): how far the soft Spearman is from
      the one it stands for. Falls as γ grows.

    **Rule**: the largest γ whose live share is at least ``min_live`` (default 0.9: nine pairs in
    ten still learn), i.e. the sharpest ranks that keep most of the gradient; the smallest
    candidate if none qualifies. Pass the *teacher's* logits on real inputs: a trained student's
    logits approach its scale, while a fresh student's are far smaller (every pair live).

    Args:
        logits: (B, C) logits, C ≥ 2 (B ≥ 2 without ``other``).
        other: optional (B, C) logits to correlate with (e.g. a student's on the same inputs).
        gammas: the candidates, each > 0.
        min_live: the live share the pick must keep, in [0, 1].

    Returns:
        :class:`GammaReport` with the pick and the two measures per γ (``.table()`` formats them).

    Example:
        >>> report = suggest_gamma(torch.randn(256, 10) * 2)
        >>> report.gamma in report.gammas
        True
    """
    _validate.check_tensor(logits, "logits")
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise ValueError(f"logits must be (B, C) with C >= 2, got shape {tuple(logits.shape)}")
    if other is None:
        if logits.shape[0] < 2:
            raise ValueError("without other=, rows are paired with each other: logits needs B >= 2")
        other = logits.roll(1, 0)
    else:
        _validate.check_tensor(other, "other")
        _validate.check_same_shape(logits, other, "logits", "other")
    _validate.check_all_finite((logits, "logits"), (other, "other"))
    if not isinstance(gammas, (tuple, list)) or not gammas:
        raise ValueError(f"gammas must be a non-empty tuple of positive numbers, got {gammas!r}")
    gammas = tuple(sorted(_validate.check_gamma(g) for g in gammas))
    if not isinstance(min_live, (int, float)) or isinstance(min_live, bool) or not 0 <= min_live <= 1:
        raise ValueError(f"min_live must lie in [0, 1], got {min_live!r}")
    a, b = logits.detach().double(), other.detach().double()
    hard = hard_spearman(a, b)
    live = tuple(_live_share(a, g) for g in gammas)
    gap = tuple(float((soft_spearman(a, b, gamma=g) - hard).abs().mean()) for g in gammas)
    qualified = [g for g, share in zip(gammas, live) if share >= min_live]
    return GammaReport(max(qualified) if qualified else gammas[0], gammas, live, gap)
