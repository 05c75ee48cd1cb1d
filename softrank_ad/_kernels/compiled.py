"""Fused CPU backend: the dense formulas of ``reference``, compiled by torch.compile (inductor).

Inductor turns each pairwise expression and its row reduction into one vectorised C++ loop, so
the (rows, n, n) tensor is never materialised and no chunking is needed: about 10× faster than
the eager dense path at n ≥ 100 on CPU (``benchmarks/soft_rank_throughput.py``). The sorted
window backend fuses its windowed sums through :func:`run` too.

γ travels as a 0-d tensor so that a new γ does not trigger a recompilation; shapes are dynamic.
The first call of each dtype compiles (a few seconds) and needs a C++ compiler; where compiling
fails, :func:`available` turns False and every caller falls back to its eager path for good.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from softrank_ad._kernels import reference

_compiled: dict[str, Callable] = {}
_failures: list[BaseException] = []


def available() -> bool:
    """False once a compilation has failed in this process."""
    return not _failures


def run(name: str, fn: Callable, fallback: Callable[[], torch.Tensor], *args) -> torch.Tensor:
    """``torch.compile(fn)(*args)``, compiled once per ``name``; ``fallback()`` if that fails."""
    if not available():
        return fallback()
    if name not in _compiled:
        _compiled[name] = torch.compile(fn, dynamic=True)
    try:
        return _compiled[name](*args)
    except Exception as err:  # no compiler, unsupported platform: use the eager path for good
        _failures.append(err)
        return fallback()


def _forward(v: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(gamma * (v.unsqueeze(-1) - v.unsqueeze(-2))).sum(-1) + 0.5


def _backward(v: torch.Tensor, g: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(gamma * (v.unsqueeze(-1) - v.unsqueeze(-2)))
    return gamma * (s * (1 - s) * (g.unsqueeze(-1) - g.unsqueeze(-2))).sum(-1)


def forward(x: torch.Tensor, gamma: float) -> torch.Tensor:
    gamma_t = torch.tensor(gamma, dtype=x.dtype, device=x.device)
    return run("forward", _forward, lambda: reference.forward(x, gamma), x, gamma_t)


def backward(x: torch.Tensor, grad: torch.Tensor, gamma: float) -> torch.Tensor:
    gamma_t = torch.tensor(gamma, dtype=x.dtype, device=x.device)
    return run("backward", _backward, lambda: reference.backward(x, grad, gamma), x, grad, gamma_t)
