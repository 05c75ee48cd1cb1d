"""Does SmaraAD beat its baselines? A grid of (method, hyperparameters, seed) on real CIFAR-10.

One teacher per preset (trained once, cached under ``--out/teachers/<hash of its config>``), then
one student per (configuration, seed): the same teacher, and for a given seed the same student
initialisation and the same data order and augmentation for every method, so runs pair up. Each
run writes ``--out/runs/<config>-s<seed>.json`` (its configuration, per-epoch log, accuracies) and
the student's weights; a rerun skips finished runs, and an interrupted one resumes at its last
epoch. It runs in one process (not under ``torchrun``). ``--summary`` writes ``summary.md`` (mean
± std over seeds, and each configuration's paired difference against AdaAD with a 95%
t-interval) and ``summary.png``.

Presets: ``cpu`` (teacher A, width-8 students), ``cpu-strong`` (teacher B: the same recipe, 15
epochs), ``cpu-narrow`` (teacher A, width-4 students); each in its own ``--out``.

    # the CPU study (real CIFAR-10 JPEGs, ImageFolder layout): headline rows first, then probes
    python study/method_study.py --preset cpu --data-dir /tmp/cifar10-jpeg --groups headline --seeds 0 1 2
    python study/method_study.py --preset cpu --data-dir /tmp/cifar10-jpeg --groups probe --seeds 0
    # the teacher-strength cell: train teacher B alone first, then relational configurations
    python study/method_study.py --preset cpu-strong --data-dir /tmp/cifar10-jpeg --teacher-only
    python study/method_study.py --preset cpu-strong --data-dir /tmp/cifar10-jpeg --groups relational --seeds 0
    # AutoAttack (standard, official pyautoattack) on the first N evaluation images of finished runs
    python study/method_study.py --preset cpu --data-dir /tmp/cifar10-jpeg --autoattack 200 --groups headline
    python study/method_study.py --preset cpu --out runs/study-cpu --summary

Per-epoch columns: loss and its terms, ``grad_norm`` (the student's gradient, mean over steps),
and on 256 held-out test images attacked by PGD-10 on the student's cross-entropy: ``val_pgd``
(the student's accuracy), ``agree_top1`` (how often S(x') and T(x') predict the same class) and
``hard_rho`` (Spearman's ρ between S(x') and T(x') logits, mean over images).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from softrank_ad import make_objective
from softrank_ad.diagnostics import hard_spearman
from softrank_ad_examples import data, models, robustness, training
from softrank_ad_examples.configs import BASELINE, CONFIGS, GROUPS, Config, composed
from softrank_ad_examples.presets import PRESETS, Preset
from softrank_ad_examples.stats import format_difference, paired_interval

EPSILON = 8 / 255


# -- data ------------------------------------------------------------------------------------------
def as_tensors(dataset, n: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` of a seeded shuffle of ``dataset`` (all when None) as uint8 images and labels."""
    subset = data.first(dataset, n, seed=seed, shuffle=True)
    loader = torch.utils.data.DataLoader(subset, batch_size=1000)
    xs, ys = zip(*loader)
    return (torch.cat(xs) * 255).round().to(torch.uint8), torch.cat(ys)


