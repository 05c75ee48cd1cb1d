"""Differentiable soft rank (SmaraAD, Alg. 1) and its backend dispatch."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from softrank_ad import _validate
from softrank_ad._kernels import compiled, native, reference, window

Backend = Literal["auto", "reference", "window", "compiled", "native", "triton"]
Scale = Literal["none", "std"]

BACKENDS = ("auto", "reference", "window", "compiled", "native", "triton")
SCALES = ("none", "std")

#: Default sharpness. Chosen on logits of CIFAR-10 classifiers (README, "Choosing γ"): at γ = 1
#: soft ρ orders rows as hard ρ does while nearly every class pair still passes gradient.
DEFAULT_GAMMA = 1.0

# Where the native kernels cannot be built (no C compiler), the CPU falls back to these rules.
# Below this many elements the compiled kernel's call overhead outweighs its speed.
_COMPILED_MIN_NUMEL = 4096
# The sorted window pays for its sort and gathers only on long rows where it skips most pairs.
_WINDOW_MIN_N = 256
# Measured on 2 CPU cores (n = 1000, B = 128, γ = 100): window 46 ms vs dense 134 ms fwd+bwd
# at a band of 187 of 1000 entries.
_WINDOW_MAX_FRACTION = 1 / 3


def _triton():
    """The Triton kernel module, or None where triton is not installed."""
    try:
        from softrank_ad._kernels import triton_kernel
    except ImportError:
        return None
    return triton_kernel


def _kernel(name: str):
    kernels = {"reference": reference, "window": window, "compiled": compiled, "native": native}
    return kernels.get(name) or _triton()


def _pick_backend(x: torch.Tensor, gamma: float, backend: str) -> str:
    if backend == "triton":
        kernel = _triton()
        if kernel is None:
            raise ValueError("backend='triton' needs the triton package (pip install triton)")
        if not kernel.supports(x):
            raise ValueError(
                f"backend='triton' runs on CUDA float32 tensors, got a {x.dtype} tensor on {x.device}"
            )
        return backend
    if backend == "native":
        if not native.supports(x):
            raise ValueError(
                f"backend='native' runs on CPU float32/float64 tensors, got a {x.dtype} tensor on {x.device}"
            )
        if not native.available():
            raise ValueError(f"backend='native' could not be built here: {native.build_error()}")
        return backend
    if backend != "auto":
        return backend
    if _validate.is_traced(x) or x.numel() == 0:
        return "reference"  # inductor fuses the dense formula itself
    if x.is_cuda:
        kernel = _triton()
        return "triton" if kernel is not None and kernel.supports(x) else "reference"
    if native.supports(x) and native.available():
        return "native"
    n = x.shape[-1]
    if n >= _WINDOW_MIN_N and window.window_width(x, gamma) <= n * _WINDOW_MAX_FRACTION:
        return "window"
    if x.numel() >= _COMPILED_MIN_NUMEL and compiled.available():
        return "compiled"
    return "reference"


class _SoftRankFunction(torch.autograd.Function):
    """Soft rank of each row of a 2-D tensor; backward recomputes the pairwise terms."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, gamma: float, backend: str) -> torch.Tensor:
        ctx.gamma = gamma
        ctx.backend = backend
        ctx.save_for_backward(x)
        return _kernel(backend).forward(x, gamma)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        grad_x = _kernel(ctx.backend).backward(x, grad.contiguous(), ctx.gamma)
        return grad_x, None, None


