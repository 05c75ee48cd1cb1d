"""Sorted-window backend: exact to rounding, O(n log n + n·w) per row.

σ(t) rounds to exactly 1 (or 0) once |t| > T, with T = 17 in float32 and T = 37 in float64.
After sorting a row, every v_j below v_i − T/γ contributes exactly 1 to r_i and every v_j above
v_i + T/γ contributes 0, so only the w entries inside that window need a sigmoid. For large γ
(or widely spread values) w is much smaller than n. The same window bounds the backward, since
σ'(t) is below rounding outside it.
"""

from __future__ import annotations

import torch

from softrank_ad._kernels._chunking import row_slices

_SATURATION = {torch.float32: 17.0, torch.float64: 37.0}


def _half_width(x: torch.Tensor, gamma: float) -> float:
    return _SATURATION[x.dtype] / gamma


def window_width(x: torch.Tensor, gamma: float) -> int:
    """Largest number of entries of any row within ±T/γ of one entry (sorted search)."""
    vs = x.sort(dim=-1).values
    lo, hi = _bounds(vs, _half_width(x, gamma))
    return int((hi - lo).max())


def _bounds(vs: torch.Tensor, half: float) -> tuple[torch.Tensor, torch.Tensor]:
    lo = torch.searchsorted(vs, vs - half, side="left")
    hi = torch.searchsorted(vs, vs + half, side="right")
    return lo, hi


def _windows(vs: torch.Tensor, gamma: float):
    """Indices of each entry's window, a validity mask and the count of entries below it."""
    n = vs.shape[-1]
    lo, hi = _bounds(vs, _half_width(vs, gamma))
    width = int((hi - lo).max())
    offsets = torch.arange(width, device=vs.device)
    pos = lo.unsqueeze(-1) + offsets
    valid = pos < hi.unsqueeze(-1)
    return pos.clamp_max_(n - 1), valid, lo


def _window_sigmoid(vs: torch.Tensor, pos: torch.Tensor, valid: torch.Tensor, gamma: float):
    rows, n, width = pos.shape
    neighbours = torch.gather(vs, 1, pos.reshape(rows, n * width)).reshape(rows, n, width)
    s = torch.sigmoid(gamma * (vs.unsqueeze(-1) - neighbours))
    return s.masked_fill_(~valid, 0.0)


def forward(x: torch.Tensor, gamma: float) -> torch.Tensor:
    out = torch.empty_like(x)
    rows, n = x.shape
    for rs in row_slices(rows, n * n):
        vs, order = x[rs].sort(dim=-1)
        pos, valid, below = _windows(vs, gamma)
        s = _window_sigmoid(vs, pos, valid, gamma)
        ranks_sorted = s.sum(-1) + below.to(x.dtype) + 0.5
        out[rs] = torch.empty_like(vs).scatter_(1, order, ranks_sorted)
    return out


def backward(x: torch.Tensor, grad: torch.Tensor, gamma: float) -> torch.Tensor:
    out = torch.empty_like(x)
    rows, n = x.shape
    for rs in row_slices(rows, n * n):
        vs, order = x[rs].sort(dim=-1)
        pos, valid, _ = _windows(vs, gamma)
        s = _window_sigmoid(vs, pos, valid, gamma)
        ds = s * (1 - s)
        width = pos.shape[-1]
        g = torch.gather(grad[rs], 1, order)
        g_neighbours = torch.gather(g, 1, pos.reshape(len(g), n * width)).reshape(pos.shape)
        grad_sorted = gamma * (g * ds.sum(-1) - (ds * g_neighbours).sum(-1))
        out[rs] = torch.empty_like(vs).scatter_(1, order, grad_sorted)
    return out