@dataclass
class Data:
    """Training images stay uint8 on the CPU (the loader moves batches); evaluation and
    validation images are float on ``device``."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    eval_x: torch.Tensor
    eval_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    classes: int
    device: torch.device


def load_data(data_dir: str, preset: Preset, device: torch.device) -> Data:
    train_set, test_set, classes, _ = data.load("cifar10", data_dir, augment=False)
    n_train = max(preset.train_n or len(train_set), preset.teacher_train_n or len(train_set))
    train_x, train_y = as_tensors(train_set, n_train, seed=0)
    # A fixed shuffle: ImageFolder lists the test set class by class. Evaluation takes its first
    # eval_n images; the per-epoch curve uses val_n images of another shuffle.
    eval_x, eval_y = as_tensors(test_set, preset.eval_n, seed=0)
    val_x, val_y = as_tensors(test_set, preset.val_n, seed=1)
    f = lambda t: (t.float() / 255).to(device)  # noqa: E731
    return Data(train_x, train_y, f(eval_x), eval_y.to(device), f(val_x), val_y.to(device), classes, device)


# -- teacher ----------------------------------------------------------------------------------------
def teacher_key(preset: Preset) -> str:
    # The field names as the committed teachers were hashed with (teacher_arch was "teacher").
    fields = {"teacher": preset.teacher_arch} | {
        k: getattr(preset, k) for k in ("teacher_width", "teacher_epochs", "teacher_train_n", "batch_size", "lr")
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


def get_teacher(preset: Preset, d: Data, out: Path, progress: bool) -> tuple[nn.Module, dict]:
    """The preset's teacher: loaded from the cache, or trained (fast-AT, seed 0) and cached."""
    if preset.train_teacher != "fast":
        raise ValueError(
            f"the study trains its teachers with fast-AT; preset has train_teacher={preset.train_teacher!r}"
        )
    folder = out / "teachers" / teacher_key(preset)
    folder.mkdir(parents=True, exist_ok=True)
    teacher = models.build(preset.teacher_arch, d.classes, preset.teacher_width).to(d.device)
    info_path = folder / "teacher.json"
    if info_path.exists():
        training.load_weights(teacher, folder / "teacher.pt")
        return teacher.eval(), json.loads(info_path.read_text())
    training.seed_everything(0)
    n = preset.teacher_train_n or len(d.train_y)
    loader = data.TensorLoader(d.train_x[:n], d.train_y[:n], preset.batch_size, seed=0)
    schedule = training.Schedule(
        preset.teacher_epochs, preset.lr, milestones=training.teacher_milestones(preset.teacher_epochs)
    )
    # FGSM-RS: one step of 1.25 ε from a uniform start (step_size is unused there).
    loss = training.adversarial_training_loss(teacher, epsilon=EPSILON, step_size=EPSILON, steps=1, fast=True)
    keep_best = training.KeepBest(teacher, lambda m: robustness.robust_accuracy(m, d.val_x, d.val_y, "pgd", steps=10))
    started = time.time()
    extra = training.fit(
        "teacher",
        teacher,
        loss,
        loader,
        schedule,
        folder,
        device=d.device,
        resume=True,
        sampler=loader,
        on_epoch_end=keep_best,
        progress=progress,
    )
    training.KeepBest.best(teacher, extra)
    seconds = time.time() - started
    training.save_checkpoint(teacher.state_dict(), folder / "teacher.pt")
    scores = evaluate(teacher, d, preset, progress, "evaluating the teacher")
    info = {
        "key": teacher_key(preset),
        "arch": preset.teacher_arch,
        "width": preset.teacher_width,
        "train": "fast-AT (FGSM-RS), best epoch by PGD-10 on held-out images",
        "train_seconds": seconds,
        "sha256": hashlib.sha256((folder / "teacher.pt").read_bytes()).hexdigest(),
        "results": scores,
    }
    info_path.write_text(json.dumps(info, indent=2))
    return teacher.eval(), info


def evaluate(model: nn.Module, d: Data, preset: Preset, progress: bool, desc: str) -> dict:
    """Clean, PGD and CW∞ accuracy on the evaluation images, under the keys clean, pgd, cw."""
    batches = list(zip(d.eval_x.split(250), d.eval_y.split(250)))
    scores = robustness.evaluate(
        model.eval(),
        batches,
        d.device,
        epsilon=EPSILON,
        pgd_steps=preset.eval_pgd_steps,
        cw_steps=preset.eval_cw_steps,
        progress=progress,
        desc=desc,
    )
    return {
        "clean": scores["clean"],
        "pgd": scores[f"pgd{preset.eval_pgd_steps}"],
        "cw": scores["cw"],
        "pgd_steps": preset.eval_pgd_steps,
        "cw_steps": preset.eval_cw_steps,
    }


