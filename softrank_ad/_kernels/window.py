"""Sorted-window backend: exact to rounding, O(n log n + n·w) per row.

σ(t) rounds to exactly 1 (or 0) once |t| > T, with T = 17 in float32 and T = 37 in float64.
After sorting a row, every v_j below v_i − T/γ contributes exactly 1 to r_i and every v_j above
v_i + T/γ contributes 0. In a sorted row those windows are contiguous bands around each entry:
entry i only needs the sigmoids of its neighbours i − L … i + R, where L and R are the widest
reach to the left and right over the batch, and the L-or-more entries further left count 1 each.
For large γ (or widely spread values) L + R is much smaller than n. The same band bounds the
backward, since σ'(t) is below rounding outside it.

The band sums are fused by torch.compile where it works (see ``compiled``); otherwise they run
eagerly, chunked over rows so the (rows, n, L + R + 1) temporaries stay bounded.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from softrank_ad._kernels import always, compiled, no_error
from softrank_ad._kernels._chunking import row_slices

_SATURATION = {torch.float32: 17.0, torch.float64: 37.0}


def _reach(vs: torch.Tensor, gamma: float) -> tuple[int, int]:
    """How far, in sorted positions, any entry's window reaches left (L) and right (R)."""
    half = _SATURATION[vs.dtype] / gamma
    lo = torch.searchsorted(vs, vs - half, side="left")
    hi = torch.searchsorted(vs, vs + half, side="right")
    i = torch.arange(vs.shape[-1], device=vs.device)
    return int((i - lo).max()), int((hi - 1 - i).max())


def window_width(x: torch.Tensor, gamma: float) -> int:
    """The band width L + R + 1 the window backend would use for ``x``."""
    left, right = _reach(x.sort(dim=-1).values, gamma)
    return left + right + 1


RUNS_ON = "any floating tensor"
# The sorted window pays for its sort and gathers only on long rows where it skips most pairs.
_MIN_N = 256
# Measured on 2 CPU cores (n = 1000, B = 128, γ = 100): window 46 ms vs dense 134 ms fwd+bwd
# at a band of 187 of 1000 entries.
_MAX_FRACTION = 1 / 3


supports = available = always
build_error = no_error


def worthwhile(x: torch.Tensor, gamma: float) -> bool:
    """On CPU, for long rows whose band (where σ has not saturated) is under a third of the row."""
    n = x.shape[-1]
    return x.device.type == "cpu" and n >= _MIN_N and window_width(x, gamma) <= n * _MAX_FRACTION


def _band(values: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """(rows, n, L + R + 1) view: [r, i, d] = values[r, i − L + d] (zero outside the row)."""
    return F.pad(values, (left, right)).unfold(-1, left + right + 1, 1)


def _inside(n: int, left: int, right: int, device) -> torch.Tensor:
    pos = torch.arange(n, device=device).unsqueeze(-1) + torch.arange(-left, right + 1, device=device)
    return (pos >= 0) & (pos < n)


def _forward_core(vs, left: int, right: int, gamma):
    n = vs.shape[-1]
    s = torch.sigmoid(gamma * (vs.unsqueeze(-1) - _band(vs, left, right)))
    s = torch.where(_inside(n, left, right, vs.device), s, 0.0)
    below = (torch.arange(n, device=vs.device) - left).clamp(min=0).to(vs.dtype)
    return s.sum(-1) + below + 0.5


def _backward_core(vs, g, left: int, right: int, gamma):
    n = vs.shape[-1]
    s = torch.sigmoid(gamma * (vs.unsqueeze(-1) - _band(vs, left, right)))
    ds = torch.where(_inside(n, left, right, vs.device), s * (1 - s), 0.0)
    return gamma * (ds * (g.unsqueeze(-1) - _band(g, left, right))).sum(-1)


def _sorted_apply(x: torch.Tensor, gamma: float, name: str, core, extra: torch.Tensor | None = None):
    """Sort rows, run ``core`` on the bands (fused, or eager by row chunks), unsort."""
    if x.numel() == 0:
        return torch.empty_like(x)
    vs, order = x.sort(dim=-1)
    left, right = _reach(vs, gamma)
    gamma_t = torch.tensor(gamma, dtype=x.dtype, device=x.device)
    args = [vs] + ([torch.gather(extra, 1, order)] if extra is not None else [])

    def eager():
        out = torch.empty_like(vs)
        for rs in row_slices(len(vs), vs.shape[-1] * (left + right + 1)):
            out[rs] = core(*(a[rs] for a in args), left, right, gamma_t)
        return out

    result = compiled.run(name, core, eager, *args, left, right, gamma_t) if not x.is_cuda else eager()
    return torch.empty_like(vs).scatter_(1, order, result)


def forward(x: torch.Tensor, gamma: float) -> torch.Tensor:
    return _sorted_apply(x, gamma, "window_forward", _forward_core)


def backward(x: torch.Tensor, grad: torch.Tensor, gamma: float) -> torch.Tensor:
    return _sorted_apply(x, gamma, "window_backward", _backward_core, extra=grad)
