"""Relational distillation losses: DIST, which matches correlations of class probabilities
across classes and across the batch (Huang et al., NeurIPS 2022)."""

from __future__ import annotations

import torch
from torch import nn

from softrank_ad import _validate
from softrank_ad.divergence import check_logit_pair, upcast

# The official code adds this to the product of the two norms.
PEARSON_EPS = 1e-8


def pearson(a: torch.Tensor, b: torch.Tensor, dim: int = 1, eps: float = PEARSON_EPS) -> torch.Tensor:
    """Pearson correlation of ``a`` and ``b`` along ``dim``, with ``eps`` added to the denominator
    as in DIST's official code (so constant rows give 0, not NaN)."""
    a = a - a.mean(dim, keepdim=True)
    b = b - b.mean(dim, keepdim=True)
    return (a * b).sum(dim) / (a.norm(dim=dim) * b.norm(dim=dim) + eps)


def dist_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    inter_weight: float = 1.0,
    intra_weight: float = 1.0,
    reduction: str = "mean",
    detach_teacher: bool = True,
    check_finite: bool = True,
) -> torch.Tensor:
    r"""DIST: one minus Pearson correlation between student and teacher class probabilities,
    along each row (inter-class) and along each class's column across the batch (intra-class).

    .. math::
        Y = \operatorname{softmax}(z / \tau), \quad
        \mathcal{L} = \tau^2 \Big(w_{inter} \big[1 - \operatorname{mean}_i \,\rho(Y_S[i,:], Y_T[i,:])\big]
            + w_{intra} \big[1 - \operatorname{mean}_j \,\rho(Y_S[:,j], Y_T[:,j])\big]\Big)

    with ρ the Pearson correlation (``1e-8`` added to its denominator, as the official code).
    Matching correlations instead of the probabilities themselves leaves the student free in
    scale and shift, which DIST reports helps more the stronger the teacher is.

    **The intra-class term is a batch statistic**: under ``DistributedDataParallel`` each process
    sees its own local batch (as BatchNorm does), so it correlates columns over B / world_size
    samples; nothing is gathered across processes.

    Args:
        student_logits, teacher_logits: (B, C) logits; B ≥ 2 when ``intra_weight > 0``.
        temperature: τ > 0 (the official code's default is 1).
        inter_weight, intra_weight: :math:`w_{inter}` and :math:`w_{intra}` (the paper's β and
            γ; not the soft rank's γ), each ≥ 0.
        reduction: ``"mean"`` (the formula above) or ``"sum"`` (sums over rows and columns in
            place of the means); ``"none"`` gives the per-row inter-class losses and needs
            ``intra_weight=0``, since the intra-class term has no per-sample value.
        detach_teacher: treat the teacher's logits as a constant (default).
        check_finite: raise on NaN/inf logits (one device sync); False skips it.

    Returns:
        A scalar (float32 for half-precision input), or (B,) with ``reduction="none"``.

    Example:
        >>> s, t = torch.randn(8, 10, requires_grad=True), torch.randn(8, 10)
        >>> dist_loss(s, t).backward()

    Reference: Huang et al., "Knowledge Distillation from A Stronger Teacher", NeurIPS 2022.
    """
    reduction = _validate.check_reduction(reduction)
    temperature = _validate.check_positive(temperature, "temperature")
    inter_weight = _validate.check_non_negative(inter_weight, "inter_weight")
    intra_weight = _validate.check_non_negative(intra_weight, "intra_weight")
    check_logit_pair(student_logits, teacher_logits)
    batch, classes = student_logits.shape
    if classes < 2:
        raise ValueError(f"DIST needs C >= 2 classes, got logits of shape {tuple(student_logits.shape)}")
    if intra_weight > 0 and batch < 2:
        raise ValueError(
            f"DIST's intra-class term correlates each class over the batch and needs B >= 2, got a batch "
            f"of {batch}; pass intra_weight=0 for single samples"
        )
    if reduction == "none" and intra_weight > 0:
        raise ValueError(
            'reduction="none" gives per-row losses, which the intra-class term has not: pass intra_weight=0'
        )
    if check_finite:
        _validate.check_all_finite((student_logits, "student_logits"), (teacher_logits, "teacher_logits"))
    if detach_teacher:
        teacher_logits = teacher_logits.detach()
    y_s = (upcast(student_logits) / temperature).softmax(1)
    y_t = (upcast(teacher_logits) / temperature).softmax(1)
    inter = 1 - pearson(y_s, y_t, dim=1)
    if reduction == "none":
        return temperature**2 * inter_weight * inter
    loss = inter_weight * _validate.reduce(inter, reduction)
    if intra_weight > 0:
        loss = loss + intra_weight * _validate.reduce(1 - pearson(y_s, y_t, dim=0), reduction)
    return temperature**2 * loss


class DISTLoss(nn.Module):
    r"""DIST, module form of :func:`dist_loss` (stores its arguments only).

    Args:
        temperature: τ > 0 (default 1).
        inter_weight, intra_weight: the two parts' weights (default 1 each).
        reduction: ``"mean"`` (default), ``"sum"``, or ``"none"`` (with ``intra_weight=0`` only).
        detach_teacher: treat the teacher's logits as a constant (default True).
        check_finite: raise on NaN/inf logits (one device sync).

    Shape:
        - student_logits, teacher_logits: (B, C), B ≥ 2 while ``intra_weight > 0``.
        - Output: a scalar, or (B,) with ``reduction="none"``.

    Example:
        >>> loss_fn = DISTLoss(temperature=4.0)
        >>> student_logits = torch.randn(8, 10, requires_grad=True)
        >>> loss_fn(student_logits, torch.randn(8, 10)).backward()

    Reference: Huang et al., "Knowledge Distillation from A Stronger Teacher", NeurIPS 2022.
    """

    def __init__(
        self,
        *,
        temperature: float = 1.0,
        inter_weight: float = 1.0,
        intra_weight: float = 1.0,
        reduction: str = "mean",
        detach_teacher: bool = True,
        check_finite: bool = True,
    ) -> None:
        super().__init__()
        self.temperature = _validate.check_positive(temperature, "temperature")
        self.inter_weight = _validate.check_non_negative(inter_weight, "inter_weight")
        self.intra_weight = _validate.check_non_negative(intra_weight, "intra_weight")
        self.reduction = _validate.check_reduction(reduction)
        self.detach_teacher = detach_teacher
        self.check_finite = check_finite

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        return dist_loss(
            student_logits,
            teacher_logits,
            temperature=self.temperature,
            inter_weight=self.inter_weight,
            intra_weight=self.intra_weight,
            reduction=self.reduction,
            detach_teacher=self.detach_teacher,
            check_finite=self.check_finite,
        )

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, inter_weight={self.inter_weight}, "
            f"intra_weight={self.intra_weight}, reduction={self.reduction!r}"
        )
