"""The names the docstring examples use (``python -m pytest`` runs them as doctests): small
models and batches, built fresh for every example."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn


def _cnn(seed: int, classes: int = 10) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=2, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, classes),
    )


def _mlp(seed: int, classes: int = 10) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 16), nn.ReLU(), nn.Linear(16, classes))


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    torch.manual_seed(0)
    doctest_namespace.update(
        torch=torch,
        F=F,
        nn=nn,
        # Any classifiers on [0, 1] inputs: an MLP pair, and a CNN pair for Grad-CAM.
        student=_mlp(1),
        teacher=_mlp(2),
        x=torch.rand(4, 3, 4, 4),
        y=torch.tensor([0, 1, 2, 3]),
        cnn=_cnn(3),
        cnn_teacher=_cnn(4),
        images=torch.rand(4, 3, 8, 8),
        labels=torch.tensor([0, 1, 2, 3]),
    )


# The deprecated module aliases warn on import; their own tests import them on purpose.
collect_ignore = ["softrank_ad/dist.py", "softrank_ad/objectives.py"]
