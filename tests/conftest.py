"""Shared fixtures and hypothesis settings."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import settings

# Deterministic, bounded property tests: CI machines are small and shared.
settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

#: Devices the tests run on here: CUDA joins where a GPU is present.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


class Linear(torch.nn.Module):
    """A linear classifier on 6 features with logits ×3: objectives' formulas in closed form."""

    def __init__(self, seed, classes=5):
        super().__init__()
        torch.manual_seed(seed)
        self.fc = torch.nn.Linear(6, classes)

    def forward(self, x):
        return self.fc(x) * 3


@pytest.fixture
def fixed():
    """Student, teacher, x, x_adv and labels for checking the objectives' formulas."""
    torch.manual_seed(3)
    x = torch.rand(10, 6)
    x_adv = (x + 0.03 * torch.randn_like(x)).clamp(0, 1)
    return Linear(1), Linear(2), x, x_adv, torch.randint(0, 5, (10,))
