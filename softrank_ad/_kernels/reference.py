"""Dense pairwise backend in plain torch, chunked over rows (and, for long rows, over entries).

Forward:  r_i = 1/2 + Σ_j σ(γ (v_i − v_j))
Backward: ∂L/∂v_k = γ Σ_j σ'(γ (v_k − v_j)) (g_k − g_j),  σ' = σ (1 − σ)

σ' is symmetric in (k, j), which is why the backward needs only the pairwise terms that the
forward computed, recomputed here chunk by chunk instead of saved: the autograd graph holds the
(rows, n) input, never the (rows, n, n) matrix. Each block is (rows, entries, n) within a fixed
element budget, so one row of 100,000 entries needs ≈ 64 MiB of transient memory, not 40 GB.
"""

from __future__ import annotations

import torch

from softrank_ad._kernels import always, no_error
from softrank_ad._kernels._chunking import pairwise_blocks

RUNS_ON = "any floating tensor"
# Runs everywhere, and is the automatic choice's last resort.
supports = available = worthwhile = always
build_error = no_error


def _pairwise_sigmoid(v: torch.Tensor, entries: slice, gamma: float) -> torch.Tensor:
    """σ(γ (v_i − v_j)) for i in ``entries`` and every j: (rows, len(entries), n)."""
    return torch.sigmoid(gamma * (v[:, entries].unsqueeze(-1) - v.unsqueeze(-2)))


def forward(x: torch.Tensor, gamma: float) -> torch.Tensor:
    rows, n = x.shape
    out = torch.empty_like(x)
    for rs, cs in pairwise_blocks(rows, n):
        out[rs, cs] = _pairwise_sigmoid(x[rs], cs, gamma).sum(-1) + 0.5
    return out


def backward(x: torch.Tensor, grad: torch.Tensor, gamma: float) -> torch.Tensor:
    rows, n = x.shape
    out = torch.empty_like(x)
    for rs, cs in pairwise_blocks(rows, n):
        s = _pairwise_sigmoid(x[rs], cs, gamma)
        ds = s * (1 - s)
        g = grad[rs]
        out[rs, cs] = gamma * (g[:, cs] * ds.sum(-1) - torch.matmul(ds, g.unsqueeze(-1)).squeeze(-1))
    return out
