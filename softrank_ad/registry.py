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
    ARDObjective,
    Method,
    RSLADObjective,
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
}

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
    ``"rslad"`` or ``"adaad"``; ``hparams`` are the keyword arguments of the method's class
    (checked against its signature, so a misspelt one is named).

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
