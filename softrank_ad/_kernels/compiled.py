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

import subprocess
import warnings
from collections.abc import Callable

import torch

from softrank_ad._kernels import always, reference

RUNS_ON = "any floating tensor"
# Below this many elements the compiled kernel's call overhead outweighs its speed.
_MIN_NUMEL = 4096


def _cannot_compile() -> tuple[type[BaseException], ...]:
    """What a machine that cannot compile raises: no or a broken C++ compiler, a platform inductor
    does not support. Anything else is a bug and propagates instead of turning into a silent
    10x slowdown for the rest of the process. (Imported late: torch._dynamo is slow to import.)"""
    from torch._dynamo.exc import BackendCompilerFailed
    from torch._inductor.exc import InductorError

    return (BackendCompilerFailed, InductorError, OSError, subprocess.CalledProcessError)


_compiled: dict[str, Callable] = {}
_failures: list[BaseException] = []


supports = always


def available() -> bool:
    """False once a compilation has failed in this process."""
    return not _failures


def build_error() -> str | None:
    return f"{type(_failures[0]).__name__}: {_failures[0]}".splitlines()[0] if _failures else None


def worthwhile(x: torch.Tensor, gamma: float) -> bool:
    """On CPU (without the native kernels) from a few thousand elements on."""
    return x.device.type == "cpu" and x.numel() >= _MIN_NUMEL


def run(name: str, fn: Callable, fallback: Callable[[], torch.Tensor], *args) -> torch.Tensor:
    """``torch.compile(fn)(*args)``, compiled once per ``name``; ``fallback()`` for good (with one
    warning) if this machine cannot compile."""
    if not available():
        return fallback()
    if name not in _compiled:
        _compiled[name] = torch.compile(fn, dynamic=True)
    try:
        return _compiled[name](*args)
    except Exception as err:
        if not isinstance(err, _cannot_compile()):
            raise
        _failures.append(err)
        warnings.warn(
            f"softrank_ad: torch.compile cannot build the fused CPU kernels here ({build_error()}); "
            "the eager torch path is used instead",
            RuntimeWarning,
            stacklevel=3,
        )
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
