"""Differentiable soft rank (SmaraAD, Alg. 1) and its backend dispatch."""

from __future__ import annotations

import warnings
from types import SimpleNamespace
from typing import Literal, get_args

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from softrank_ad import _deprecation, _validate
from softrank_ad._kernels import compiled, native, reference, window

Backend = Literal["auto", "reference", "window", "compiled", "native", "triton"]
Scale = Literal["none", "std"]

BACKENDS = get_args(Backend)
SCALES = get_args(Scale)

#: Default sharpness. Chosen on logits of CIFAR-10 classifiers (docs/guide/gamma.md): at γ = 1
#: soft ρ orders rows as hard ρ does while nearly every class pair still passes gradient.
DEFAULT_GAMMA = 1.0

#: ``backend="auto"`` takes the first of these that supports the input, is available here and is
#: worth it for this input (each kernel module's ``supports``, ``available`` and ``worthwhile``).
AUTO_ORDER = ("triton", "native", "window", "compiled", "reference")


_triton_module = None  # set by the first eager _triton() call


def _triton():
    """The Triton kernel module, or a stand-in that says why it is missing."""
    global _triton_module
    if _triton_module is None:
        try:
            from softrank_ad._kernels import triton_kernel as module
        except ImportError as err:
            reason = f"it needs the triton package (pip install triton): {err}"
            module = SimpleNamespace(
                RUNS_ON="CUDA float32 tensors",
                supports=lambda x: False,
                available=lambda: False,
                build_error=lambda: reason,
                worthwhile=lambda x, gamma: False,
                trusted=lambda device: False,
            )
        _triton_module = module
    return _triton_module


_KERNELS = {"reference": reference, "window": window, "compiled": compiled, "native": native}


def _kernel(name: str):
    return _KERNELS[name] if name in _KERNELS else _triton()


def _pick_backend(x: torch.Tensor, gamma: float, backend: str) -> str:
    if backend != "auto":
        kernel = _kernel(backend)
        if not kernel.available():
            raise ValueError(f"backend={backend!r} could not be built here: {kernel.build_error()}")
        if not kernel.supports(x):
            raise ValueError(f"backend={backend!r} runs on {kernel.RUNS_ON}, got a {x.dtype} tensor on {x.device}")
        return backend
    if x.numel() == 0:
        return "reference"
    if _validate.is_traced(x):
        # Traced (torch.compile, torch.export): the fused kernels run as one opaque operator; the
        # other backends' choices depend on the data, and inductor fuses the dense formula itself.
        # Traced code cannot import or build (imports, locks), so only kernels that an eager call
        # already loaded are used; the first call in a process, if traced, takes the formula.
        if _triton_module is not None and _triton_module.supports(x) and _triton_module.trusted(x.device):
            return "triton"
        if native.loaded() and native.supports(x):
            return "native"
        return "reference"
    for name in AUTO_ORDER:
        kernel = _kernel(name)
        if kernel.supports(x) and kernel.available() and kernel.worthwhile(x, gamma):
            return name
    return "reference"


@torch.library.custom_op("softrank_ad::soft_rank", mutates_args=())
def _soft_rank_op(x: torch.Tensor, gamma: float, backend: str) -> torch.Tensor:
    """The soft rank of each row of a contiguous 2-D tensor, as a torch operator: what
    torch.compile keeps in its graph (no graph break) and torch.export captures."""
    return _kernel(backend).forward(x, gamma)


@_soft_rank_op.register_fake
def _(x: torch.Tensor, gamma: float, backend: str) -> torch.Tensor:
    return torch.empty_like(x)


@torch.library.custom_op("softrank_ad::soft_rank_backward", mutates_args=())
def _soft_rank_backward_op(x: torch.Tensor, grad: torch.Tensor, gamma: float, backend: str) -> torch.Tensor:
    return _kernel(backend).backward(x, grad.contiguous(), gamma)


@_soft_rank_backward_op.register_fake
def _(x: torch.Tensor, grad: torch.Tensor, gamma: float, backend: str) -> torch.Tensor:
    return torch.empty_like(x)


def _setup_context(ctx, inputs, output) -> None:
    x, gamma, backend = inputs
    ctx.save_for_backward(x)
    ctx.gamma, ctx.backend = gamma, backend


def _op_backward(ctx, grad: torch.Tensor):
    (x,) = ctx.saved_tensors
    return _soft_rank_backward_op(x, grad, ctx.gamma, ctx.backend), None, None


_soft_rank_op.register_autograd(_op_backward, setup_context=_setup_context)


def _rank_rows(v2d: torch.Tensor, gamma: float, backend: str, auto: bool) -> torch.Tensor:
    """Soft ranks of the rows: the operator while traced, the (cheaper to call) autograd.Function
    in eager mode; the same kernels either way."""
    if _validate.is_traced(v2d):
        return _soft_rank_op(v2d, gamma, backend)
    return _SoftRankFunction.apply(v2d, gamma, backend, auto)


