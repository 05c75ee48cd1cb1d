"""Soft Spearman correlation and the slack-matching loss (SmaraAD, Alg. 2)."""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import nn

from softrank_ad import _deprecation, _validate
from softrank_ad.rank import BACKENDS, DEFAULT_GAMMA, SCALES, Backend, Scale, check_finite_ranks, soft_rank

PositionWeights = Literal["none", "dcg"]
POSITION_WEIGHTS = get_args(PositionWeights)


@_deprecation.renamed_keywords(weights="position_weights")
def soft_spearman(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    gamma: float = DEFAULT_GAMMA,
    dim: int = -1,
    position_weights: torch.Tensor | None = None,
    scale: Scale = "none",
    backend: Backend = "auto",
    check_finite: bool = True,
) -> torch.Tensor:
    r"""Soft Spearman rank correlation of ``a`` and ``b`` along ``dim``.

    .. math::
        \rho(a, b; \gamma) = 1 - \frac{6 \sum_i \hat w_i (r_i(a) - r_i(b))^2}{n (n^2 - 1)},
        \qquad \hat w_i = w_i / \max_j w_j

    with :math:`r` the soft rank of :func:`~softrank_ad.soft_rank` and :math:`\hat w = 1` unless
    ``position_weights`` are given. ρ lies in [−1, 1] (soft ranks lie in the permutahedron, so the sum is
    at most n(n² − 1)/3, and the weights are at most 1), equals 1 for ``a == b`` and tends to
    ``scipy.stats.spearmanr`` for distinct values as γ → ∞.

    Args:
        a, b: floating tensors of the same shape with n ≥ 2 entries along ``dim``.
        gamma, scale, backend, check_finite: as in :func:`~softrank_ad.soft_rank`.
        dim: the axis to correlate along; it is removed from the result.
        position_weights: optional non-negative weight per position, broadcastable to ``a`` (e.g. from
            :func:`dcg_weights`); divided by their maximum along ``dim``, so uniform weights give
            the unweighted ρ and any weighting only discounts positions [library extension, not
            in the paper]. Their values are checked with ``check_finite`` (one device sync).

    Returns:
        ρ per row, with the shape of ``a`` without ``dim`` and ``a``'s dtype.

    Example:
        >>> a = torch.tensor([[1.0, 2.0, 3.0]])
        >>> soft_spearman(a, a.flip(-1), gamma=50.0)
        tensor([-1.])

    Reference: Yin et al., CVPR 2024, supplementary Alg. 2 (which returns −ρ).
    """
    return _spearman(a, b, gamma, dim, scale, backend, check_finite, position_weights, names=("a", "b"))


@_deprecation.keyword_only("dim")
def dcg_weights(reference: torch.Tensor, *, dim: int = -1) -> torch.Tensor:
    r"""DCG-style position weights from a reference ranking: :math:`w_i = 1 / \log_2(1 + k_i)`
    with :math:`k_i` the descending hard rank of ``reference[i]`` along ``dim`` (1 for the
    largest). The top entry weighs 1, the second 0.63, the tenth 0.29.

    For :func:`soft_spearman` and :func:`slack_matching_loss` with the teacher's logits as
    ``reference``: a swap among the teacher's likeliest classes then costs more than one among
    its least likely [library extension].

    Example:
        >>> dcg_weights(torch.tensor([0.1, 3.0, -2.0]))
        tensor([0.6309, 1.0000, 0.5000])
    """
    _validate.check_tensor(reference, "reference")
    dim = _validate.check_dim(reference, dim, "reference")
    order = reference.detach().argsort(dim=dim, descending=True)
    shape = [1] * reference.dim()
    shape[dim] = reference.shape[dim]
    ranks = torch.arange(1, reference.shape[dim] + 1, device=reference.device).view(shape).expand_as(order)
    positions = torch.empty_like(order).scatter_(dim, order, ranks.contiguous())
    return 1.0 / torch.log2(1.0 + positions.to(reference.dtype))


def _check_weights(weights: object, like: torch.Tensor, dim: int, check_values: bool) -> torch.Tensor:
    weights = _validate.check_tensor(weights, "position_weights")
    try:
        expanded = weights.expand_as(like)
    except RuntimeError:
        raise ValueError(
            f"position_weights must broadcast to the inputs' shape {tuple(like.shape)}, got {tuple(weights.shape)}"
        ) from None
    if check_values and not _validate.is_traced(expanded):
        detached = expanded.detach()
        # Three conditions, one device sync.
        non_finite, negative, empty_row = torch.stack(
            [~torch.isfinite(detached).all(), (detached < 0).any(), (detached.amax(dim) <= 0).any()]
        ).tolist()
        if non_finite or negative:
            raise ValueError("position_weights must be finite and >= 0")
        if empty_row:
            raise ValueError(f"position_weights must have a positive entry in every row along dim={dim}")
    return expanded


