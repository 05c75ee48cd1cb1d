"""When does rank matching help? Each configuration's paired difference against AdaAD (PGD-20,
clean accuracy, AutoAttack) in each cell of the method study (teacher A or B, student width 8 or
4), and how that difference changes from the reference cell to another: the interaction the
paper's claim is about.

    python study/study_interaction.py \\
        --cell "A/8=study/results/method_study_cpu" --cell "B/8=study/results/method_study_cpu_strong" \\
        --cell "A/4=study/results/method_study_cpu_narrow" --out study/results/study_interaction

The first ``--cell`` is the reference. Within a cell, a configuration is paired with AdaAD by seed
(same teacher, student initialisation and data order). Across cells, the change of a difference
is paired by seed too: Δ_Y(s) − Δ_X(s), with a 95% t-interval over the seeds both cells ran.
Reports the configurations that ran outside the reference cell (or those given by ``--configs``).
Writes ``interaction.md`` and ``interaction.png`` (a row for PGD-20, a row for clean accuracy);
with cells named TEACHER/WIDTH the figure has one panel per factor, each moving one factor away
from the reference.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from softrank_ad_examples.stats import format_difference, paired_interval

BASELINE = "adaad"
#: The tables, in this order; the figure's rows are PGD-20 and clean accuracy.
METRICS = {"pgd": "PGD-20", "clean": "clean accuracy", "autoattack": "AutoAttack"}


#: From each run's last epoch: how closely the student follows the teacher on attacked held-out images.
FIDELITY = {"agree_top1": "top-1 agreement", "hard_rho": "Spearman ρ"}


def load_cell(folder: Path) -> dict[str, dict[int, dict]]:
    """config → seed → results, from a study's ``runs/*.json``."""
    cell: dict[str, dict[int, dict]] = {}
    for path in sorted((folder / "runs").glob("*.json")):
        run = json.loads(path.read_text())
        last_epoch = (run.get("history") or [{}])[-1]
        fidelity = {k: float(last_epoch[k]) for k in FIDELITY if k in last_epoch}
        cell.setdefault(run["config"], {})[run["seed"]] = {**run["results"], **fidelity}
    if not cell:
        raise SystemExit(f"error: no finished runs under {folder / 'runs'}")
    return cell


def differences(cell: dict[str, dict[int, dict]], config: str, metric: str) -> dict[int, float]:
    """seed → (config − AdaAD) on ``metric``, over the seeds both ran with the metric measured."""
    base, runs = cell.get(BASELINE, {}), cell.get(config, {})
    return {
        s: runs[s][metric] - base[s][metric]
        for s in sorted(runs.keys() & base.keys())
        if runs[s].get(metric) is not None and base[s].get(metric) is not None
    }


def change(reference: dict[int, float], other: dict[int, float]) -> list[float]:
    """Δ_other(s) − Δ_reference(s), paired by seed."""
    return [other[s] - reference[s] for s in sorted(reference.keys() & other.keys())]


def shown_configs(cells: dict[str, dict], chosen: list[str] | None) -> list[str]:
    """The configurations to report: those chosen, else every one that ran outside the reference
    cell (the reference's probes that ran nowhere else have no change to show)."""
    if chosen:
        return chosen
    return sorted({c for cell in list(cells.values())[1:] for c in cell} - {BASELINE})


def _with_count(diffs: list[float]) -> str:
    """A paired difference with its number of pairs (a single pair already says so)."""
    return format_difference(diffs) + (f" (n={len(diffs)})" if len(diffs) > 1 else "")