def _run(direction: str, backend: str, auto: bool, x: torch.Tensor, *args):
    """One kernel call. A Triton kernel that fails to compile or launch (first seen at the first
    call, or for the backward at the first backward) switches itself off; a backend chosen by
    "auto" then warns once and the call runs on the next backend, so a training step never
    crashes on it. A backend the caller named raises."""
    try:
        return getattr(_kernel(backend), direction)(x, *args)
    except Exception as err:
        if not (auto and backend == "triton" and not _kernel("triton").available()):
            raise
        fallback = _pick_backend(x, args[-1], "auto")
        warnings.warn(
            f"{err}; soft_rank uses the {fallback!r} backend instead from now on", RuntimeWarning, stacklevel=4
        )
        return getattr(_kernel(fallback), direction)(x, *args)


class _SoftRankFunction(torch.autograd.Function):
    """Soft rank of each row of a 2-D tensor; backward recomputes the pairwise terms, reusing what
    a kernel's ``forward_saving`` kept (the native kernel: each sorted row's order)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, gamma: float, backend: str, auto: bool) -> torch.Tensor:
        ctx.gamma, ctx.backend, ctx.auto = gamma, backend, auto
        saving = getattr(_kernel(backend), "forward_saving", None)
        if saving is not None and ctx.needs_input_grad[0]:
            ranks, saved = saving(x, gamma)  # a kernel with forward_saving never falls back
        else:
            ranks, saved = _run("forward", backend, auto, x, gamma), None
        ctx.save_for_backward(x, saved)
        return ranks

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, saved = ctx.saved_tensors
        if saved is not None:
            grad_x = _kernel(ctx.backend).backward(x, grad.contiguous(), ctx.gamma, saved=saved)
        else:
            grad_x = _run("backward", ctx.backend, ctx.auto, x, grad.contiguous(), ctx.gamma)
        return grad_x, None, None, None


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
            σ saturates, and take long float32 rows by a far-field expansion whose error per
            pair is below 1e-9), and where those cannot run the torch backends: ``"window"`` (sorted
            window, exact to rounding) when γ times the spread is large, ``"compiled"``
            (torch.compile-fused dense), or ``"reference"`` (dense torch, chunked over rows).
            Any can be forced.
        check_finite: raise on NaN/inf input. Read from the ranks (NaN wherever the input is not
            finite) with one reduction and a device sync; pass False to skip it.

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

    # The moves and casts are skipped where they would do nothing: at n = 4,096 and below, the
    # call around the kernel costs about as much as the kernel itself.
    last = dim == x.dim() - 1
    v = x if last else x.movedim(dim, -1)
    v = v if v.dtype == compute_dtype else v.to(compute_dtype)
    if descending:
        v = -v
    if scale == "std":
        v = _divide_by_spread(v)
    shape = v.shape
    v2d = (v if v.dim() == 2 else v.reshape(-1, shape[-1])).contiguous()
    chosen = _pick_backend(v2d.detach(), gamma, backend)
    ranks = _rank_rows(v2d, gamma, chosen, backend == "auto")
    if check_finite:
        check_finite_ranks(ranks, (x, "x"))
    ranks = ranks if ranks.dim() == len(shape) else ranks.reshape(shape)
    ranks = ranks if last else ranks.movedim(-1, dim)
    return ranks if ranks.dtype == x.dtype else ranks.to(x.dtype)


def check_finite_ranks(ranks: torch.Tensor, *inputs: tuple[torch.Tensor, str]) -> None:
    """:func:`_validate.check_finite_from` for ranks this module computed, without its reduction
    where the native kernel has already said that every row was finite."""
    if not native.known_finite(ranks):
        _validate.check_finite_from(ranks, *inputs)


def _divide_by_spread(v: torch.Tensor) -> torch.Tensor:
    # var then sqrt, clamped: std's own backward is 0/0 on a constant row.
    tiny = torch.finfo(v.dtype).tiny
    spread = v.var(dim=-1, unbiased=False, keepdim=True).clamp_min(tiny).sqrt()
    return v / spread


class SoftRank(nn.Module):
    r"""Module form of :func:`soft_rank`: :math:`r_i = \tfrac12 + \sum_j \sigma(\gamma (v_i - v_j))`
    along ``dim``; stores its arguments only (no parameters).

    Args:
        gamma: sharpness γ > 0 (default 1): larger is closer to hard ranks, with weaker gradients.
        dim: the axis to rank along (default -1).
        descending: rank the largest entry first (n + 1 − r).
        scale: ``"none"`` or ``"std"`` (γ relative to each row's spread).
        backend: ``"auto"`` (default) or a named backend, see :func:`soft_rank`.
        check_finite: raise on NaN/inf input (one device sync).

    Shape:
        - Input: ``(*, n, *)``, floating; half precision is computed in float32.
        - Output: the input's shape and dtype.

    Example:
        >>> SoftRank(gamma=10.0)(torch.randn(4, 10)).shape
        torch.Size([4, 10])
    """

    @_deprecation.keyword_only("gamma", "dim", "descending")
    def __init__(
        self,
        *,
        gamma: float = DEFAULT_GAMMA,
        dim: int = -1,
        descending: bool = False,
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
