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


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    torch.manual_seed(0)
    images, labels = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    doctest_namespace.update(
        torch=torch,
        F=F,
        nn=nn,
        # Any classifiers of images in [0, 1]; small CNNs, since Grad-CAM needs a spatial layer.
        student=_cnn(1),
        teacher=_cnn(2),
        x=images,
        y=labels,
        loader=[(images, labels)],
        cnn=_cnn(3),
        cnn_teacher=_cnn(4),
        images=images.clone(),
        labels=labels.clone(),
    )


# The deprecated module aliases warn on import; their own tests import them on purpose.
collect_ignore = ["softrank_ad/dist.py", "softrank_ad/objectives.py"]
