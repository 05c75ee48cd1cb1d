"""Dense pairwise backend in plain torch, chunked over rows.

Forward:  r_i = 1/2 + Σ_j σ(γ (v_i − v_j))
Backward: ∂L/∂v_k = γ Σ_j σ'(γ (v_k − v_j)) (g_k − g_j),  σ' = σ (1 − σ)

σ' is symmetric in (k, j), which is why the backward needs only the pairwise terms that the
forward computed, recomputed here chunk by chunk instead of saved: the autograd graph holds the
(rows, n) input, never the (rows, n, n) matrix.
"""

from __future__ import annotations

import torch

from softrank_ad._kernels._chunking import row_slices


def _pairwise_sigmoid(v: torch.Tensor, gamma: float) -> torch.Tensor:
    return torch.sigmoid(gamma * (v.unsqueeze(-1) - v.unsqueeze(-2)))


def forward(x: torch.Tensor, gamma: float) -> torch.Tensor:
    rows, n = x.shape
    out = torch.empty_like(x)
    for rs in row_slices(rows, n * n):
        out[rs] = _pairwise_sigmoid(x[rs], gamma).sum(-1) + 0.5
    return out


def backward(x: torch.Tensor, grad: torch.Tensor, gamma: float) -> torch.Tensor:
    rows, n = x.shape
    out = torch.empty_like(x)
    for rs in row_slices(rows, n * n):
        s = _pairwise_sigmoid(x[rs], gamma)
        ds = s * (1 - s)
        g = grad[rs]
        out[rs] = gamma * (g * ds.sum(-1) - torch.matmul(ds, g.unsqueeze(-1)).squeeze(-1))
    return out
