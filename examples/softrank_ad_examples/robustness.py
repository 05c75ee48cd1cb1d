"""Robust accuracy, as every example and benchmark reports it: clean, PGD, CW∞ and AutoAttack.

All attacks run with the model in eval mode (its mode restored after), in float32, L∞ with
random start; AutoAttack is the official implementation (``pyautoattack``), standard version.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from softrank_ad import cw_margin_loss, pgd

Attack = Literal["none", "pgd", "cw"]


def adversarial(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: Attack, *, epsilon: float, step_size: float, steps: int
) -> torch.Tensor:
    """``x`` itself (``"none"``), or PGD on the cross-entropy (``"pgd"``) or on the CW margin
    (``"cw"``, i.e. CW∞) against ``model`` as it is (the caller sets its mode)."""
    if attack == "none":
        return x
    loss = {
        "pgd": lambda u: F.cross_entropy(model(u), y),
        "cw": lambda u: cw_margin_loss(model(u), y, reduction="sum"),
    }[attack]
    return pgd(loss, x, epsilon=epsilon, step_size=step_size, steps=steps)


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode inside the block; every submodule's mode put back after, also on
    an error (one helper for every script that evaluates a model it is training)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


def robust_accuracy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: Attack = "pgd",
    *,
    epsilon: float = 8 / 255,
    step_size: float = 2 / 255,
    steps: int = 20,
) -> float:
    """The fraction of (x, y) that ``model`` (in eval mode) still classifies correctly under ``attack``."""
    with evaluating(model):
        x_adv = adversarial(model, x, y, attack, epsilon=epsilon, step_size=step_size, steps=steps)
        with torch.no_grad():
            return (model(x_adv).argmax(1) == y).float().mean().item()


def evaluate(
    model: nn.Module,
    loader,
    device,
    *,
    epsilon: float = 8 / 255,
    step_size: float = 2 / 255,
    pgd_steps: int = 20,
    cw_steps: int = 30,
    progress: bool = True,
    desc: str = "evaluation",
) -> dict:
    """Clean, PGD-``pgd_steps`` and CW∞-``cw_steps`` accuracy over ``loader``, with a progress bar."""
    attacks = {"clean": ("none", 0), f"pgd{pgd_steps}": ("pgd", pgd_steps), "cw": ("cw", cw_steps)}
    correct, total = dict.fromkeys(attacks, 0.0), 0
    for x, y in tqdm(loader, desc=desc, disable=not progress, leave=False):
        x, y = x.to(device), y.to(device)
        for name, (attack, steps) in attacks.items():
            correct[name] += len(y) * robust_accuracy(
                model, x, y, attack, epsilon=epsilon, step_size=step_size, steps=steps
            )
        total += len(y)
    return {k: v / max(total, 1) for k, v in correct.items()}


def autoattack_accuracy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epsilon: float = 8 / 255,
    seed: int = 0,
    batch_size: int = 256,
    progress: bool = True,
) -> float:
    """Accuracy under AutoAttack (standard: APGD-CE, APGD-T, FAB-T, Square), official code."""
    from pyautoattack import AutoAttack

    with evaluating(model):
        adversary = AutoAttack(model, norm="Linf", eps=epsilon, version="standard", device=x.device, seed=seed)
        adversary.verbose = progress  # AutoAttack prints one line per sub-attack as it goes
        x_adv = adversary.run_standard_evaluation(x, y, batch_size=batch_size)
        if isinstance(x_adv, tuple):
            x_adv = x_adv[0]
        with torch.no_grad():
            return (model(x_adv).argmax(1) == y).float().mean().item()
