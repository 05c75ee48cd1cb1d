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


def _examples_on_path() -> None:
    # The example scripts import their neighbours (models.py, data.py) by plain name.
    import sys
    from pathlib import Path

    examples = str(Path(__file__).resolve().parent.parent / "examples")
    if examples not in sys.path:
        sys.path.insert(0, examples)


_examples_on_path()
