"""The toy problem of SmaraAD's supplementary (§2.4, Fig. 5), over several seeds, in one command.

Random 2-D points with random classes, an L∞ box of radius ε around each. A teacher MLP is
adversarially trained on them (PGD-AT); smaller students distil it, one with SmaraAD's slack
matching and one with a KL-based method (AdaAD), from the same initialisation. For each seed (a
new point set, teacher and student initialisation) the script measures

- clean and robust accuracy (PGD-20 inside each box) on the points;
- agreement with the teacher's decision regions, the measure the paper's claim is about: the
  fraction of a dense 200×200 grid of the unit square, and of an 11×11 grid inside every box,
  where the student predicts the teacher's class.

It prints mean ± std over seeds (and, with AdaAD in the grid, each student's paired difference
against it) and draws the decision regions of the first seed (teacher and the first three
students): the background
is each model's predicted class, each square is a point's ε-box in its class colour; a box whose
background holds more than one colour is a point the model can be attacked at.

The MLPs have no spatial layer, so there is no Grad-CAM map to align: SmaraAD here is slack
matching alone (``align_weight=0``, ``attack_align_weight=0``). Students train with Adam, which
is invariant to the loss's scale, so any gap here is not a learning-rate effect.

    python examples/toy_distill.py          # 3 seeds, SmaraAD vs AdaAD: 44 s on 2 cores (AMD EPYC Zen 4), 29 s (Intel Xeon, AVX-512)
    python examples/toy_distill.py --seeds 10 --configs all --out runs/toy-study   # the whole grid
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from softrank_ad import make_objective
from softrank_ad_examples.configs import CONFIGS
from softrank_ad_examples.models import Sharpened
from softrank_ad_examples.robustness import adversarial, robust_accuracy
from softrank_ad_examples.stats import format_difference

TEACHER = "Teacher (PGD-AT, 256 wide)"
#: Student configurations, by their names in the grid the method study uses (softrank_ad_examples.
#: configs): the ones that apply to a model without a spatial layer. ``smaraad`` is the paper reading.
TOY_CONFIGS = [
    "adaad",
    "smaraad",
    "rslad",
    "iad",
    "adaiad",
    "saad",
    *(f"{m}-k{k}" for k in (3, 10) for m in ("adaad", "smaraad")),
    "smaraad-kl0.5",
    "smaraad-kl1.0",
    "smaraad-gamma0.3",
    "smaraad-gamma3.0",
    "smaraad-gamma10.0",
    "smaraad-std",
    "smaraad-dcg",
]
DEFAULT_CONFIGS = ["smaraad", "adaad"]
LABELS = {"smaraad": "SmaraAD student (64 wide, slack matching)", "adaad": "AdaAD student (64 wide, KL)"}


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


def attack_kwargs(epsilon: float, steps: int) -> dict:
    return dict(epsilon=epsilon, step_size=epsilon / 4, steps=steps)


def train_teacher(x, y, classes, epsilon, iterations, progress=False) -> nn.Module:
    teacher = mlp(256, classes)
    optimizer = torch.optim.Adam(teacher.parameters(), lr=3e-3)
    for _ in tqdm(range(iterations), desc="teacher (PGD-AT)", disable=not progress, leave=False):
        teacher.eval()
        x_adv = adversarial(teacher, x, y, "pgd", **attack_kwargs(epsilon, 5))
        teacher.train()
        optimizer.zero_grad()
        F.cross_entropy(teacher(x_adv), y).backward()
        optimizer.step()
    return teacher.eval()


def train_student(config, teacher, x, y, classes, epsilon, iterations, seed, progress=False) -> nn.Module:
    """A 64-wide student distilled with ``config``; the initialisation depends on ``seed`` only,
    so every configuration of a seed starts from the same weights."""
    spec = CONFIGS[config]
    torch.manual_seed(seed)
    student = mlp(64, classes)
    hparams = spec.hparams
    if spec.method == "smaraad":
        hparams = {"align_weight": 0.0, "attack_align_weight": 0.0, **hparams}
    target = teacher if spec.teacher_sharpness == 1 else Sharpened(teacher, spec.teacher_sharpness)
    objective = make_objective(spec.method, student, target, **attack_kwargs(epsilon, 5), **hparams)
    optimizer = torch.optim.Adam(objective.parameters(), lr=3e-3)
    for _ in tqdm(range(iterations), desc=f"student ({config})", disable=not progress, leave=False):
        optimizer.zero_grad()
        objective(x, y).backward()
        optimizer.step()
    return student.eval()


def grid(n: int = 200) -> torch.Tensor:
    line = torch.linspace(0, 1, n)
    gx, gy = torch.meshgrid(line, line, indexing="xy")
    return torch.stack([gx.flatten(), gy.flatten()], 1)


def box_points(x: torch.Tensor, epsilon: float, per_side: int = 11) -> torch.Tensor:
    offsets = torch.linspace(-epsilon, epsilon, per_side)
    ox, oy = torch.meshgrid(offsets, offsets, indexing="xy")
    return (x[:, None, :] + torch.stack([ox.flatten(), oy.flatten()], 1)[None]).reshape(-1, 2)


@torch.no_grad()
def agreement(student: nn.Module, teacher: nn.Module, points: torch.Tensor) -> float:
    """The fraction of ``points`` where the student predicts the teacher's class."""
    return (student(points).argmax(1) == teacher(points).argmax(1)).float().mean().item()


