"""KL-divergence distillation losses: the KL every objective uses (optionally on standardised
logits), and IGDM's indirect input-gradient matching."""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from softrank_ad import _validate

KLReduction = Literal["batchmean", "mean"]

# Sun et al.'s standardisation adds this to the standard deviation.
STANDARDIZE_EPS = 1e-7


def _upcast(z: torch.Tensor) -> torch.Tensor:
    # Half-precision logits are divided by τ and normalised in float32: rounded to bfloat16
    # first, τ²·KL at τ = 30 amplifies the rounding 900 times (a KL below 0 was seen).
    return z.float() if z.dtype in (torch.float16, torch.bfloat16) else z


def standardize(logits: torch.Tensor, dim: int = 1) -> torch.Tensor:
    r"""Logit standardisation (Sun et al., CVPR 2024): :math:`(z - \bar z) / (\operatorname{std}(z) + 10^{-7})`
    along ``dim`` (unbiased std, as their code), so the KL compares the shapes of the two
    distributions, not the models' logit scales. Ranks are unchanged by it."""
    mean = logits.mean(dim, keepdim=True)
    return (logits - mean) / (logits.std(dim, keepdim=True) + STANDARDIZE_EPS)


def kl_divergence(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 1.0,
    reduction: KLReduction = "batchmean",
    *,
    standardize_logits: bool = False,
) -> torch.Tensor:
    r"""The KL term of every objective here, written KL(S ‖ T) in the papers:

    ``kl_div(log_softmax(z_S / τ), softmax(z_T / τ), reduction=reduction)``.

    ``"batchmean"`` (the default) sums over classes and averages over the batch: the true KL per
    sample. ``"mean"`` averages over batch *and* classes, as ``nn.KLDivLoss()`` does in the official
    CIFAR-10 code of AdaAD, RSLAD and ARD: C times smaller, so at the same learning rate those
    methods take C-times smaller steps (C = 10 on CIFAR-10). ``standardize_logits=True`` applies
    :func:`standardize` to both sides first [Sun et al., CVPR 2024; an option, not in any
    adversarial-distillation paper here]. Half-precision logits are computed, and the KL
    returned, in float32.

    Example:
        >>> s, t = torch.randn(4, 10, requires_grad=True), torch.randn(4, 10)
        >>> kl_divergence(s, t).backward()
    """
    _validate.check_choice(reduction, "kl_reduction", get_args(KLReduction))
    z_s, z_t = _upcast(student_logits), _upcast(teacher_logits)
    if standardize_logits:
        z_s, z_t = standardize(z_s), standardize(z_t)
    kl = F.kl_div(
        F.log_softmax(z_s / temperature, dim=1),
        F.softmax(z_t / temperature, dim=1),
        reduction="batchmean",
    )
    # torch warns on kl_div(reduction="mean"); this is the same number without the warning.
    return kl / student_logits.shape[1] if reduction == "mean" else kl


def igdm_loss(
    student_adv: torch.Tensor,
    student_reflected: torch.Tensor,
    teacher_adv: torch.Tensor,
    teacher_reflected: torch.Tensor,
    *,
    reduction: KLReduction = "batchmean",
    check_finite: bool = True,
) -> torch.Tensor:
    r"""IGDM's indirect input-gradient matching: the KL between the two models' logit differences
    across the adversarial perturbation δ = x' − x,

    .. math::
        \mathrm{KL}\big(\operatorname{softmax}(S(x + \delta) - S(x - \delta)) \,\|\,
            \operatorname{softmax}(T(x + \delta) - T(x - \delta))\big)

    — a finite-difference view of each model's input gradient along δ, matched without a double
    backward. The teacher side is detached. The reflected point x − δ is not clipped to [0, 1],
    as in the reference code.

    Args:
        student_adv, student_reflected: the student's logits at x + δ and x − δ, (B, C).
        teacher_adv, teacher_reflected: the teacher's, likewise.
        reduction: ``"batchmean"`` (default, as the reference) or ``"mean"``, as in
            :func:`kl_divergence`.
        check_finite: raise on NaN/inf logits (one device sync); False skips it.

    Example:
        >>> s_plus, s_minus = torch.randn(4, 10, requires_grad=True), torch.randn(4, 10)
        >>> t_plus, t_minus = torch.randn(4, 10), torch.randn(4, 10)
        >>> igdm_loss(s_plus, s_minus, t_plus, t_minus).backward()

    Reference: "Indirect Gradient Matching for Adversarial Robust Distillation" (IGDM,
    arXiv:2312.03286), added there to AdaAD's KL with a weight that grows linearly over training.
    """
    names = ("student_adv", "student_reflected", "teacher_adv", "teacher_reflected")
    tensors = (student_adv, student_reflected, teacher_adv, teacher_reflected)
    for tensor, name in zip(tensors, names):
        _validate.check_tensor(tensor, name)
        _validate.check_same_shape(student_adv, tensor, "student_adv", name)
    if student_adv.dim() != 2:
        raise ValueError(f"logits must be (B, C), got shape {tuple(student_adv.shape)}")
    _validate.check_choice(reduction, "reduction", get_args(KLReduction))
    if check_finite:
        _validate.check_all_finite(*zip(tensors, names))
    teacher_difference = (teacher_adv - teacher_reflected).detach()
    return kl_divergence(student_adv - student_reflected, teacher_difference, 1.0, reduction)


class IGDMLoss(nn.Module):
    r"""Module form of :func:`igdm_loss` (stores its arguments only).

    Args:
        reduction: ``"batchmean"`` (default) or ``"mean"``.

    Shape:
        - student_adv, student_reflected, teacher_adv, teacher_reflected: (B, C).
        - Output: a scalar.

    Example:
        >>> loss_fn = IGDMLoss()
        >>> s_plus = torch.randn(4, 10, requires_grad=True)
        >>> loss_fn(s_plus, torch.randn(4, 10), torch.randn(4, 10), torch.randn(4, 10)).backward()
    """

    def __init__(self, reduction: KLReduction = "batchmean") -> None:
        super().__init__()
        _validate.check_choice(reduction, "reduction", get_args(KLReduction))
        self.reduction = reduction

    def forward(self, student_adv, student_reflected, teacher_adv, teacher_reflected) -> torch.Tensor:
        return igdm_loss(student_adv, student_reflected, teacher_adv, teacher_reflected, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"
