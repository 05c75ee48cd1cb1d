"""Sorted-window backend: exact to rounding, O(n log n + n·w) per row.

σ(t) rounds to exactly 1 (or 0) once |t| > T, with T = 17 in float32 and T = 37 in float64.
After sorting a row, every v_j below v_i − T/γ contributes exactly 1 to r_i and every v_j above
v_i + T/γ contributes 0, so only the w entries inside that window need a sigmoid. For large γ
(or widely spread values) w is much smaller than n. The same window bounds the backward, since
σ'(t) is below rounding outside it.

The windowed sums are fused by torch.compile where it works (see ``compiled``); otherwise they
run eagerly, chunked over rows so the (rows, n, w) temporaries stay bounded.
"""

from __future__ import annotations

import torch

from softrank_ad._kernels import compiled
from softrank_ad._kernels._chunking import row_slices

_SATURATION = {torch.float32: 17.0, torch.float64: 37.0}


def _bounds(vs: torch.Tensor, gamma: float) -> tuple[torch.Tensor, torch.Tensor]:
    half = _SATURATION[vs.dtype] / gamma
    lo = torch.searchsorted(vs, vs - half, side="left")
    hi = torch.searchsorted(vs, vs + half, side="right")
    return lo, hi


def window_width(x: torch.Tensor, gamma: float) -> int:
    """Largest number of entries of any row within ±T/γ of one of its entries."""
    lo, hi = _bounds(x.sort(dim=-1).values, gamma)
    return int((hi - lo).max())


def _window(vs, lo, hi, width: int):
    """Each entry's window as positions into its sorted row, and which of them are real."""
    pos = lo.unsqueeze(-1) + torch.arange(width, device=vs.device)
    valid = pos < hi.unsqueeze(-1)
    return pos.clamp(max=vs.shape[-1] - 1), valid


def _neighbours(values, pos):
    # expand is a view: the gather reads each row n times without copying it.
    return torch.gather(values.unsqueeze(1).expand(-1, values.shape[-1], -1), 2, pos)


def _forward_core(vs, lo, hi, width: int, gamma):
    pos, valid = _window(vs, lo, hi, width)
    s = torch.where(valid, torch.sigmoid(gamma * (vs.unsqueeze(-1) - _neighbours(vs, pos))), 0.0)
    return s.sum(-1) + lo.to(vs.dtype) + 0.5


def _backward_core(vs, g, lo, hi, width: int, gamma):
    pos, valid = _window(vs, lo, hi, width)
    s = torch.sigmoid(gamma * (vs.unsqueeze(-1) - _neighbours(vs, pos)))
    ds = torch.where(valid, s * (1 - s), 0.0)
    return gamma * (ds * (g.unsqueeze(-1) - _neighbours(g, pos))).sum(-1)


def _sorted_apply(x: torch.Tensor, gamma: float, name: str, core, extra: torch.Tensor | None = None):
    """Sort rows, run ``core`` on the windows (fused, or eager by row chunks), unsort."""
    vs, order = x.sort(dim=-1)
    lo, hi = _bounds(vs, gamma)
    width = int((hi - lo).max())
    gamma_t = torch.tensor(gamma, dtype=x.dtype, device=x.device)
    args = [vs] + ([torch.gather(extra, 1, order)] if extra is not None else [])

    def eager():
        out = torch.empty_like(vs)
        for rs in row_slices(len(vs), vs.shape[-1] * width):
            out[rs] = core(*(a[rs] for a in args), lo[rs], hi[rs], width, gamma_t)
        return out

    result = compiled.run(name, core, eager, *args, lo, hi, width, gamma_t) if not x.is_cuda else eager()
    return torch.empty_like(vs).scatter_(1, order, result)


def forward(x: torch.Tensor, gamma: float) -> torch.Tensor:
    return _sorted_apply(x, gamma, "window_forward", _forward_core)


def backward(x: torch.Tensor, grad: torch.Tensor, gamma: float) -> torch.Tensor:
    return _sorted_apply(x, gamma, "window_backward", _backward_core, extra=grad)