def scores(model, teacher, x, y, epsilon) -> dict:
    out = {
        "clean": robust_accuracy(model, x, y, "none"),
        "robust": robust_accuracy(model, x, y, "pgd", **attack_kwargs(epsilon, 20)),
    }
    if model is not teacher:
        out["agree_grid"] = agreement(model, teacher, grid())
        out["agree_boxes"] = agreement(model, teacher, box_points(x, epsilon))
    return out


def seed_problem(seed: int, args) -> tuple[torch.Tensor, torch.Tensor, nn.Module]:
    """One seed's points and its PGD-trained teacher."""
    torch.manual_seed(seed)
    x, y = make_points(args.points, args.classes, args.epsilon, seed)
    return x, y, train_teacher(x, y, args.classes, args.epsilon, args.teacher_iterations, args.progress)


def seed_student(seed: int, config: str, problem, args) -> nn.Module:
    x, y, teacher = problem
    return train_student(
        config, teacher, x, y, args.classes, args.epsilon, args.student_iterations, seed, args.progress
    )


#: Evaluation's PGD random starts come from their own seed, so the scores do not depend on where
#: (which process) or after what the models were trained.
EVAL_SEED = 10_000


def seed_scores(seed: int, problem, students: dict, args) -> tuple[dict, dict]:
    """Scores of the teacher and of each configuration's student on one seed's problem."""
    x, y, teacher = problem
    torch.manual_seed(EVAL_SEED + seed)
    rows = {TEACHER: scores(teacher, teacher, x, y, args.epsilon)}
    rows.update({c: scores(s, teacher, x, y, args.epsilon) for c, s in students.items()})
    return rows, {"x": x, "y": y, "models": {TEACHER: teacher, **students}}


def run_seed(seed: int, configs: list[str], args) -> tuple[dict, dict]:
    """Scores of the teacher and of each configuration's student on one seed's problem."""
    problem = seed_problem(seed, args)
    return seed_scores(seed, problem, {c: seed_student(seed, c, problem, args) for c in configs}, args)


def run_parallel(args, workers: int) -> list[tuple[dict, dict]]:
    """:func:`run_seed` for every seed, spread over ``workers`` processes of one thread each:
    first the teachers, then every (seed, configuration) student. Each task seeds itself as the
    sequential run does, so the results are the same."""
    quiet = argparse.Namespace(**{**vars(args), "progress": False})
    context = multiprocessing.get_context("spawn")  # no fork of a process that runs OpenMP
    seeds = range(args.seeds)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        problems = list(pool.map(seed_problem, seeds, [quiet] * len(seeds)))
        tasks = {(s, c): pool.submit(seed_student, s, c, problems[s], quiet) for s in seeds for c in args.configs}
        bar = tqdm(total=len(tasks), desc=f"students ({workers} processes)", disable=not args.progress)
        students = {}
        for key, task in tasks.items():
            students[key] = task.result()
            bar.update()
        bar.close()
    return [seed_scores(s, problems[s], {c: students[s, c] for c in args.configs}, args) for s in seeds]


def mean_std(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.1f} ± {100 * sd:.1f}"


METRICS = ("clean", "robust", "agree_grid", "agree_boxes")


def table(per_seed: list[dict], configs: list[str]) -> str:
    """Mean ± std over seeds; with AdaAD among the configurations, each other student's paired
    difference against it (same seed: same points, teacher and initialisation)."""
    n = len(per_seed)
    paired = "adaad" in configs and len(configs) > 1
    header = (
        f"| model ({n} seed{'s' if n > 1 else ''}, mean ± std, %) | clean acc | robust acc (PGD-20 in the ε-box) | "
        "agrees with the teacher: unit square | agrees with the teacher: inside the ε-boxes |"
    )
    header += " Δ robust vs AdaAD | Δ agreement in boxes vs AdaAD |" if paired else ""
    lines = [header, "|---" * (7 if paired else 5) + "|"]
    for name in [TEACHER, *configs]:
        cells = [mean_std([r[name][k] for r in per_seed]) if k in per_seed[0][name] else "–" for k in METRICS]
        if paired:
            cells += (
                ["–"] * 2
                if name in (TEACHER, "adaad")
                else [
                    format_difference([r[name][k] - r["adaad"][k] for r in per_seed]) for k in ("robust", "agree_boxes")
                ]
            )
        lines.append(f"| {LABELS.get(name, name)} | " + " | ".join(cells) + " |")
    if paired:
        lines.append("\nΔ: mean paired difference in points [95% t-interval]; * where the interval excludes 0.")
    return "\n".join(lines)


