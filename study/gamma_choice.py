"""Evidence for the default γ: how soft and hard Spearman agree on real classifier logits.

Trains two small CNNs briefly on CIFAR-10 (an ImageFolder tree, e.g. the JPEG copy in
``../shared/data``), takes their logits on test images, and reports for each γ:

- ``|soft − hard|``: mean absolute gap between soft ρ and scipy's Spearman ρ of the two models'
  logit rows (how faithful the surrogate is);
- ``Spearman(soft ρ, hard ρ)``: whether soft ρ orders the rows as hard ρ does;
- ``live pairs``: the share of class pairs (i, j) whose σ'(γ Δ) is above 1% of its peak, i.e.
  that still pass gradient (how trainable it is).

Usage:
    python study/gamma_choice.py --data-dir /tmp/cifar10-jpeg
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn
from torchvision import datasets, transforms

from softrank_ad import soft_spearman

GAMMAS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(128, 10),
    )


def train(model: nn.Module, loader, epochs: int) -> nn.Module:
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(epochs):
        for x, y in loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="ImageFolder root with train/ and test/")
    parser.add_argument("--train-images", type=int, default=10000)
    parser.add_argument("--test-images", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    torch.manual_seed(0)
    tf = transforms.ToTensor()
    train_set = datasets.ImageFolder(f"{args.data_dir}/train", tf)
    test_set = datasets.ImageFolder(f"{args.data_dir}/test", tf)
    pick = lambda ds, k: torch.utils.data.Subset(ds, torch.randperm(len(ds))[:k].tolist())  # noqa: E731
    loader = torch.utils.data.DataLoader(pick(train_set, args.train_images), batch_size=128, shuffle=True)
    test_x = torch.stack([x for x, _ in pick(test_set, args.test_images)])

    start = time.time()
    models = [train(small_cnn(), loader, args.epochs), train(small_cnn(), loader, args.epochs - 1)]
    with torch.no_grad():
        a, b = (m(test_x).double() for m in models)
    print(f"trained two CNNs in {time.time() - start:.0f}s; logit row std {a.std(-1).mean():.2f}")

    hard = np.array([spearmanr(u, v).statistic for u, v in zip(a.numpy(), b.numpy())])
    gaps = (a.unsqueeze(-1) - a.unsqueeze(-2)).abs()
    off_diagonal = ~torch.eye(a.shape[-1], dtype=torch.bool)
    results = []
    for gamma in GAMMAS:
        soft = soft_spearman(a, b, gamma=gamma).numpy()
        s = torch.sigmoid(gamma * gaps[:, off_diagonal])
        live = ((s * (1 - s)) > 0.01 * 0.25).double().mean().item()
        results.append(
            {
                "gamma": gamma,
                "mean_abs_gap": float(np.abs(soft - hard).mean()),
                # Does soft ρ order the rows as hard ρ does? That is what a loss on it optimises.
                "rank_agreement": float(spearmanr(soft, hard).statistic),
                "live_pairs": live,
            }
        )
    print("| γ | mean abs(soft ρ − hard ρ) | Spearman(soft ρ, hard ρ) over rows | live pairs |")
    print("|---|---|---|---|")
    for r in results:
        print(f"| {r['gamma']} | {r['mean_abs_gap']:.3f} | {r['rank_agreement']:.3f} | {r['live_pairs']:.2f} |")
    print(json.dumps({"hard_rho_mean": float(hard.mean()), "rows": results}))


if __name__ == "__main__":
    main()
