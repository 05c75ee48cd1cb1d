"""L∞ projected gradient ascent (PGD), the inner maximisation shared by every objective."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from softrank_ad import _deprecation, _validate

Start = Literal["uniform", "normal", "none"]
STARTS = get_args(Start)


def check_budget(epsilon: float, step_size: float, steps: int) -> None:
    """ε and the step size must be finite and ≥ 0, steps a non-negative int."""
    _validate.check_non_negative(epsilon, "epsilon")
    _validate.check_non_negative(step_size, "step_size")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")


def random_start(
    x: torch.Tensor, epsilon: float, start: Start = "uniform", std: float = 0.001, clip: bool = True
) -> torch.Tensor:
    """x plus uniform noise in [−ε, ε] (``"uniform"``), std·N(0, 1) (``"normal"``, RSLAD) or nothing,
    clipped to the ε-ball and to [0, 1]; ``clip=False`` keeps x + noise as it is, as the official
    training attacks of ARD, RSLAD, AdaAD, IAD and SAAD start (the first step's projection clips)."""
    if start == "uniform":
        noisy = x + torch.empty_like(x).uniform_(-epsilon, epsilon)
    elif start == "normal":
        noisy = x + std * torch.randn_like(x)
    elif start == "none":
        noisy = x.clone()
    else:
        raise ValueError(f"start must be one of {STARTS}, got {start!r}")
    return project(noisy, x, epsilon) if clip else noisy


def project(x_adv: torch.Tensor, x: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Clip into the L∞ ball of radius ε around x, then into [0, 1]."""
    return torch.min(torch.max(x_adv, x - epsilon), x + epsilon).clamp_(0.0, 1.0)


def pgd(
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    epsilon: float,
    step_size: float,
    steps: int,
    start: Start = "uniform",
    x_start: torch.Tensor | None = None,
    clip_start: bool = True,
) -> torch.Tensor:
    r"""L∞ PGD that maximises ``loss_fn`` around ``x``.

    .. math::
        x'_{k+1} = \Pi_{[0,1]} \Pi_{B_\infty(x, \varepsilon)}
            \big(x'_k + \eta \operatorname{sign} \nabla_{x'} L(x'_k)\big)

    Args:
        loss_fn: maps a (B, ...) input to a scalar to maximise. Only its gradient w.r.t. the input
            is taken: no parameter ``.grad`` is written.
        x: clean inputs: a floating (B, ...) batch with finite values in [0, 1].
        epsilon, step_size, steps: the budget ε, the step η and the number of steps K.
        start: the random start (see ``random_start``), unless ``x_start`` is given.
        x_start: an explicit start, of ``x``'s shape (projected into the ball first).
        clip_start: project the start (random or given) into the ε-ball and [0, 1] (default);
            False starts from it as it is, as the official training attacks of ARD, RSLAD and
            AdaAD do: on pixels at 0 or 1 their first gradient is taken outside [0, 1].

    Returns:
        The adversarial inputs, detached.

    Example:
        >>> x_adv = pgd(lambda u: F.cross_entropy(student(u), y), x,
        ...             epsilon=8 / 255, step_size=2 / 255, steps=10)
        >>> bool((x_adv - x).abs().max() <= 8 / 255 + 1e-6)
        True

    Reference: Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks",
    ICLR 2018.
    """
    check_budget(epsilon, step_size, steps)
    _validate.check_images(x, "x")
    if not isinstance(clip_start, bool):
        raise TypeError(f"clip_start must be a bool, got {type(clip_start).__name__}")
    if x_start is not None:
        _validate.check_tensor(x_start, "x_start")
        if x_start.shape != x.shape:
            raise ValueError(f"x_start must have the shape of x {tuple(x.shape)}, got {tuple(x_start.shape)}")
        x_start = project(x_start.detach(), x.detach(), epsilon) if clip_start else x_start.detach()
    return ascend(
        loss_fn,
        x,
        epsilon=epsilon,
        step_size=step_size,
        steps=steps,
        x_start=x_start if x_start is not None else random_start(x.detach(), epsilon, start, clip=clip_start),
    )


def ascend(
    loss_fn, x: torch.Tensor, *, epsilon: float, step_size: float, steps: int, x_start: torch.Tensor
) -> torch.Tensor:
    """The PGD iterations of :func:`pgd` without its argument checks, for callers that made them."""
    x = x.detach()
    x_adv = x_start.detach()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        with torch.enable_grad():
            loss = loss_fn(x_adv)
            (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = project(x_adv.detach() + step_size * grad.sign(), x, epsilon)
    return x_adv.detach()


@_deprecation.keyword_only("kappa")
def cw_margin_loss(
    logits: torch.Tensor, y: torch.Tensor, *, kappa: float = 50.0, reduction: str = "mean", check_finite: bool = True
) -> torch.Tensor:
    r"""Carlini–Wagner margin per sample, :math:`\max_{j \neq y_b} z_{b,j} - z_{b,y_b}` clamped at
    −κ; maximising it pushes every sample across the decision boundary (the CW∞ attack).

    Args:
        logits: (B, C) logits, C ≥ 2.
        y: (B,) class indices.
        kappa: κ ≥ 0, the confidence at which a sample stops counting.
        reduction: ``"mean"`` (default) | ``"sum"`` | ``"none"``; PGD takes the gradient's sign,
            so ``"mean"`` and ``"sum"`` give the same attack.
        check_finite: check the labels' range (one device sync); False skips it.

    Example:
        >>> logits = torch.tensor([[2.0, 0.5, -1.0]], requires_grad=True)
        >>> cw_margin_loss(logits, torch.tensor([0]))
        tensor(-1.5000, grad_fn=<MeanBackward0>)

    Reference: Carlini and Wagner, "Towards Evaluating the Robustness of Neural Networks", 2017.
    """
    _validate.check_tensor(logits, "logits")
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise ValueError(f"logits must be (B, C) with C >= 2, got shape {tuple(logits.shape)}")
    y = _validate.check_labels(y, logits.shape[0], logits.shape[1] if check_finite else None, "y")
    kappa = _validate.check_non_negative(kappa, "kappa")
    reduction = _validate.check_reduction(reduction)
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf")).amax(1)
    return _validate.reduce((others - true).clamp(min=-kappa), reduction)


class CWMarginLoss(nn.Module):
    r"""Module form of :func:`cw_margin_loss` (stores its arguments only).

    Args:
        kappa, reduction, check_finite: as in :func:`cw_margin_loss`.

    Shape:
        - logits: (B, C); y: (B,) integer labels.
        - Output: a scalar, or (B,) with ``reduction="none"``.

    Example:
        >>> logits = torch.randn(4, 10, requires_grad=True)
        >>> CWMarginLoss()(logits, torch.tensor([0, 1, 2, 3])).backward()
    """

    def __init__(self, *, kappa: float = 50.0, reduction: str = "mean", check_finite: bool = True) -> None:
        super().__init__()
        self.kappa = _validate.check_non_negative(kappa, "kappa")
        self.reduction = _validate.check_reduction(reduction)
        self.check_finite = check_finite

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return cw_margin_loss(logits, y, kappa=self.kappa, reduction=self.reduction, check_finite=self.check_finite)

    def extra_repr(self) -> str:
        return f"kappa={self.kappa}, reduction={self.reduction!r}"
