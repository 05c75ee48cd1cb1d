"""Differentiable soft rank (SmaraAD, Alg. 1) and its backend dispatch."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from softrank_ad import _validate
from softrank_ad._kernels import reference, window

Backend = Literal["auto", "reference", "window"]
Scale = Literal["none", "std"]

BACKENDS = ("auto", "reference", "window")
SCALES = ("none", "std")

#: Default sharpness. Chosen on logits of a CIFAR-10 classifier (see README, "Choosing γ"):
#: at γ = 1 soft and hard Spearman agree closely while most class pairs still carry gradient.
DEFAULT_GAMMA = 1.0

# Below this row length the dense backend is as fast as any other: skip the sort.
_WINDOW_MIN_N = 64

_KERNELS = {"reference": reference, "window": window}


def _pick_backend(x: torch.Tensor, gamma: float, backend: str) -> str:
    if backend != "auto":
        return backend
    if torch.compiler.is_compiling() or x.shape[-1] < _WINDOW_MIN_N or x.numel() == 0:
        return "reference"
    # The window pays for its sort and gathers only when it skips most pairs.
    return "window" if window.window_width(x, gamma) * 4 <= x.shape[-1] else "reference"


class _SoftRankFunction(torch.autograd.Function):
    """Soft rank of each row of a 2-D tensor; backward recomputes the pairwise terms."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, gamma: float, backend: str) -> torch.Tensor:
        ctx.gamma = gamma
        ctx.backend = backend
        ctx.save_for_backward(x)
        return _KERNELS[backend].forward(x, gamma)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        grad_x = _KERNELS[ctx.backend].backward(x, grad.contiguous(), ctx.gamma)
        return grad_x, None, None


def soft_rank(
    x: torch.Tensor,
    gamma: float = DEFAULT_GAMMA,
    dim: int = -1,
    descending: bool = False,
    *,
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
        backend: ``"reference"`` (dense, chunked), ``"window"`` (sorted window, exact to
            rounding, fast when γ times the spread is large) or ``"auto"``.
        check_finite: raise on NaN/inf input. This needs a device sync; pass False to skip it.

    Returns:
        Tensor of the shape and dtype of ``x``.

    Example:
        >>> soft_rank(torch.tensor([0.1, 3.0, -2.0]), gamma=10.0)
        tensor([2.0000, 3.0000, 1.0000])

    Reference: Yin et al., "Adversarial Distillation Based on Slack Matching and Attribution
    Region Alignment", CVPR 2024, supplementary Alg. 1.
    """
    _validate.check_tensor(x, "x")
    dim = _validate.check_dim(x, dim, "x")
    if x.shape[dim] < 1:
        raise ValueError(f"x has size 0 along dim={dim} (shape {tuple(x.shape)}); nothing to rank")
    gamma = _validate.check_gamma(gamma)
    _validate.check_choice(scale, "scale", SCALES)
    _validate.check_choice(backend, "backend", BACKENDS)
    if check_finite:
        _validate.check_finite(x, "x")

    compute_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
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
            self.gamma,
            self.dim,
            self.descending,
            scale=self.scale,
            backend=self.backend,
            check_finite=self.check_finite,
        )

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, dim={self.dim}, descending={self.descending}, scale={self.scale!r}"