def soft_rank(
    x: torch.Tensor,
    *,
    gamma: float = DEFAULT_GAMMA,
    dim: int = -1,
    descending: bool = False,
    scale: Scale = "none",
    backend: Backend = "auto",
    check_finite: bool = True,
) -> torch.Tensor:
    r"""Differentiable soft rank along ``dim``.

    .. math::
        r_i(v; \gamma) = \tfrac12 + \sum_j \sigma\big(\gamma (v_i - v_j)\big)

    summed over all j including j = i. Ranks are ascending (the largest entry gets the largest
    rank, close to n) and sum to n(n+1)/2 exactly for every γ. As γ → ∞ they tend to
    ``scipy.stats.rankdata(v, method="average")``. ``descending=True`` returns n + 1 − r, the
    paper's Alg. 1 convention up to its 1/2 offset.

    Args:
        x: floating tensor of any shape (..., n, ...); float16/bfloat16 are computed in float32
            and returned in the input dtype.
        gamma: sharpness γ > 0 (the paper's β). Larger is closer to hard ranks, with weaker
            gradients.
        dim: the axis to rank along.
        descending: rank the largest entry first.
        scale: ``"none"`` uses γ as given; ``"std"`` divides each row by its standard deviation
            first, so γ is relative to the row's spread (r(c·v; γ) = r(v; c·γ)), which makes one
            γ fit logits of any magnitude. The gradient flows through the spread too.
        backend: ``"auto"`` picks per call: the fused Triton kernel for CUDA float32, the
            ``"native"`` C kernels on CPU (built on first use; they sort and window rows where
            σ saturates), and where those cannot run the torch backends: ``"window"`` (sorted
            window, exact to rounding) when γ times the spread is large, ``"compiled"``
            (torch.compile-fused dense), or ``"reference"`` (dense torch, chunked over rows).
            Any can be forced.
        check_finite: raise on NaN/inf input. This needs a device sync; pass False to skip it.

    Returns:
        Tensor of the shape and dtype of ``x``.

    Example:
        >>> soft_rank(torch.tensor([0.1, 3.0, -2.0]), gamma=10.0)
        tensor([2., 3., 1.])

    Reference: Yin et al., "Adversarial Distillation Based on Slack Matching and Attribution
    Region Alignment", CVPR 2024, supplementary Alg. 1.
    """
    _validate.check_tensor(x, "x")
    dim = _validate.check_dim(x, dim, "x")
    if x.shape[dim] < 1:
        raise ValueError(f"x has size 0 along dim={dim} (shape {tuple(x.shape)}); nothing to rank")
    compute_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    gamma = _validate.check_gamma(gamma, compute_dtype)
    _validate.check_choice(scale, "scale", SCALES)
    _validate.check_choice(backend, "backend", BACKENDS)
    if check_finite:
        _validate.check_finite(x, "x")

    v = x.movedim(dim, -1).to(compute_dtype)
    if descending:
        v = -v
    if scale == "std":
        v = _divide_by_spread(v)
    shape = v.shape
    v2d = v.reshape(-1, shape[-1]).contiguous()
    chosen = _pick_backend(v2d.detach(), gamma, backend)
    ranks = _SoftRankFunction.apply(v2d, gamma, chosen)
    return ranks.reshape(shape).movedim(-1, dim).to(x.dtype)


def _divide_by_spread(v: torch.Tensor) -> torch.Tensor:
    # var then sqrt, clamped: std's own backward is 0/0 on a constant row.
    tiny = torch.finfo(v.dtype).tiny
    spread = v.var(dim=-1, unbiased=False, keepdim=True).clamp_min(tiny).sqrt()
    return v / spread


class SoftRank(nn.Module):
    """Module form of :func:`soft_rank`; stores its arguments only.

    Example:
        >>> SoftRank(gamma=10.0)(torch.randn(4, 10)).shape
        torch.Size([4, 10])
    """

    def __init__(
        self,
        gamma: float = DEFAULT_GAMMA,
        dim: int = -1,
        descending: bool = False,
        *,
        scale: Scale = "none",
        backend: Backend = "auto",
        check_finite: bool = True,
    ) -> None:
        super().__init__()
        self.gamma = _validate.check_gamma(gamma)
        _validate.check_choice(scale, "scale", SCALES)
        _validate.check_choice(backend, "backend", BACKENDS)
        self.dim = dim
        self.descending = descending
        self.scale = scale
        self.backend = backend
        self.check_finite = check_finite

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return soft_rank(
            x,
            gamma=self.gamma,
            dim=self.dim,
            descending=self.descending,
            scale=self.scale,
            backend=self.backend,
            check_finite=self.check_finite,
        )

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, dim={self.dim}, descending={self.descending}, scale={self.scale!r}"
