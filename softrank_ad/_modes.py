"""Train/eval modes saved and restored, and model wrappers seen through: shared by the layers
that run user models (attribution, objectives) so that no call leaves a mode changed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DataParallel / DistributedDataParallel wrappers."""
    while isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        model = model.module
    return model


@contextmanager
def modes_restored(*models: nn.Module) -> Iterator[None]:
    """Every submodule's train/eval mode put back on exit, also after an error."""
    modes = [(m, m.training) for model in models for m in model.modules()]
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


@contextmanager
def eval_mode(*models: nn.Module) -> Iterator[None]:
    """Every submodule of ``models`` in eval mode inside the block; each one's mode restored after."""
    with modes_restored(*models):
        for model in models:
            model.eval()
        yield
