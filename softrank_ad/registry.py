"""The methods by name, and :func:`make_objective`: a published method, or its attack with a
loss of your own, in one line."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from softrank_ad.engine import DistillationObjective
from softrank_ad.methods import (
    CAM_ARGUMENTS_0_1,
    AdaADObjective,
    AdaIADObjective,
    ARDObjective,
    IADObjective,
    Method,
    RSLADObjective,
    SAADObjective,
    SmaraADObjective,
    SmaraADPlusPlusObjective,
)
from softrank_ad.terms import Term

#: The methods by name, for :func:`make_objective` and the examples' command lines.
OBJECTIVES: dict[str, type[Method]] = {
    "smaraad": SmaraADObjective,
    "smaraad++": SmaraADPlusPlusObjective,
    "ard": ARDObjective,
    "rslad": RSLADObjective,
    "adaad": AdaADObjective,
    "iad": IADObjective,
    "adaiad": AdaIADObjective,
    "saad": SAADObjective,
}

# Each baseline's official settings, beyond its class defaults (which are already the papers'
# hyperparameters); the fidelity tests hold each entry against a transcription of the code.
_OFFICIAL: dict[str, dict[str, Any]] = {
    # goldblum/AdversariallyRobustDistillation, main.py: the attack in train mode from x + U(-ε, ε)
    # unclipped, nn.KLDivLoss() (a mean over classes too), S(x') from the attack, then S(x).
    "ard": dict(attack_mode="train", kl_reduction="mean", clip_start=False, student_forwards=("adv", "clean")),
    # zibojia/RSLAD, resnet18_rslad_cifar10.py: x + 0.001·N(0, 1) unclipped, torch.mean of the
    # KL's elements, S(x') then S(x).
    "rslad": dict(kl_reduction="mean", clip_start=False, student_forwards=("adv", "clean")),
    # boyellow/AdaAD, main.py: S(x) before S(x') whatever the weights, nn.KLDivLoss() on CIFAR-10.
    "adaad": dict(kl_reduction="mean", clip_start=False, student_forwards=("clean", "adv")),
    # ZFancy/IAD, IAD-I.py: ARD's attack in train mode; S(x') is run twice (once for a value the
    # loss never uses), then S(x) anew in the introspection term and in the cross-entropy.
    "iad": dict(attack_mode="train", clip_start=False, student_forwards=("adv", "adv", "clean", "clean")),
    # boyellow/AdaAD, main.py (AdaAD_with_IAD1): S(x), S(x'), then S(x) anew in both terms.
    "adaiad": dict(clip_start=False, student_forwards=("clean", "adv", "clean", "clean")),
    # HongsinLee/saad, saad.py: S(x'), S(x − δ), S(x), the last even at --beta 0.
    "saad": dict(clip_start=False, student_forwards=("adv", "reflected", "clean")),
}


def official_options(name: str) -> dict[str, Any]:
    """The engine options with which a baseline reproduces its official code: the adversarial
    batch, the loss, the student's gradient and its BatchNorm statistics after a training call,
    equal to float32 rounding (tested against a transcription of each repository). SmaraAD and
    SmaraAD++ have none: no official code is public.

    The differences these options remove are small: the official attacks start from x + noise
    unclipped (on pixels at 0 or 1 the first gradient is taken outside [0, 1]); their student
    forwards come in a fixed order, some repeated, which sets the BatchNorm running statistics;
    ARD, RSLAD and AdaAD's CIFAR-10 code averages the KL over classes too. (IAD and AdaIAD drop
    one of their named forwards before the introspection starts; an objective rebuilt with
    ``loss=`` or ``add=`` keeps them all.)

    Example:
        >>> make_objective("adaad", student, teacher, **official_options("adaad")).student_forwards
        ('clean', 'adv')
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a method's name (str), got {type(name).__name__}")
    if name.lower() not in _OFFICIAL:
        raise ValueError(f"no official settings for {name!r}; methods with official code: {sorted(_OFFICIAL)}")
    return dict(_OFFICIAL[name.lower()])


# Names removed before 0.1, so that old code fails with directions instead of "unexpected keyword".
_REMOVED = {
    "alpha": "adv_weight= (SmaraAD, AdaAD: the weight of the adversarial terms against the clean ones) "
    "or ce_weight= (ARD, SmaraAD++: the weight of the clean cross-entropy, 1 − the old alpha)",
    "check_inputs": "check_finite=",
}


def make_objective(
    name: str,
    student: nn.Module,
    teacher: nn.Module,
    *,
    loss: Term | None = None,
    add: Term | None = None,
    **hparams: Any,
) -> DistillationObjective:
    """A published objective by name (any case): ``"smaraad"``, ``"smaraad++"``, ``"ard"``,
    ``"rslad"``, ``"adaad"``, ``"iad"``, ``"adaiad"`` or ``"saad"``; ``hparams`` are the keyword
    arguments of the method's class (checked against its signature, so a misspelt one is named).

    ``loss=`` replaces the method's outer loss and ``add=`` adds terms to it (to the replacement,
    if both are given); both take :mod:`softrank_ad.terms`. Either returns a plain
    :class:`~softrank_ad.engine.DistillationObjective` with the method's attack and engine
    options, whose ``loss`` is what it computes; without them, the method's class.

    Example:
        >>> from softrank_ad.terms import DIST, KendallMatching
        >>> make_objective("adaad", student, teacher, add=0.5 * KendallMatching()).loss
        kl_adv + 0.5 * kendall_adv
        >>> type(make_objective("adaad", student, teacher, loss=DIST())).__name__
        'DistillationObjective'
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in OBJECTIVES:
        raise ValueError(f"unknown method {name!r}; choose one of {sorted(OBJECTIVES)}")
    cls = OBJECTIVES[key]
    accepted = set(inspect.signature(cls).parameters) - {"student", "teacher"}
    for arg in hparams:
        if arg in _REMOVED:
            raise TypeError(f"{arg}= was renamed: use {_REMOVED[arg]}")
        deprecated = arg in CAM_ARGUMENTS_0_1 and "alignment" in accepted  # warned by the class
        if arg not in accepted and not deprecated:
            raise TypeError(f"{cls.__name__} got an unexpected keyword argument {arg!r}; it takes {sorted(accepted)}")
    for arg, value in (("loss", loss), ("add", add)):
        if value is not None and not isinstance(value, Term):
            raise TypeError(f"{arg} must be a Term (see softrank_ad.terms), got {type(value).__name__}")
    objective = cls(student, teacher, **hparams)
    if loss is None and add is None:
        return objective
    base = loss if loss is not None else objective.loss
    return DistillationObjective(
        student, teacher, attack=objective.attack, loss=base + add if add is not None else base, **objective.options
    )
