"""Soft Kendall rank correlation and the Kendall matching loss (a pairwise alternative to slack
matching, as RKKD adds to KL)."""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from softrank_ad import _deprecation, _validate
from softrank_ad.rank import DEFAULT_GAMMA

# Rows per chunk are chosen so that one chunk's (rows, n, n) pair matrices hold about this many
# entries: transient memory stays near 32 MiB in float32 whatever the batch.
_PAIRS_PER_CHUNK = 1 << 23


def _pair_signs(v: torch.Tensor, gamma: float) -> torch.Tensor:
    """tanh(γ(v_i − v_j)/2) = 2σ(γ(v_i − v_j)) − 1 for every pair of a (rows, n) block."""
    return torch.tanh((0.5 * gamma) * (v[:, :, None] - v[:, None, :]))


def _chunks(rows: int, n: int) -> list[slice]:
    """Row slices whose (rows, n, n) pair matrices hold about _PAIRS_PER_CHUNK entries."""
    step = max(1, _PAIRS_PER_CHUNK // (n * n))
    return [slice(start, start + step) for start in range(0, rows, step)]


class _SoftKendallFunction(torch.autograd.Function):
    """τ per row of two (rows, n) tensors. Saves only the inputs (O(rows·n)); the backward
    recomputes the pair matrices chunk by chunk."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, gamma: float) -> torch.Tensor:
        rows, n = a.shape
        tau = a.new_empty(rows)
        for sl in _chunks(rows, n):
            tau[sl] = (_pair_signs(a[sl], gamma) * _pair_signs(b[sl], gamma)).sum((1, 2))
        ctx.save_for_backward(a, b)
        ctx.gamma = gamma
        return tau / (n * (n - 1))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        a, b = ctx.saved_tensors
        gamma = ctx.gamma
        rows, n = a.shape
        # dτ/da_k = γ / (n(n−1)) Σ_j (1 − t_a(kj)²) t_b(kj), t = tanh(γΔ/2); both pair orders of
        # (k, j) contribute, which doubles the 1/2 of tanh's derivative.
        scale = grad[:, None] * (gamma / (n * (n - 1)))
        need_a, need_b = ctx.needs_input_grad[:2]
        grad_a, grad_b = torch.empty_like(a), torch.empty_like(b)
        for sl in _chunks(rows, n):
            ta, tb = _pair_signs(a[sl], gamma), _pair_signs(b[sl], gamma)
            if need_a:
                grad_a[sl] = scale[sl] * ((1 - ta.square()) * tb).sum(2)
            if need_b:
                grad_b[sl] = scale[sl] * ((1 - tb.square()) * ta).sum(2)
        return grad_a if need_a else None, grad_b if need_b else None, None


def soft_kendall(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    gamma: float = DEFAULT_GAMMA,
    dim: int = -1,
    check_finite: bool = True,
) -> torch.Tensor:
    r"""Soft Kendall rank correlation of ``a`` and ``b`` along ``dim``.

    .. math::
        \tau(a, b; \gamma) = \frac{1}{n(n-1)} \sum_{i \neq j}
            \tanh\!\big(\tfrac{\gamma}{2}(a_i - a_j)\big) \tanh\!\big(\tfrac{\gamma}{2}(b_i - b_j)\big)

    Each pair's sign is relaxed to :math:`\tanh(\gamma\Delta/2) = 2\sigma(\gamma\Delta) - 1`, the
    same pairwise comparison :func:`~softrank_ad.soft_rank` sums, so γ means the same thing in
    both losses; tanh rather than a one-sided sigmoid keeps τ odd in each argument
    (τ(a, −b) = −τ(a, b)), symmetric (τ(a, b) = τ(b, a)) and inside [−1, 1]. As γ → ∞ it tends to
    Kendall's τ: ``scipy.stats.kendalltau`` for distinct values. **Ties**: a tied pair's tanh is 0,
    so it counts as neither concordant nor discordant while the denominator stays n(n − 1), the
    τ-a convention (scipy's default τ-b instead shrinks the denominator by the tied pairs).

    O(n²) work per row; only the inputs are saved for the backward (O(B·n) memory), the pair
    matrices are rebuilt there in chunks of rows.

    Args:
        a, b: floating tensors of the same shape with n ≥ 2 entries along ``dim``; half precision
            is computed in float32.
        gamma: sharpness γ > 0 of the pairwise comparisons.
        dim: the axis to correlate along; it is removed from the result.
        check_finite: raise on NaN/inf input (one device sync); False skips it.

    Returns:
        τ per row, with the shape of ``a`` without ``dim`` and ``a``'s dtype.

    Example:
        >>> a = torch.tensor([[1.0, 2.0, 3.0]])
        >>> soft_kendall(a, a.flip(-1), gamma=50.0)
        tensor([-1.])
    """
    _validate.check_tensor(a, "a")
    _validate.check_tensor(b, "b")
    _validate.check_same_shape(a, b, "a", "b")
    return _kendall(a, b, gamma, dim, check_finite, names=("a", "b"))


def _kendall(a, b, gamma, dim, check_finite, names):
    dim = _validate.check_dim(a, dim, names[0])
    n = a.shape[dim]
    if n < 2:
        raise ValueError(
            f"Kendall correlation needs n >= 2 entries along dim={dim}, got n={n} "
            f"({names[0]} has shape {tuple(a.shape)})"
        )
    compute_dtype = torch.float64 if a.dtype == torch.float64 else torch.float32
    gamma = _validate.check_gamma(gamma, compute_dtype)
    if check_finite:
        _validate.check_all_finite((a, names[0]), (b, names[1]))
    shape = a.movedim(dim, -1).shape[:-1]
    a2, b2 = (t.movedim(dim, -1).reshape(-1, n).to(compute_dtype).contiguous() for t in (a, b))
    tau = _SoftKendallFunction.apply(a2, b2, gamma)
    return tau.reshape(shape).to(a.dtype)


def kendall_matching_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    *,
    gamma: float = DEFAULT_GAMMA,
    reduction: str = "mean",
    dim: int = -1,
    detach_teacher: bool = True,
    check_finite: bool = True,
) -> torch.Tensor:
    r"""Kendall matching: one minus the soft Kendall τ of student and teacher logits, per row.

    .. math::
        \mathcal{L}_{kt}(z_S, z_T) = 1 - \tau(z_S, z_T; \gamma)

    The pairwise counterpart of :func:`~softrank_ad.slack_matching_loss`: every swapped pair of
    classes costs the same, wherever it sits in the ranking (Spearman's ρ weighs a swap by the
    squared rank distance). In [0, 2]; 0 when every pair is ordered alike and far apart
    compared with 1/γ. RKKD (ICML 2025) adds a differentiable Kendall's τ of this kind to KL
    rather than using it alone [library extension, not in SmaraAD].

    Args:
        student_logits, teacher_logits: (B, C) logits (or any shape, ranked along ``dim``).
        gamma, check_finite: as in :func:`soft_kendall`.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` over the rows, as in torch losses.
        dim: the class axis.
        detach_teacher: treat the teacher's logits as a constant (default).

    Returns:
        A scalar, or the per-row losses with ``reduction="none"``.

    Example:
        >>> s, t = torch.randn(8, 10, requires_grad=True), torch.randn(8, 10)
        >>> kendall_matching_loss(s, t).backward()
    """
    reduction = _validate.check_reduction(reduction)
    _validate.check_tensor(student_logits, "student_logits")
    _validate.check_tensor(teacher_logits, "teacher_logits")
    _validate.check_same_shape(student_logits, teacher_logits, "student_logits", "teacher_logits")
    if detach_teacher:
        teacher_logits = teacher_logits.detach()
    tau = _kendall(student_logits, teacher_logits, gamma, dim, check_finite, names=("student_logits", "teacher_logits"))
    return _validate.reduce(1 - tau, reduction)


class KendallMatchingLoss(nn.Module):
    r"""Kendall matching, :math:`1 - \tau(z_S, z_T; \gamma)` per row with τ the soft Kendall
    correlation (module form of :func:`kendall_matching_loss`; stores its arguments only).

    Args:
        gamma: sharpness γ > 0 of the pairwise comparisons (default 1).
        reduction: ``"mean"`` (default) | ``"sum"`` | ``"none"`` over the rows.
        dim: the class axis (default -1).
        detach_teacher: treat the teacher's logits as a constant (default True).
        check_finite: raise on NaN/inf input (one device sync).

    Shape:
        - student_logits, teacher_logits: (B, C), or any matching shapes ranked along ``dim``.
        - Output: a scalar, or (B,) with ``reduction="none"`` (the shape without ``dim``).

    Example:
        >>> loss_fn = KendallMatchingLoss(gamma=1.0)
        >>> student_logits = torch.randn(8, 10, requires_grad=True)
        >>> loss_fn(student_logits, torch.randn(8, 10)).backward()

    Reference: RKKD (ICML 2025) for Kendall's τ added to KL; the relaxation here is this
    library's (see :func:`soft_kendall`).
    """

    @_deprecation.keyword_only("gamma", "reduction")
    def __init__(
        self,
        *,
        gamma: float = DEFAULT_GAMMA,
        reduction: str = "mean",
        dim: int = -1,
        detach_teacher: bool = True,
        check_finite: bool = True,
    ) -> None:
        super().__init__()
        self.gamma = _validate.check_gamma(gamma)
        self.reduction = _validate.check_reduction(reduction)
        self.dim = dim
        self.detach_teacher = detach_teacher
        self.check_finite = check_finite

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        return kendall_matching_loss(
            student_logits,
            teacher_logits,
            gamma=self.gamma,
            reduction=self.reduction,
            dim=self.dim,
            detach_teacher=self.detach_teacher,
            check_finite=self.check_finite,
        )

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, reduction={self.reduction!r}"


class SoftKendall(nn.Module):
    r"""Module form of :func:`soft_kendall`: τ per row along ``dim`` (stores its arguments only).

    Args:
        gamma, dim, check_finite: as in :func:`soft_kendall`.

    Shape:
        - a, b: matching floating shapes with n ≥ 2 entries along ``dim``.
        - Output: the shape without ``dim``.

    Example:
        >>> a = torch.tensor([[1.0, 2.0, 3.0]])
        >>> SoftKendall(gamma=50.0)(a, a.flip(-1))
        tensor([-1.])
    """

    def __init__(self, *, gamma: float = DEFAULT_GAMMA, dim: int = -1, check_finite: bool = True) -> None:
        super().__init__()
        self.gamma = _validate.check_gamma(gamma)
        self.dim, self.check_finite = dim, check_finite

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return soft_kendall(a, b, gamma=self.gamma, dim=self.dim, check_finite=self.check_finite)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, dim={self.dim}"
