"""KL-divergence distillation losses: the KL every objective uses (optionally on standardised
logits), and IGDM's indirect input-gradient matching."""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from softrank_ad import _deprecation, _validate

#: ``"batchmean"`` is the true KL per sample; the other three are torch's.
KLReduction = Literal["batchmean", "mean", "sum", "none"]
KL_REDUCTIONS = get_args(KLReduction)

# Sun et al.'s standardisation adds this to the standard deviation.
STANDARDIZE_EPS = 1e-7


def upcast(z: torch.Tensor) -> torch.Tensor:
    """Half-precision logits in float32, others as they are."""
    # Divided by τ and normalised in bfloat16, τ²·KL at τ = 30 amplifies the rounding 900 times
    # (a KL below 0 was seen).
    return z.float() if z.dtype in (torch.float16, torch.bfloat16) else z


def standardize(logits: torch.Tensor, *, dim: int = -1) -> torch.Tensor:
    r"""Logit standardisation (Sun et al., CVPR 2024): :math:`(z - \bar z) / (\operatorname{std}(z) + 10^{-7})`
    along ``dim`` (unbiased std, as their code), so the KL compares the shapes of the two
    distributions, not the models' logit scales. Ranks are unchanged by it.

    Example:
        >>> standardize(torch.tensor([[1.0, 2.0, 3.0]]))
        tensor([[-1.0000,  0.0000,  1.0000]])
    """
    _validate.check_tensor(logits, "logits")
    return _standardize(logits, _validate.check_dim(logits, dim, "logits"))


def _standardize(logits: torch.Tensor, dim: int) -> torch.Tensor:
    mean = logits.mean(dim, keepdim=True)
    return (logits - mean) / (logits.std(dim, keepdim=True) + STANDARDIZE_EPS)


def check_logit_pair(
    student_logits: object, teacher_logits: object, names: tuple[str, str] = ("student_logits", "teacher_logits")
) -> None:
    """Two floating (B, C) tensors of one shape."""
    s = _validate.check_tensor(student_logits, names[0])
    t = _validate.check_tensor(teacher_logits, names[1])
    _validate.check_same_shape(s, t, *names)
    if s.dim() != 2:
        raise ValueError(f"{names[0]} must be (B, C) logits, got shape {tuple(s.shape)}")


def distillation_kl(
    z_s: torch.Tensor, z_t: torch.Tensor, temperature: float, reduction: str, standardize_logits: bool = False
) -> torch.Tensor:
    """:func:`kl_divergence` without its checks, for callers that made them once (the KL term,
    on every step of an attack): half precision upcast, optionally standardised, then the KL."""
    z_s, z_t = upcast(z_s), upcast(z_t)
    if standardize_logits:
        z_s, z_t = _standardize(z_s, 1), _standardize(z_t, 1)
    return _kl(z_s, z_t, temperature, reduction)


def _kl(z_s: torch.Tensor, z_t: torch.Tensor, temperature: float, reduction: str) -> torch.Tensor:
    log_p_s, p_t = F.log_softmax(z_s / temperature, dim=1), F.softmax(z_t / temperature, dim=1)
    if reduction == "none":
        return F.kl_div(log_p_s, p_t, reduction="none").sum(1)
    kl = F.kl_div(log_p_s, p_t, reduction="sum" if reduction == "sum" else "batchmean")
    # torch warns on kl_div(reduction="mean"); this is its number without the warning.
    return kl / z_s.shape[1] if reduction == "mean" else kl


@_deprecation.keyword_only("temperature", "reduction")
def kl_divergence(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    reduction: KLReduction = "batchmean",
    standardize_logits: bool = False,
    detach_teacher: bool = True,
    check_finite: bool = True,
) -> torch.Tensor:
    r"""The KL term of every objective here, written KL(S ‖ T) in the papers:

    .. math::
        \mathrm{KL}_b = \sum_c \operatorname{softmax}(z_T / \tau)_{bc}
            \big[\log \operatorname{softmax}(z_T / \tau)_{bc} - \log \operatorname{softmax}(z_S / \tau)_{bc}\big]

    Args:
        student_logits, teacher_logits: (B, C) logits.
        temperature: τ > 0 (the value is the plain KL; ARD scales it by τ² itself).
        reduction: ``"batchmean"`` (default): the KL per sample, averaged over the batch;
            ``"mean"``: averaged over batch *and* classes, as ``nn.KLDivLoss()`` does in the
            official CIFAR-10 code of AdaAD, RSLAD and ARD (C times smaller, so at one learning
            rate those methods take C-times smaller steps); ``"sum"``; ``"none"``: (B,) per sample.
        standardize_logits: apply :func:`standardize` to both sides first [Sun et al., CVPR 2024;
            an option, not in any adversarial-distillation paper here].
        detach_teacher: treat the teacher's logits as a constant (default). Attacks that
            differentiate T(x') w.r.t. x' pass False.
        check_finite: raise on NaN/inf logits (one device sync); False skips it.

    Returns:
        A scalar, or (B,) with ``reduction="none"``; float32 for half-precision logits.

    Example:
        >>> s, t = torch.randn(4, 10, requires_grad=True), torch.randn(4, 10)
        >>> kl_divergence(s, t, temperature=4.0).backward()
        >>> abs(kl_divergence(t, t).item()) < 1e-6   # zero, up to rounding
        True

    Reference: Hinton et al., "Distilling the Knowledge in a Neural Network", 2015.
    """
    check_logit_pair(student_logits, teacher_logits)
    _validate.check_choice(reduction, "reduction", KL_REDUCTIONS)
    temperature = _validate.check_positive(temperature, "temperature")
    if check_finite:
        _validate.check_all_finite((student_logits, "student_logits"), (teacher_logits, "teacher_logits"))
    if detach_teacher:
        teacher_logits = teacher_logits.detach()
    return distillation_kl(student_logits, teacher_logits, temperature, reduction, standardize_logits)


