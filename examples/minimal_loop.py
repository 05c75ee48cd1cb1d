"""A plain training loop, and the same loop distilling a robust teacher with SmaraAD.

The lines marked ``# SmaraAD`` are the whole change. Runs on random data in seconds:

    python examples/minimal_loop.py
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from softrank_ad import make_objective
from softrank_ad_examples import models


def batches(steps: int, batch: int = 16):
    for _ in range(steps):
        yield torch.rand(batch, 3, 32, 32), torch.randint(0, 10, (batch,))


def train_plain(student, steps: int = 3) -> float:
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    student.train()
    for x, y in batches(steps):
        loss = F.cross_entropy(student(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss.item()


def train_smaraad(student, teacher, steps: int = 3, epochs_done: int = 0) -> float:
    objective = make_objective("smaraad", student, teacher, steps=2)  # SmaraAD: wrap the models
    optimizer = torch.optim.SGD(
        objective.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4
    )  # SmaraAD: student's parameters
    student.train()
    for x, y in batches(steps):
        loss = objective(x, y, epoch=epochs_done)  # SmaraAD: attack + outer loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss.item()


def main() -> None:
    torch.manual_seed(0)
    # Inputs stay in [0, 1]: the models normalise inside, so attacks work in pixel space.
    teacher = models.build("wrn34_10", width=1).eval()  # load your robust teacher's weights here
    print(f"plain loop,   last loss {train_plain(models.build('resnet18', width=8)):.4f}")
    print(f"SmaraAD loop, last loss {train_smaraad(models.build('resnet18', width=8), teacher):.4f}")


if __name__ == "__main__":
    main()