def plot(first: dict, rows: dict, epsilon: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch, Rectangle

    x, y = first["x"], first["y"]
    models = dict(list(first["models"].items())[:4])  # the teacher and the first three students
    colours = plt.get_cmap("tab10").colors[: int(y.max()) + 1]
    cells = grid(300)
    fig, axes = plt.subplots(1, len(models), figsize=(4.6 * len(models), 5.2), constrained_layout=True)
    for ax, (name, model) in zip(axes, models.items()):
        with torch.no_grad():
            regions = model(cells).argmax(1).reshape(300, 300)
        ax.imshow(
            regions.numpy(),
            origin="lower",
            extent=(0, 1, 0, 1),
            cmap=ListedColormap(colours),
            alpha=0.35,
            vmin=0,
            vmax=len(colours) - 1,
            interpolation="nearest",
        )
        for (px, py), label in zip(x.tolist(), y.tolist()):
            ax.add_patch(
                Rectangle(
                    (px - epsilon, py - epsilon),
                    2 * epsilon,
                    2 * epsilon,
                    fill=False,
                    edgecolor=colours[label],
                    linewidth=1.2,
                )
            )
        ax.scatter(
            x[:, 0].numpy(), x[:, 1].numpy(), c=[colours[i] for i in y.tolist()], s=12, edgecolors="k", linewidths=0.4
        )
        r = rows[name]
        text = f"clean {r['clean']:.0%}, robust {r['robust']:.0%}"
        if "agree_grid" in r:
            text += f"\nagrees with teacher: {r['agree_grid']:.0%} of square, {r['agree_boxes']:.0%} in boxes"
        ax.set(title=f"{LABELS.get(name, name)}\n{text}", xlim=(0, 1), ylim=(0, 1), xticks=[], yticks=[])
        ax.title.set_fontsize(9)
    handles = [Patch(facecolor=c, alpha=0.5, label=f"class {i}") for i, c in enumerate(colours)]
    fig.legend(handles=handles, loc="lower center", ncol=len(colours), fontsize=8, frameon=False)
    fig.suptitle(
        "Background: predicted class. Square: a point's ε-box in its class colour; a box over more than "
        "one background colour can be attacked. (First seed.)",
        fontsize=9,
    )
    fig.get_layout_engine().set(rect=(0, 0.05, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (problems), 0..N-1")
    parser.add_argument(
        "--configs",
        nargs="+",
        default=DEFAULT_CONFIGS,
        help=f"student configurations, or 'all': {', '.join(TOY_CONFIGS)}",
    )
    parser.add_argument("--points", type=int, default=40)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--epsilon", type=float, default=0.03, help="L∞ box radius in the unit square")
    parser.add_argument("--teacher-iterations", type=int, default=1000)
    parser.add_argument("--student-iterations", type=int, default=1500)
    parser.add_argument("--out", type=Path, default=Path("runs/toy"))
    parser.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="seeds run in this many processes of one thread each (default: 2, or 1 on one core); the "
        "models are so small that one thread per seed beats threads inside one",
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    if args.configs == ["all"]:
        args.configs = list(TOY_CONFIGS)
    unknown = [c for c in args.configs if c not in TOY_CONFIGS]
    if unknown:
        parser.error(f"unknown configuration(s) {unknown}; choose from {TOY_CONFIGS} or 'all'")
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    if args.workers == 1:
        results = [
            run_seed(seed, args.configs, args)
            for seed in tqdm(range(args.seeds), desc="seeds", disable=not args.progress)
        ]
    else:
        results = run_parallel(args, args.workers)
    per_seed = [rows for rows, _ in results]
    first = results[0][1]
    text = table(per_seed, args.configs)
    print(text)
    plot(first, per_seed[0], args.epsilon, args.out / "toy_decision_regions.png")
    result = {"args": {k: str(v) for k, v in vars(args).items()}, "per_seed": per_seed, "seconds": time.time() - start}
    (args.out / "toy_results.json").write_text(json.dumps(result, indent=2))
    (args.out / "toy_results.md").write_text(text + "\n")
    print(f"wrote {args.out / 'toy_decision_regions.png'} and toy_results.json/.md in {result['seconds']:.0f}s")
    return result


if __name__ == "__main__":
    main()