def _spearman(a, b, gamma, dim, scale, backend, check_finite, weights, names):
    name_a, name_b = names
    _validate.check_tensor(a, name_a)
    _validate.check_tensor(b, name_b)
    _validate.check_same_shape(a, b, name_a, name_b)
    dim = _validate.check_dim(a, dim, name_a)
    n = a.shape[dim]
    if n < 2:
        raise ValueError(
            f"Spearman correlation needs n >= 2 entries along dim={dim}, got n={n} "
            f"({name_a} has shape {tuple(a.shape)})"
        )
    # check_finite=False: checked below on the ranks, under the caller's names.
    options = dict(scale=scale, backend=backend, check_finite=False)
    # Ranks reach n: keep them and their squared differences in at least float32 (a bfloat16
    # rank near 1000 would be off by up to 4). One stacked call ranks both in one kernel launch.
    compute_dtype = torch.float64 if a.dtype == torch.float64 else torch.float32
    both = torch.stack((a.to(compute_dtype), b.to(compute_dtype)))
    ranks = soft_rank(both, gamma=gamma, dim=dim + 1, **options)
    if check_finite:
        check_finite_ranks(ranks, (a, name_a), (b, name_b))
    ra, rb = ranks.unbind(0)
    squared = (ra - rb).square()
    if weights is not None:
        w = _check_weights(weights, a, dim, check_finite).to(compute_dtype)
        squared = squared * (w / w.amax(dim, keepdim=True))
    rho = 1 - 6 * squared.sum(dim) / (n * (n * n - 1))
    return rho.to(a.dtype)


@_deprecation.renamed_keywords(weights="position_weights")
def slack_matching_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    *,
    gamma: float = DEFAULT_GAMMA,
    reduction: str = "mean",
    dim: int = -1,
    detach_teacher: bool = True,
    position_weights: torch.Tensor | PositionWeights | None = None,
    scale: Scale = "none",
    backend: Backend = "auto",
    check_finite: bool = True,
) -> torch.Tensor:
    r"""Slack matching: one minus the soft Spearman ρ of student and teacher logits, per row.

    .. math::
        \mathcal{L}_{sm}(z_S, z_T) = 1 - \rho(z_S, z_T; \gamma)

    Applied to raw logits (no softmax, no temperature), as in the authors' released code. The
    paper's Alg. 2 returns −ρ; 1 − ρ has the same gradient and is 0 at a perfect rank match.

    Args:
        student_logits, teacher_logits: (B, C) logits (or any shape, ranked along ``dim``).
        gamma, scale, backend, check_finite: as in :func:`~softrank_ad.soft_rank`.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` over the rows, as in torch losses.
        dim: the class axis.
        detach_teacher: treat the teacher's logits as a constant (default).
        position_weights: per-position weights as in :func:`soft_spearman`: a tensor, or
            ``"dcg"`` for :func:`dcg_weights` of the teacher's logits (a swap among the teacher's
            likeliest classes then costs more), or None / ``"none"`` (default, the paper)
            [library extension].

    Returns:
        A scalar, or the per-row losses with ``reduction="none"``.

    Example:
        >>> s, t = torch.randn(8, 10, requires_grad=True), torch.randn(8, 10)
        >>> slack_matching_loss(s, t).backward()

    Reference: Yin et al., CVPR 2024, Eq. 9 and supplementary Alg. 2.
    """
    reduction = _validate.check_reduction(reduction)
    if detach_teacher and isinstance(teacher_logits, torch.Tensor):
        teacher_logits = teacher_logits.detach()
    if isinstance(position_weights, str):
        _validate.check_choice(position_weights, "position_weights", POSITION_WEIGHTS)
        if position_weights == "dcg":
            _validate.check_tensor(teacher_logits, "teacher_logits")
            position_weights = dcg_weights(
                teacher_logits.detach(), dim=_validate.check_dim(teacher_logits, dim, "teacher_logits")
            )
        else:
            position_weights = None
    rho = _spearman(
        student_logits,
        teacher_logits,
        gamma,
        dim,
        scale,
        backend,
        check_finite,
        position_weights,
        names=("student_logits", "teacher_logits"),
    )
    return _validate.reduce(1 - rho, reduction)