def table(cells: dict[str, dict], metric: str, configs: list[str]) -> str:
    names = list(cells)
    reference = names[0]
    header = [f"Δ {METRICS[metric]} vs AdaAD, {n}" for n in names] + [f"change {reference} → {n}" for n in names[1:]]
    lines = ["| configuration | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]
    for config in configs:
        per_cell = {n: differences(cells[n], config, metric) for n in names}
        shown = [_with_count(list(per_cell[n].values())) for n in names]
        moved = [_with_count(change(per_cell[reference], per_cell[n])) for n in names[1:]]
        lines.append(f"| {config} | " + " | ".join(shown + moved) + " |")
    return "\n".join(lines)


def fidelity_table(cells: dict[str, dict], configs: list[str]) -> str:
    """Mean over seeds of each configuration's last-epoch agreement with the teacher, per cell."""
    names = list(cells)
    header = [f"{label}, {n}" for n in names for label in FIDELITY.values()]
    lines = ["| configuration | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]
    for config in [BASELINE, *configs]:
        shown = []
        for n in names:
            for key in FIDELITY:
                values = [r[key] for r in cells[n].get(config, {}).values() if key in r]
                shown.append(f"{sum(values) / len(values):.2f} (n={len(values)})" if values else "–")
        lines.append(f"| {config} | " + " | ".join(shown) + " |")
    return "\n".join(lines)


def panels(names: list[str]) -> list[tuple[str, list[str], list[str]]]:
    """(title, cells, tick labels) per panel. Cells named TEACHER/WIDTH (e.g. "A/8", "B/8", "A/4")
    give two panels that each move one factor away from the reference (the first cell); other
    names give one panel of all cells."""
    parts = [n.split("/") for n in names]
    if not all(len(p) == 2 for p in parts):
        return [("cells", names, names)]
    (teacher, width), out = parts[0], []
    by_teacher = [n for n, p in zip(names, parts) if p[1] == width]
    by_width = [n for n, p in zip(names, parts) if p[0] == teacher]
    if len(by_teacher) > 1:
        out.append((f"teacher strength (students of width {width})", by_teacher, [n.split("/")[0] for n in by_teacher]))
    if len(by_width) > 1:
        out.append((f"student width (teacher {teacher})", by_width, [n.split("/")[1] for n in by_width]))
    return out or [("cells", names, names)]


def plot(cells: dict[str, dict], configs: list[str], path: Path, metrics: tuple[str, ...] = ("pgd", "clean")) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layout = panels(list(cells))
    fig, axes = plt.subplots(
        len(metrics),
        len(layout),
        figsize=(5.5 * len(layout), 4 * len(metrics)),
        sharey="row",
        squeeze=False,
        constrained_layout=True,
    )
    for row, metric in zip(axes, metrics):
        _plot_row(row, cells, configs, layout, metric)
    axes[0][-1].legend(fontsize=7, ncol=2)
    fig.suptitle("Does the gap to AdaAD move with teacher strength or student width?")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_row(row, cells: dict[str, dict], configs: list[str], layout: list, metric: str) -> None:
    for ax, (title, names, ticks) in zip(row, layout):
        for k, config in enumerate(configs):
            means, errors = [], [[], []]
            for n in names:
                d = list(differences(cells[n], config, metric).values())
                interval = paired_interval(d)
                mean = 100 * sum(d) / len(d) if d else float("nan")
                means.append(mean)
                errors[0].append(mean - 100 * interval[1] if interval else 0)
                errors[1].append(100 * interval[2] - mean if interval else 0)
            # Side by side within a cell, so that intervals do not hide each other.
            xs = [i + 0.06 * (k - (len(configs) - 1) / 2) for i in range(len(names))]
            style = "-o" if config.startswith("smaraad") else "--s"
            ax.errorbar(xs, means, yerr=errors, fmt=style, capsize=2, label=config)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(range(len(names)), ticks)
        ax.set_xlim(-0.4, len(names) - 0.6)  # a cell with no runs yet keeps its place on the axis
        ax.set(xlabel=title)
    row[0].set_ylabel(f"{METRICS[metric]} − AdaAD's, points\n(mean, 95% interval)")


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--cell",
        action="append",
        required=True,
        metavar="NAME=FOLDER",
        help="a study's output folder and the cell's name; the first is the reference",
    )
    p.add_argument("--out", type=Path, default=Path("runs/study-interaction"))
    p.add_argument(
        "--configs",
        nargs="+",
        metavar="NAME",
        help="the configurations to report (default: all that ran outside the reference cell)",
    )
    args = p.parse_args(argv)
    cells = {}
    for spec in args.cell:
        name, sep, folder = spec.partition("=")
        if not sep or not name or not folder:
            p.error(f"--cell takes NAME=FOLDER, got {spec!r}")
        cells[name] = load_cell(Path(folder))
    if len(cells) < 2:
        p.error("give at least two --cell: a reference and a cell to compare with it")
    configs = shown_configs(cells, args.configs)
    text = "\n\n".join([f"## {METRICS[m]}\n\n{table(cells, m, configs)}" for m in METRICS]) + (
        "\n\nΔ: configuration minus AdaAD in the same cell, paired by seed, mean [95% t-interval] in points (n = "
        "pairs); change: the cell's Δ minus the reference cell's Δ, paired by seed; * where the interval excludes 0.\n"
        f"\n## Agreement with the teacher\n\n{fidelity_table(cells, configs)}\n\n"
        "On the attacked held-out images of the last epoch (PGD-10 against the student): how often student and "
        "teacher predict the same class, and Spearman's ρ between their logits; mean over seeds (n = runs).\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "interaction.md").write_text(text)
    plot(cells, configs, args.out / "interaction.png")
    print(text)
    return text


if __name__ == "__main__":
    main()