# -- one run ----------------------------------------------------------------------------------------
def fidelity(student: nn.Module, teacher: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Robust accuracy and agreement with the teacher on PGD-10 points of the student."""
    with robustness.evaluating(student):
        x_adv = robustness.adversarial(student, x, y, "pgd", epsilon=EPSILON, step_size=2 / 255, steps=10)
        with torch.no_grad():
            z_s, z_t = student(x_adv), teacher(x_adv)
    return {
        "val_pgd": (z_s.argmax(1) == y).float().mean().item(),
        "agree_top1": (z_s.argmax(1) == z_t.argmax(1)).float().mean().item(),
        "hard_rho": hard_spearman(z_s, z_t).mean().item(),
    }


def confidence(model: nn.Module, x: torch.Tensor) -> dict:
    """How sure a model is on clean images: mean top softmax probability and mean entropy (nats).
    A sharper teacher gives KL-based distillation harder targets, the paper's argument for ranks."""
    with torch.no_grad():
        p = model(x).float().softmax(dim=1)
    entropy = -(p * p.clamp_min(1e-12).log()).sum(dim=1)
    return {"top_probability": p.max(dim=1).values.mean().item(), "entropy": entropy.mean().item()}


def objective_hparams(config: Config, preset: Preset) -> dict:
    hparams = {
        "epsilon": EPSILON,
        "step_size": training.attack_step(EPSILON, preset.steps),
        "steps": preset.steps,
        **config.hparams,
    }
    # The papers start their per-sample weights at epoch 60 of 200 and SAAD ramps IGDM over the
    # whole run: the same fractions of this schedule.
    if config.method == "smaraad++":
        hparams.setdefault("weights_from_epoch", int(0.3 * preset.epochs))
    if config.method in ("iad", "adaiad"):
        hparams.setdefault("introspection_from_epoch", int(0.3 * preset.epochs))
    if config.method == "saad":
        hparams.setdefault("ramp_epochs", preset.epochs)
    return hparams


def run_one(
    name: str, seed: int, preset_name: str, d: Data, teacher: nn.Module, teacher_info: dict, out: Path, progress: bool
) -> dict:
    preset, config = PRESETS[preset_name], CONFIGS[name]
    folder = out / "runs" / f"{name}-s{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    training.seed_everything(seed)
    student = models.build(preset.student, d.classes, preset.student_width).to(d.device)
    teacher_used = teacher if config.teacher_sharpness == 1 else models.Sharpened(teacher, config.teacher_sharpness)
    objective = make_objective(
        config.method,
        student,
        teacher_used,
        add=composed(config.add, preset.epochs),
        loss=composed(config.loss, preset.epochs),
        **objective_hparams(config, preset),
    )
    loader = data.TensorLoader(d.train_x[: preset.train_n], d.train_y[: preset.train_n], preset.batch_size, seed)

    def loss_fn(x, y, epoch):
        terms = objective.breakdown(x, y, epoch=epoch)
        return {**terms, "loss": config.loss_scale * terms["loss"]}

    def log(epoch, row, extra):
        row.update(fidelity(student, teacher, d.val_x, d.val_y))
        return False

    training.fit(
        "student",
        student,
        loss_fn,
        loader,
        training.Schedule(preset.epochs, preset.lr, milestones=list(preset.milestones)),
        folder,
        device=d.device,
        resume=True,
        sampler=loader,
        on_epoch_end=log,
        progress=progress,
    )
    history = training.read_csv(folder / "history.csv")
    train_seconds = sum(float(row["seconds"]) for row in history)  # a resumed run's epochs too
    training.save_checkpoint(student.state_dict(), folder / "student.pt")
    started = time.time()
    scores = evaluate(student, d, preset, progress, f"evaluating {name} s{seed}")
    result = {
        "config": name,
        "seed": seed,
        "preset": preset_name,
        "method": config.method,
        "hparams": objective_hparams(config, preset),
        "add": list(config.add),
        "loss": list(config.loss),
        "teacher_sharpness": config.teacher_sharpness,
        "loss_scale": config.loss_scale,
        "note": config.note,
        "teacher": teacher_info["key"],
        "teacher_sha256": teacher_info["sha256"],
        "results": {**scores, "autoattack": None, "autoattack_n": 0},
        "history": history,
        "train_seconds": train_seconds,
        "eval_seconds": time.time() - started,
        "device": str(d.device),
        "card": card(d.device),
        "dtype": "float32",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    write_json(out / "runs" / f"{name}-s{seed}.json", result)
    return result


def card(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"


def write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    tmp.replace(path)


def add_autoattack(path: Path, d: Data, n: int, preset: Preset, progress: bool) -> dict | None:
    """AutoAttack accuracy on the first ``n`` evaluation images of a finished run; None (with a
    message) for a run whose student weights are not there (committed results keep only JSON)."""
    result = json.loads(path.read_text())
    if result["results"].get("autoattack_n", 0) >= n:
        return result
    weights = path.with_suffix("") / "student.pt"
    if not weights.exists():
        print(
            f"{path.stem}: no student weights at {weights} (the committed results keep only each run's "
            "JSON); skipped. Delete the JSON to retrain that run, then rerun --autoattack.",
            flush=True,
        )
        return None
    student = models.build(preset.student, d.classes, preset.student_width).to(d.device)
    training.load_weights(student, weights)
    started = time.time()
    acc = robustness.autoattack_accuracy(
        student.eval(), d.eval_x[:n], d.eval_y[:n], epsilon=EPSILON, seed=0, progress=progress
    )
    result["results"].update(autoattack=acc, autoattack_n=n, autoattack_seconds=time.time() - started)
    write_json(path, result)
    return result


# -- summary ----------------------------------------------------------------------------------------
def load_runs(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]


def summarise(runs: list[dict], pgd_key: str = "pgd") -> list[dict]:
    """One row per configuration: means, spreads and paired differences against AdaAD."""
    by_config: dict[str, dict[int, dict]] = {}
    for r in runs:
        by_config.setdefault(r["config"], {})[r["seed"]] = r["results"]
    baseline = by_config.get(BASELINE, {})
    rows = []
    for name, seeds in by_config.items():
        row = {"config": name, "seeds": sorted(seeds), "group": CONFIGS[name].group if name in CONFIGS else "?"}
        for metric in ("clean", pgd_key, "cw", "autoattack"):
            values = [s[metric] for s in seeds.values() if s.get(metric) is not None]
            row[metric] = (
                statistics.mean(values) if values else None,
                statistics.stdev(values) if len(values) > 1 else None,
                len(values),
            )
            paired = [
                seeds[s][metric] - baseline[s][metric]
                for s in seeds
                if s in baseline and seeds[s].get(metric) is not None and baseline[s].get(metric) is not None
            ]
            row[f"pairs_{metric}"] = paired
            row[f"diff_{metric}"] = (statistics.mean(paired) if paired else None, paired_interval(paired), len(paired))
        # Over the seeds AutoAttack ran on (runs kept as JSON only may lack it).
        row["autoattack_n"] = min(
            (s["autoattack_n"] for s in seeds.values() if s.get("autoattack") is not None), default=0
        )
        rows.append(row)
    order = {name: i for i, name in enumerate(CONFIGS)}
    return sorted(rows, key=lambda r: order.get(r["config"], len(order)))


def _pct(stat) -> str:
    mean, sd, n = stat
    if not n:
        return "–"
    return f"{100 * mean:.1f}" + (f" ± {100 * sd:.1f}" if sd is not None else "")


def markdown(rows: list[dict], pgd_key: str = "pgd") -> str:
    lines = [
        "| configuration | seeds | clean | PGD | CW∞ | AutoAttack | Δ clean vs AdaAD | Δ PGD vs AdaAD | Δ AA vs AdaAD |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        attacked = r["autoattack"][2]
        aa = _pct(r["autoattack"]) + (
            f" (n={r['autoattack_n']}"
            + (f", {attacked} seed{'s' if attacked > 1 else ''}" if attacked < len(r["seeds"]) else "")
            + ")"
            if attacked
            else ""
        )
        diffs = (
            ["(baseline)"] * 3
            if r["config"] == BASELINE
            else [format_difference(r[f"pairs_{m}"]) for m in ("clean", pgd_key, "autoattack")]
        )
        lines.append(
            f"| {r['config']} | {len(r['seeds'])} | {_pct(r['clean'])} | {_pct(r[pgd_key])} | {_pct(r['cw'])} | "
            f"{aa} | {' | '.join(diffs)} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict], runs: list[dict], path: Path, pgd_key: str = "pgd") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 6), constrained_layout=True)
    for r in rows:
        colour = "tab:red" if r["config"].startswith("smaraad") else "tab:blue"
        marker = "o" if r["group"] == "headline" else "."
        points = [(x["results"]["clean"], x["results"][pgd_key]) for x in runs if x["config"] == r["config"]]
        left.scatter(*zip(*points), s=10, color=colour, alpha=0.3)
        left.errorbar(
            r["clean"][0],
            r[pgd_key][0],
            xerr=r["clean"][1] or 0,
            yerr=r[pgd_key][1] or 0,
            fmt=marker,
            color=colour,
            ms=7 if marker == "o" else 4,
        )
        left.annotate(
            r["config"], (r["clean"][0], r[pgd_key][0]), fontsize=7, xytext=(3, 3), textcoords="offset points"
        )
    left.set(
        xlabel="clean accuracy",
        ylabel="PGD accuracy",
        title="each configuration: mean ± std over seeds (faint: single seeds)\nred: SmaraAD family, blue: KL baselines",
    )
    named = [r for r in rows if r["config"] != BASELINE and r["diff_" + pgd_key][0] is not None]
    ys = range(len(named))
    for y, r in zip(ys, named):
        mean, interval, n = r["diff_" + pgd_key]
        lo, hi = (interval[1], interval[2]) if interval else (mean, mean)
        right.errorbar(
            mean,
            y,
            xerr=[[mean - lo], [hi - mean]],
            fmt="o" if interval else "x",
            color="tab:red" if r["config"].startswith("smaraad") else "tab:blue",
        )
    right.axvline(0, color="k", lw=0.8)
    right.set_yticks(list(ys), [f"{r['config']} ({r['diff_' + pgd_key][2]} pairs)" for r in named], fontsize=7)
    right.set(
        xlabel="PGD accuracy minus AdaAD's, same seed",
        title="paired difference vs AdaAD\n(dot: mean and 95% t-interval; x: one pair, no interval)",
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary_text(out: Path) -> str:
    """summary.md's text for the finished runs under ``out``."""
    runs = load_runs(out)
    if not runs:
        raise SystemExit(f"error: no finished runs under {out / 'runs'}")
    rows = summarise(runs)
    teachers = sorted({r["teacher"] for r in runs})
    info = [json.loads(p.read_text()) for p in sorted((out / "teachers").glob("*/teacher.json"))]
    lines = [f"# Method study ({', '.join(sorted({r['preset'] for r in runs}))} preset)", ""]
    for t in info:
        s = t["results"]
        lines.append(
            f"Teacher {t['key']} ({t['arch']}, width {t['width']}, {t['train']}): clean {100 * s['clean']:.1f}, "
            f"PGD-{s['pgd_steps']} {100 * s['pgd']:.1f}, CW∞ {100 * s['cw']:.1f} on the evaluation images."
        )
    titles = {
        "headline": "Headline: each method as the library builds it",
        "probe": "Probes",
        "relational": "Relational losses beside slack matching",
    }
    for group in GROUPS:
        with_baseline = group != "headline"  # other groups repeat the baseline row for reading
        chosen = [r for r in rows if r["group"] == group or (with_baseline and r["config"] == BASELINE)]
        if len(chosen) > with_baseline:
            lines += ["", f"## {titles[group]}", "", markdown(chosen)]
    lines += [
        "",
        "Mean ± std over seeds, accuracy in % on the first evaluation images of a fixed shuffle of the test set "
        f"(AutoAttack on the first n of them); PGD-{runs[0]['results']['pgd_steps']} and "
        f"CW∞-{runs[0]['results']['cw_steps']}, ε = 8/255. Δ: paired difference against AdaAD over the seeds both ran "
        "(same teacher, initialisation and data order), mean [95% t-interval]; * where the interval "
        "excludes 0.",
        "",
        f"Teachers used: {', '.join(teachers)}. Float32 throughout, on "
        f"{', '.join(sorted({r.get('card', r['device']).split(',')[0].upper() for r in runs}))}.",
        "",
    ]
    return "\n".join(lines)


def write_summary(out: Path) -> str:
    text = summary_text(out)
    (out / "summary.md").write_text(text)
    plot(summarise(load_runs(out)), load_runs(out), out / "summary.png")
    return text


# -- command line ---------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    p.add_argument(
        "--data-dir", help="CIFAR-10: an ImageFolder tree (train/<class>/*, test/<class>/*) or torchvision's layout"
    )
    p.add_argument("--out", type=Path, help="default runs/study-<preset>")
    p.add_argument("--groups", nargs="+", choices=GROUPS, default=["headline"])
    p.add_argument(
        "--configs", nargs="+", metavar="NAME", help=f"only these configurations; any of: {', '.join(CONFIGS)}"
    )
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument(
        "--autoattack",
        type=int,
        default=0,
        metavar="N",
        help="instead of training: AutoAttack on the first N evaluation images of every finished run selected",
    )
    p.add_argument("--summary", action="store_true", help="only write summary.md and summary.png from finished runs")
    p.add_argument(
        "--teacher-only", action="store_true", help="train (or load) the preset's teacher, print its scores, stop"
    )
    p.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when available")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    unknown = sorted(set(args.configs or []) - set(CONFIGS))
    if unknown:
        p.error(f"unknown configuration(s) {unknown}; choose from {list(CONFIGS)}")
    if args.out is None:
        args.out = Path("runs") / f"study-{args.preset}"
    if not args.summary and not args.data_dir:
        p.error("--data-dir is required to train or evaluate (give --summary to only summarise)")
    return args


def selected(args) -> list[tuple[str, int]]:
    """(configuration, seed) pairs: group by group, then seed by seed, so that a study stopped
    early leaves whole rows of the first groups and seeds."""
    names = args.configs or [n for n, c in CONFIGS.items() if c.group in args.groups]
    order = list(CONFIGS)
    pairs = [(n, s) for n in names for s in args.seeds]
    return sorted(pairs, key=lambda p: (GROUPS.index(CONFIGS[p[0]].group), p[1], order.index(p[0])))


def main(argv=None) -> str:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise SystemExit(
            "error: method_study.py runs in one process and does not support torchrun; on several "
            "GPUs, start one study per GPU (CUDA_VISIBLE_DEVICES=i) with its own --seeds and one --out"
        )
    args = parse_args(argv)
    if args.summary:
        text = write_summary(args.out)
        print(text)
        return text
    preset, progress = PRESETS[args.preset], not args.no_progress
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    d = load_data(args.data_dir, preset, device)
    pairs = selected(args)
    if args.autoattack:
        for name, seed in tqdm(pairs, desc="AutoAttack", disable=not progress):
            path = args.out / "runs" / f"{name}-s{seed}.json"
            if path.exists():
                r = add_autoattack(path, d, args.autoattack, preset, progress)
                if r is not None:
                    print(
                        f"{name} s{seed}: AutoAttack {r['results']['autoattack']:.3f} on {args.autoattack}", flush=True
                    )
        return write_summary(args.out)
    teacher, info = get_teacher(preset, d, args.out, progress)
    print(f"teacher {info['key']}: " + ", ".join(f"{k} {v:.3f}" for k, v in info["results"].items()), flush=True)
    sure = confidence(teacher, d.eval_x)
    print(
        f"teacher {info['key']} on clean evaluation images: mean top probability {sure['top_probability']:.3f}, "
        f"mean entropy {sure['entropy']:.3f} nats",
        flush=True,
    )
    if args.teacher_only:
        return json.dumps(info)
    todo = [(n, s) for n, s in pairs if not (args.out / "runs" / f"{n}-s{s}.json").exists()]
    print(f"{len(pairs) - len(todo)} of {len(pairs)} runs already finished; {len(todo)} to go", flush=True)
    for name, seed in tqdm(todo, desc="runs", disable=not progress):
        r = run_one(name, seed, args.preset, d, teacher, info, args.out, progress)
        s = r["results"]
        print(
            f"{name} s{seed}: clean {s['clean']:.3f}, PGD-{s['pgd_steps']} {s['pgd']:.3f}, CW {s['cw']:.3f} "
            f"({r['train_seconds']:.0f}s train, {r['eval_seconds']:.0f}s eval)",
            flush=True,
        )
    return write_summary(args.out)


if __name__ == "__main__":
    main()
