"""The toy problem of SmaraAD's supplementary (§2.4, Fig. 5), in one command.

Random 2-D points with random classes, an L∞ box of radius ε around each. A teacher MLP is
adversarially trained on them (PGD-AT); two smaller students distil it, one with SmaraAD's slack
matching and one with a KL-based method (AdaAD). The script prints clean and robust accuracy
(PGD inside each box) for all three and draws their decision regions: a point whose box holds
more than one colour is vulnerable.

The MLPs have no spatial layer, so there is no Grad-CAM map to align: the SmaraAD student here
uses slack matching alone (``align_weight=0``, ``attack_align_weight=0``).

    python examples/toy_distill.py                 # about 30 s on 2 CPU cores
    python examples/toy_distill.py --out runs/toy --points 60 --seed 1
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from softrank_ad import make_objective, pgd


def mlp(width: int, classes: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(2, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, classes))


def make_points(n: int, classes: int, epsilon: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Points in [0.05, 0.95]², more than 2.5ε apart in L∞: boxes never overlap, so every point
    can be classified robustly and only the models decide which are."""
    g = torch.Generator().manual_seed(seed)
    points: list[torch.Tensor] = []
    for _ in range(10_000 * n):
        if len(points) == n:
            return torch.stack(points), torch.randint(0, classes, (n,), generator=g)
        p = 0.05 + 0.9 * torch.rand(2, generator=g)
        if all((p - q).abs().max() > 2.5 * epsilon for q in points):
            points.append(p)
    raise ValueError(f"cannot place {n} points 2.5*epsilon={2.5 * epsilon:.3g} apart: lower --points or --epsilon")


def attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float, steps: int = 20) -> torch.Tensor:
    return pgd(lambda u: F.cross_entropy(model(u), y), x, epsilon=epsilon, step_size=epsilon / 4, steps=steps)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).float().mean().item()
    x_adv = attack(model, x, y, epsilon)
    with torch.no_grad():
        robust = (model(x_adv).argmax(1) == y).float().mean().item()
    return clean, robust


def train_teacher(x, y, classes, epsilon, iterations, progress) -> nn.Module:
    teacher = mlp(256, classes)
    optimizer = torch.optim.Adam(teacher.parameters(), lr=3e-3)
    for _ in tqdm(range(iterations), desc="teacher (PGD-AT)", disable=not progress):
        teacher.eval()
        x_adv = attack(teacher, x, y, epsilon, steps=5)
        teacher.train()
        optimizer.zero_grad()
        F.cross_entropy(teacher(x_adv), y).backward()
        optimizer.step()
    return teacher.eval()


def train_student(method, teacher, x, y, classes, epsilon, iterations, progress, **hparams) -> nn.Module:
    student = mlp(64, classes)
    objective = make_objective(method, student, teacher, epsilon=epsilon, step_size=epsilon / 4, steps=5, **hparams)
    optimizer = torch.optim.Adam(objective.parameters(), lr=3e-3)
    for _ in tqdm(range(iterations), desc=f"student ({method})", disable=not progress):
        optimizer.zero_grad()
        objective(x, y).backward()
        optimizer.step()
    return student.eval()


def plot(models: dict[str, nn.Module], rows: dict, x, y, epsilon: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Rectangle

    colours = plt.get_cmap("tab10").colors[: int(y.max()) + 1]
    grid = torch.linspace(0, 1, 300)
    gx, gy = torch.meshgrid(grid, grid, indexing="xy")
    cells = torch.stack([gx.flatten(), gy.flatten()], 1)
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 5), constrained_layout=True)
    for ax, (title, model) in zip(axes, models.items()):
        with torch.no_grad():
            regions = model(cells).argmax(1).reshape(gx.shape)
        ax.imshow(regions.numpy(), origin="lower", extent=(0, 1, 0, 1), cmap=ListedColormap(colours), alpha=0.35,
                  vmin=0, vmax=len(colours) - 1, interpolation="nearest")
        for (px, py), label in zip(x.tolist(), y.tolist()):
            ax.add_patch(Rectangle((px - epsilon, py - epsilon), 2 * epsilon, 2 * epsilon, fill=False,
                                   edgecolor=colours[label], linewidth=1.2))
        ax.scatter(x[:, 0].numpy(), x[:, 1].numpy(), c=[colours[i] for i in y.tolist()], s=12, edgecolors="k", linewidths=0.4)
        scores = f"clean {rows[title]['clean']:.0%}, robust {rows[title]['robust']:.0%}"
        ax.set(title=f"{title}\n{scores}", xlim=(0, 1), ylim=(0, 1), xticks=[], yticks=[])
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=40)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--epsilon", type=float, default=0.03, help="L∞ box radius in the unit square")
    parser.add_argument("--teacher-iterations", type=int, default=1500)
    parser.add_argument("--student-iterations", type=int, default=2000)
    parser.add_argument("--gamma", type=float, default=1.0, help="soft-rank γ of the SmaraAD student")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/toy"))
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    progress = not args.no_progress
    start = time.time()
    x, y = make_points(args.points, args.classes, args.epsilon, args.seed)
    teacher = train_teacher(x, y, args.classes, args.epsilon, args.teacher_iterations, progress)
    common = (teacher, x, y, args.classes, args.epsilon, args.student_iterations, progress)
    models = {
        "Teacher (PGD-AT, 256 wide)": teacher,
        "SmaraAD student (64 wide)": train_student(
            "smaraad", *common, gamma=args.gamma, align_weight=0.0, attack_align_weight=0.0
        ),
        "AdaAD student (64 wide, KL)": train_student("adaad", *common),
    }

    rows = {}
    for name, model in models.items():
        clean, robust = accuracy(model, x, y, args.epsilon)
        rows[name] = {"clean": clean, "robust": robust}
    table = ["| model | clean acc | robust acc (PGD-20, ε box) |", "|---|---|---|"]
    table += [f"| {name} | {r['clean']:.1%} | {r['robust']:.1%} |" for name, r in rows.items()]
    print("\n".join(table))
    plot(models, rows, x, y, args.epsilon, args.out / "toy_decision_regions.png")
    result = {"args": {k: str(v) for k, v in vars(args).items()}, "results": rows, "seconds": time.time() - start}
    (args.out / "toy_results.json").write_text(json.dumps(result, indent=2))
    (args.out / "toy_results.md").write_text("\n".join(table) + "\n")
    print(f"wrote {args.out / 'toy_decision_regions.png'} and toy_results.json/.md in {result['seconds']:.0f}s")
    return result


if __name__ == "__main__":
    main()