class SlackMatchingLoss(nn.Module):
    r"""Slack matching, :math:`1 - \rho(z_S, z_T; \gamma)` per row with ρ the soft Spearman
    correlation (module form of :func:`slack_matching_loss`; stores its arguments only).

    Args:
        gamma: soft-rank sharpness γ > 0 (default 1).
        reduction: ``"mean"`` (default) | ``"sum"`` | ``"none"`` over the rows.
        dim: the class axis (default -1).
        detach_teacher: treat the teacher's logits as a constant (default True).
        position_weights: ``"none"`` (default) or ``"dcg"`` (weights from the teacher's ranking,
            see :func:`dcg_weights`); a tensor can be passed per call instead.
        scale: ``"none"`` or ``"std"`` (γ relative to each row's spread; fresh students' logits
            are tiny, so at γ = 1 their soft ranks start nearly flat).
        backend, check_finite: as in :func:`~softrank_ad.soft_rank`.

    Shape:
        - student_logits, teacher_logits: (B, C), or any matching shapes ranked along ``dim``.
        - position_weights (optional, per call): a tensor broadcastable to the logits; it
          replaces the constructor's setting for that call.
        - Output: a scalar, or (B,) with ``reduction="none"`` (the shape without ``dim``).

    Example:
        >>> loss_fn = SlackMatchingLoss(gamma=1.0)
        >>> student_logits = torch.randn(8, 10, requires_grad=True)
        >>> loss_fn(student_logits, torch.randn(8, 10)).backward()

    Reference: Yin et al., CVPR 2024, Eq. 9 and supplementary Alg. 2.
    """

    @_deprecation.keyword_only("gamma", "reduction")
    def __init__(
        self,
        *,
        gamma: float = DEFAULT_GAMMA,
        reduction: str = "mean",
        dim: int = -1,
        detach_teacher: bool = True,
        position_weights: PositionWeights = "none",
        scale: Scale = "none",
        backend: Backend = "auto",
        check_finite: bool = True,
    ) -> None:
        super().__init__()
        self.gamma = _validate.check_gamma(gamma)
        self.reduction = _validate.check_reduction(reduction)
        _validate.check_choice(position_weights, "position_weights", POSITION_WEIGHTS)
        _validate.check_choice(scale, "scale", SCALES)
        _validate.check_choice(backend, "backend", BACKENDS)
        self.dim = dim
        self.detach_teacher = detach_teacher
        self.position_weights = position_weights
        self.scale = scale
        self.backend = backend
        self.check_finite = check_finite

    @_deprecation.renamed_keywords(weights="position_weights")
    def forward(
        self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, position_weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        return slack_matching_loss(
            student_logits,
            teacher_logits,
            position_weights=position_weights if position_weights is not None else self.position_weights,
            gamma=self.gamma,
            reduction=self.reduction,
            dim=self.dim,
            detach_teacher=self.detach_teacher,
            scale=self.scale,
            backend=self.backend,
            check_finite=self.check_finite,
        )

    def extra_repr(self) -> str:
        return (
            f"gamma={self.gamma}, reduction={self.reduction!r}, position_weights={self.position_weights!r}, "
            f"scale={self.scale!r}"
        )


class SoftSpearman(nn.Module):
    r"""Module form of :func:`soft_spearman`: ρ per row along ``dim`` (stores its arguments only).

    Args:
        gamma, dim, scale, backend, check_finite: as in :func:`soft_spearman`.

    Shape:
        - a, b: matching floating shapes with n ≥ 2 entries along ``dim``.
        - position_weights (optional, per call): as in :func:`soft_spearman`.
        - Output: the shape without ``dim``.

    Example:
        >>> a = torch.tensor([[1.0, 2.0, 3.0]])
        >>> SoftSpearman(gamma=50.0)(a, a)
        tensor([1.])
    """

    def __init__(
        self,
        *,
        gamma: float = DEFAULT_GAMMA,
        dim: int = -1,
        scale: Scale = "none",
        backend: Backend = "auto",
        check_finite: bool = True,
    ) -> None:
        super().__init__()
        self.gamma = _validate.check_gamma(gamma)
        _validate.check_choice(scale, "scale", SCALES)
        _validate.check_choice(backend, "backend", BACKENDS)
        self.dim, self.scale, self.backend, self.check_finite = dim, scale, backend, check_finite

    def forward(self, a: torch.Tensor, b: torch.Tensor, position_weights: torch.Tensor | None = None) -> torch.Tensor:
        return soft_spearman(
            a,
            b,
            gamma=self.gamma,
            dim=self.dim,
            position_weights=position_weights,
            scale=self.scale,
            backend=self.backend,
            check_finite=self.check_finite,
        )

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, dim={self.dim}, scale={self.scale!r}"