class KLDivergenceLoss(nn.Module):
    r"""Module form of :func:`kl_divergence` (stores its arguments only).

    Args:
        temperature, reduction, standardize_logits, detach_teacher, check_finite: as in
            :func:`kl_divergence`.

    Shape:
        - student_logits, teacher_logits: (B, C).
        - Output: a scalar, or (B,) with ``reduction="none"``.

    Example:
        >>> loss_fn = KLDivergenceLoss(temperature=4.0)
        >>> student_logits = torch.randn(8, 10, requires_grad=True)
        >>> loss_fn(student_logits, torch.randn(8, 10)).backward()
    """

    def __init__(
        self,
        *,
        temperature: float = 1.0,
        reduction: KLReduction = "batchmean",
        standardize_logits: bool = False,
        detach_teacher: bool = True,
        check_finite: bool = True,
    ) -> None:
        super().__init__()
        self.temperature = _validate.check_positive(temperature, "temperature")
        _validate.check_choice(reduction, "reduction", KL_REDUCTIONS)
        self.reduction = reduction
        self.standardize_logits = standardize_logits
        self.detach_teacher = detach_teacher
        self.check_finite = check_finite

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        return kl_divergence(
            student_logits,
            teacher_logits,
            temperature=self.temperature,
            reduction=self.reduction,
            standardize_logits=self.standardize_logits,
            detach_teacher=self.detach_teacher,
            check_finite=self.check_finite,
        )

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, reduction={self.reduction!r}"


def igdm_loss(
    student_adv: torch.Tensor,
    student_reflected: torch.Tensor,
    teacher_adv: torch.Tensor,
    teacher_reflected: torch.Tensor,
    *,
    reduction: KLReduction = "batchmean",
    detach_teacher: bool = True,
    check_finite: bool = True,
) -> torch.Tensor:
    r"""IGDM's indirect input-gradient matching: the KL between the two models' logit differences
    across the adversarial perturbation δ = x' − x,

    .. math::
        \mathrm{KL}\big(\operatorname{softmax}(S(x + \delta) - S(x - \delta)) \,\|\,
            \operatorname{softmax}(T(x + \delta) - T(x - \delta))\big)

    — a finite-difference view of each model's input gradient along δ, matched without a double
    backward. The reflected point x − δ is not clipped to [0, 1], as in the reference code.

    Args:
        student_adv, student_reflected: the student's logits at x + δ and x − δ, (B, C).
        teacher_adv, teacher_reflected: the teacher's, likewise.
        reduction: as in :func:`kl_divergence` (default ``"batchmean"``, as the reference).
        detach_teacher: treat the teacher's logits as constants (default).
        check_finite: raise on NaN/inf logits (one device sync); False skips it.

    Returns:
        A scalar, or (B,) with ``reduction="none"``.

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
        raise ValueError(f"student_adv must be (B, C) logits, got shape {tuple(student_adv.shape)}")
    _validate.check_choice(reduction, "reduction", KL_REDUCTIONS)
    if check_finite:
        _validate.check_all_finite(*zip(tensors, names))
    teacher_difference = teacher_adv - teacher_reflected
    if detach_teacher:
        teacher_difference = teacher_difference.detach()
    return _kl(upcast(student_adv - student_reflected), upcast(teacher_difference), 1.0, reduction)


class IGDMLoss(nn.Module):
    r"""Module form of :func:`igdm_loss` (stores its arguments only).

    Args:
        reduction, detach_teacher, check_finite: as in :func:`igdm_loss`.

    Shape:
        - student_adv, student_reflected, teacher_adv, teacher_reflected: (B, C).
        - Output: a scalar, or (B,) with ``reduction="none"``.

    Example:
        >>> loss_fn = IGDMLoss()
        >>> s_plus = torch.randn(4, 10, requires_grad=True)
        >>> loss_fn(s_plus, torch.randn(4, 10), torch.randn(4, 10), torch.randn(4, 10)).backward()
    """

    @_deprecation.keyword_only("reduction")
    def __init__(
        self, *, reduction: KLReduction = "batchmean", detach_teacher: bool = True, check_finite: bool = True
    ) -> None:
        super().__init__()
        _validate.check_choice(reduction, "reduction", KL_REDUCTIONS)
        self.reduction = reduction
        self.detach_teacher = detach_teacher
        self.check_finite = check_finite

    def forward(
        self,
        student_adv: torch.Tensor,
        student_reflected: torch.Tensor,
        teacher_adv: torch.Tensor,
        teacher_reflected: torch.Tensor,
    ) -> torch.Tensor:
        return igdm_loss(
            student_adv,
            student_reflected,
            teacher_adv,
            teacher_reflected,
            reduction=self.reduction,
            detach_teacher=self.detach_teacher,
            check_finite=self.check_finite,
        )

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"
