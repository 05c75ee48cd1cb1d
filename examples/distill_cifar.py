"""Adversarial distillation on CIFAR-10/100, end to end: teacher, student, evaluation.

    # a pipeline check on tiny data the script writes itself: about 45 s on 2 CPU cores (an earlier session; CPU model not recorded)
    python examples/distill_cifar.py --preset smoke --data-dir /tmp/fake --make-fake-data
    # sized (not measured) for about 10 minutes on one H100: fast-AT teacher, ResNet-18 students, AutoAttack on 1,000 images
    python examples/distill_cifar.py --preset quick --data-dir /data/cifar10-jpeg --method smaraad
    # the paper's protocol (docs/method.md §7), with a robust WRN-34-10 teacher checkpoint
    python examples/distill_cifar.py --preset paper --teacher-ckpt wrn.pt --method smaraad++
    # a published method's own recipe (method, official options, attack, schedule, RobustBench
    # teacher): ard, rslad, adaad, adaiad, iad, adaad+igdm, saad (docs/guide/protocols.md)
    python examples/distill_cifar.py --preset paper --protocol saad --data-dir /data/cifar10-jpeg
    # several GPUs
    torchrun --nproc_per_node=4 examples/distill_cifar.py --preset paper --teacher-ckpt wrn.pt

Writes to ``--out``: ``history.csv`` (one row per epoch), ``curves.png``, ``results.json`` and
``results.md`` (clean, PGD-20, CW∞ and AutoAttack accuracy), ``teacher.pt``, ``student.pt`` and
the resumable checkpoints ``teacher_ckpt.pt`` / ``student_ckpt.pt`` (written atomically each epoch;
``--resume`` continues from them exactly).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from softrank_ad import OBJECTIVES, DistillationObjective, make_objective
from softrank_ad_examples import data, models, robustness
from softrank_ad_examples.presets import PRESETS
from softrank_ad_examples.protocols import PROTOCOLS
from softrank_ad_examples.training import (
    KeepBest,
    Schedule,
    adversarial_training_loss,
    attack_step,
    fit,
    load_checkpoint,
    load_weights,
    read_csv,
    save_checkpoint,
    seed_everything,
    teacher_milestones,
)

#: (flag, type or choices, help): passed to make_objective only when given.
METHOD_FLAGS = [
    ("--gamma", float, "soft-rank sharpness γ (SmaraAD, SmaraAD++)"),
    ("--scale", ("none", "std"), "soft-rank scaling (SmaraAD, SmaraAD++)"),
    ("--align-weight", float, "c, the alignment weight of the outer loss (SmaraAD, SmaraAD++)"),
    ("--attack-align-weight", float, "the alignment weight inside the attack (SmaraAD, SmaraAD++)"),
    ("--kl-weight", float, "an added KL term (SmaraAD; library extension)"),
    ("--position-weights", ("none", "dcg"), "DCG-weighted slack matching (SmaraAD, SmaraAD++; extension)"),
    ("--weight-power", float, "β of the SmaraAD++ weights"),
    ("--weights-from-epoch", int, "SmaraAD++ uses its weights from this epoch on"),
    ("--adv-weight", float, "weight of the adversarial terms against the clean ones (SmaraAD, AdaAD, RSLAD)"),
    ("--ce-weight", float, "weight of the clean cross-entropy (ARD, SmaraAD++; the papers' alpha is 1 minus it)"),
    ("--rank-axis", ("classes", "samples", "both"), "what slack matching ranks (SmaraAD; samples/both are extensions)"),
    ("--temperature", float, "ARD's τ"),
    ("--kl-reduction", ("batchmean", "mean"), "'mean' averages the KL over classes too, as the official code"),
    ("--attack-mode", ("eval", "train"), "the student's mode during the attack (official ARD: train)"),
    (
        "--clean-bn-forward",
        bool,
        "a clean train-mode student forward where no clean term is computed (official AdaAD, ARD)",
    ),
]


def method_hparams(args: argparse.Namespace) -> dict:
    """The attack budget and the method flags that were given, as make_objective's keywords."""
    given = {flag[2:].replace("-", "_"): getattr(args, flag[2:].replace("-", "_")) for flag, _, _ in METHOD_FLAGS}
    return {
        "epsilon": args.epsilon,
        "step_size": args.step_size,
        "steps": args.steps,
        **{k: v for k, v in given.items() if v is not None},
    }


def apply_protocol(args: argparse.Namespace) -> None:
    """Fill what the protocol fixes and the command line left unset. The preset sizes data and
    evaluation; the pipeline checks (smoke, test) keep their own short schedule and teacher."""
    protocol = PROTOCOLS[args.protocol]
    args.method = protocol.method
    fills: dict = {"weight_decay": protocol.weight_decay}
    if args.preset not in ("smoke", "test"):
        fills.update(
            epochs=protocol.epochs,
            milestones=list(protocol.milestones),
            lr=protocol.lr,
            batch_size=protocol.batch_size,
            steps=protocol.steps,
            step_size=protocol.step_size,
        )
        if protocol.teacher is not None and args.teacher is None and args.teacher_ckpt is None:
            args.teacher = f"robustbench:{protocol.teacher}"
    for name, value in fills.items():
        if getattr(args, name) is None:
            setattr(args, name, value)


def objective_kwargs(args: argparse.Namespace) -> dict:
    """make_objective's keywords: the protocol's (scaled to this run's epochs), then the flags."""
    if args.protocol is None:
        return method_hparams(args)
    return {**PROTOCOLS[args.protocol].objective_kwargs(args.epochs), **method_hparams(args)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="smoke")
    p.add_argument("--dataset", choices=["cifar10", "cifar100"], default="cifar10")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--download", action="store_true", help="download through torchvision if nothing is found")
    p.add_argument("--make-fake-data", action="store_true", help="write tiny CIFAR-shaped data into --data-dir first")
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/<preset>-<method>)")
    p.add_argument("--method", type=str.lower, choices=sorted(OBJECTIVES), help="default smaraad")
    p.add_argument(
        "--protocol",
        type=str.lower,
        choices=sorted(PROTOCOLS),
        help="a published method's recipe: method, official options, attack, optimizer, schedule and "
        "RobustBench teacher (the preset still sizes data and evaluation; smoke and test keep their schedule)",
    )
    p.add_argument("--student", choices=sorted(models.MODELS))
    p.add_argument("--student-width", type=float)
    p.add_argument("--teacher-arch", choices=sorted(models.MODELS))
    p.add_argument("--teacher-width", type=float)
    p.add_argument("--teacher-ckpt", type=Path, help="state_dict or {'state_dict': ...}; 'module.' prefixes handled")
    p.add_argument(
        "--teacher",
        help="robustbench:<zoo name>: a RobustBench teacher (pip install -e '.[robustbench]'), e.g. "
        "robustbench:Wong2020Fast; its checkpoint is read from (or downloaded into) --model-dir",
    )
    p.add_argument("--model-dir", type=Path, default=Path("models"), help="RobustBench's checkpoint folder")
    p.add_argument(
        "--train-teacher", choices=["pgd", "fast"], help="PGD-AT, or FGSM with random start + early stopping"
    )
    p.add_argument("--teacher-epochs", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, help="default 5e-4, or the protocol's")
    p.add_argument("--milestones", type=int, nargs="*", help="epochs where the lr is divided by 10")
    p.add_argument("--epsilon", type=float, default=8 / 255)
    p.add_argument("--step-size", type=float, help="step of the training attacks (default 2.5 epsilon / steps)")
    p.add_argument("--steps", type=int, help="PGD steps of the training attack")
    method = p.add_argument_group(
        "method hyperparameters (default: the library's; a flag the method does not take is an error)"
    )
    for flag, kind, text in METHOD_FLAGS:
        if kind is bool:
            method.add_argument(flag, action="store_const", const=True, help=text)
        elif isinstance(kind, tuple):
            method.add_argument(flag, choices=kind, help=text)
        else:
            method.add_argument(flag, type=kind, help=text)
    p.add_argument("--train-subset", type=int, dest="train_n", help="train on the first N of a seeded shuffle")
    p.add_argument("--test-subset", type=int, dest="eval_n", help="evaluate on the first N test images")
    p.add_argument("--eval-pgd-steps", type=int)
    p.add_argument("--eval-cw-steps", type=int)
    p.add_argument(
        "--autoattack-n", type=int, help="AutoAttack (standard) on the first N test images of a fixed shuffle; 0 skips"
    )
    p.add_argument("--workers", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="start over in an --out that holds a previous run")
    p.add_argument("--no-amp", action="store_true", help="no bfloat16 autocast on CUDA")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.protocol is not None:
        if args.method is not None:
            p.error("--protocol sets the method; give --method or --protocol, not both")
        apply_protocol(args)
    args.method = args.method or "smaraad"
    args.weight_decay = 5e-4 if args.weight_decay is None else args.weight_decay
    preset = PRESETS[args.preset]
    for field in dataclasses.fields(preset):
        if getattr(args, field.name, None) is None:
            setattr(args, field.name, getattr(preset, field.name))
    if args.teacher is not None:
        if not args.teacher.startswith("robustbench:") or not args.teacher.split(":", 1)[1]:
            p.error(f"--teacher takes robustbench:<zoo name>, got {args.teacher!r}")
        if args.teacher_ckpt is not None:
            p.error("give --teacher or --teacher-ckpt, not both")
    if args.step_size is None:
        args.step_size = attack_step(args.epsilon, args.steps)
    if args.out is None:
        args.out = Path("runs") / f"{args.preset}-{args.method.replace('+', 'p')}"
    cls = OBJECTIVES[args.method]
    accepted = {
        *inspect.signature(cls.__init__).parameters,
        *inspect.signature(DistillationObjective.__init__).parameters,
    }
    wrong = ["--" + k.replace("_", "-") for k in method_hparams(args) if k not in accepted]
    if wrong:
        takes = [flag for flag, _, _ in METHOD_FLAGS if flag[2:].replace("-", "_") in accepted]
        p.error(f"{', '.join(wrong)} does not apply to --method {args.method}; it takes {', '.join(takes)}")
    return args


# -- distributed helpers ------------------------------------------------------------------------
def setup_distributed() -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def plot_curves(path: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    rows = read_csv(path)
    stages = list(dict.fromkeys(r["stage"] for r in rows))
    # One loss axis per stage: the teacher's cross-entropy and the student's distillation loss
    # are on different scales.
    fig, axes = plt.subplots(1, len(stages) + 1, figsize=(4.5 * (len(stages) + 1), 3.5), constrained_layout=True)
    for ax, stage in zip(axes, stages):
        rs = [r for r in rows if r["stage"] == stage]
        ax.plot([int(r["epoch"]) for r in rs], [float(r["loss"]) for r in rs], marker="o")
        ax.set(xlabel="epoch", ylabel="training loss", title=f"{stage} loss")
        val = [(int(r["epoch"]), float(r["val_pgd"])) for r in rs if r.get("val_pgd")]
        if val:
            axes[-1].plot(*zip(*val), marker="o", label=stage)
    axes[-1].set(xlabel="epoch", ylabel="accuracy", title="PGD-10 accuracy, 128 held-out images", ylim=(0, 1))
    axes[-1].legend(fontsize=8)
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.savefig(out, dpi=110)
    plt.close(fig)


def first_batch(dataset, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole of a (small) dataset as one batch on ``device``."""
    x, y = next(iter(DataLoader(dataset, batch_size=len(dataset))))
    return x.to(device), y.to(device)


#: What a run leaves in --out; their presence means --out holds a previous run.
ARTEFACTS = (
    "history.csv",
    "teacher_ckpt.pt",
    "student_ckpt.pt",
    "teacher.pt",
    "student.pt",
    "results.json",
    "results.md",
    "curves.png",
)


def prepare_out(args: argparse.Namespace, main_process: bool) -> dict | None:
    """Say what --out holds and what this run does with it; the saved result of a finished run
    resumed again (nothing to do), else None. A previous run is never overwritten silently."""
    found = [name for name in ARTEFACTS if (args.out / name).exists()]
    if args.resume:
        student_ckpt = args.out / "student_ckpt.pt"
        trained = load_checkpoint(student_ckpt)["epoch"] if student_ckpt.exists() else 0
        if (args.out / "results.json").exists() and trained >= args.epochs:
            if main_process:
                print(
                    f"--resume: {args.out} holds a finished run of {trained} student epochs; its results are in "
                    f"{args.out / 'results.md'}. Nothing to do (ask for more --epochs to train on, or use "
                    "--overwrite or another --out to run again)."
                )
            return json.loads((args.out / "results.json").read_text())
        if main_process:
            ckpts = [n for n in ("teacher.pt", "teacher_ckpt.pt", "student_ckpt.pt") if n in found]
            print(
                f"--resume: continuing from {', '.join(ckpts)} in {args.out}"
                if ckpts
                else f"--resume: no checkpoint in {args.out}; starting from scratch"
            )
        return None
    if found and not args.overwrite:
        raise SystemExit(
            f"error: {args.out} holds a previous run ({', '.join(found)}); pass --resume to continue it, "
            "--overwrite to start over, or choose another --out"
        )
    if found and main_process:
        for name in found:
            (args.out / name).unlink()
        print(f"--overwrite: removed the previous run's {', '.join(found)} from {args.out}")
    return None


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    try:
        return run(args)
    except data.DatasetError as err:  # an unreadable image found mid-epoch
        # From a DataLoader worker the message carries the worker's traceback: its last line is ours.
        print(f"error: {str(err).strip().splitlines()[-1].removeprefix('data.DatasetError: ')}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: the checkpoints of finished epochs are kept in {args.out}; rerun the same command "
            "with --resume to continue",
            file=sys.stderr,
        )
        raise SystemExit(130) from None


@dataclass
class Run:
    """What every step of a run shares: the process's place in the job and the run's settings."""

    args: argparse.Namespace
    rank: int
    world: int
    device: torch.device
    amp: Callable
    memory_format: torch.memory_format

    @property
    def main(self) -> bool:
        return self.rank == 0

    def fit_options(self, sampler) -> dict:
        return dict(
            out=self.args.out,
            device=self.device,
            resume=self.args.resume,
            sampler=sampler,
            progress=not self.args.no_progress,
            main_process=self.main,
            barrier=dist.barrier if self.world > 1 else None,
        )

    def schedule(self, epochs: int, milestones: list[int]) -> Schedule:
        return Schedule(epochs, self.args.lr, self.args.momentum, self.args.weight_decay, milestones)

    def build(self, arch: str, width: float | None, classes: int) -> nn.Module:
        return models.build(arch, classes, width).to(self.device, memory_format=self.memory_format)


@dataclass
class Data:
    train_set: object
    test_set: object
    sampler: DistributedSampler | None
    loader: DataLoader
    eval_loader: DataLoader
    val_x: torch.Tensor  # 128 test images never trained on, for the per-epoch robust-accuracy curve
    val_y: torch.Tensor
    classes: int

    def val_pgd(self, model: nn.Module, epsilon: float) -> float:
        return robustness.robust_accuracy(model, self.val_x, self.val_y, "pgd", epsilon=epsilon, steps=10)


def start(args: argparse.Namespace) -> Run:
    """The process group (under torchrun), seeds, precision and worker count."""
    rank, world, device = setup_distributed()
    seed_everything(args.seed + rank)
    if device.type == "cpu" and args.preset in ("quick", "paper") and rank == 0:
        print(
            f"warning: --preset {args.preset} is sized for a GPU; on this CPU it takes many hours. For a CPU "
            "run use --preset smoke (checks the pipeline) or study/method_study.py --preset cpu "
            "(a real-data comparison sized for 2 cores).",
            file=sys.stderr,
        )
    cores = os.cpu_count() or 1
    if args.workers > cores:
        if rank == 0:
            print(f"note: {args.workers} data-loading workers capped at the {cores} cores present")
        args.workers = cores
    use_amp = device.type == "cuda" and not args.no_amp
    amp = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_amp else nullcontext
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    return Run(args, rank, world, device, amp, memory_format)


def load_data(r: Run) -> Data:
    """The training set (a seeded subset), the evaluation images (a fixed shuffle of the test
    set) and their loaders; exits with the data lookup's message when nothing is found."""
    args = r.args
    if args.make_fake_data and r.main:
        data.write_fake_cifar(Path(args.data_dir), "imagefolder", per_class=40)
    if r.world > 1:
        dist.barrier()
    try:
        train_set, test_set, classes, layout = data.load(args.dataset, args.data_dir, download=args.download)
    except data.DatasetError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    train_set = data.first(train_set, args.train_n, args.seed, shuffle=True)
    # A fixed shuffle (seed 0): ImageFolder lists the test set class by class, so its literal
    # first N images would all be airplanes. AutoAttack takes the first N of the same shuffle.
    eval_set = data.first(test_set, args.eval_n, seed=0, shuffle=True)
    sampler = DistributedSampler(train_set, seed=args.seed) if r.world > 1 else None
    loader = DataLoader(
        train_set,
        batch_size=args.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=args.workers,
        pin_memory=r.device.type == "cuda",
        drop_last=len(train_set) > args.batch_size,
    )
    eval_loader = DataLoader(eval_set, batch_size=256, num_workers=args.workers)
    val_x, val_y = first_batch(data.first(test_set, 128, seed=1, shuffle=True), r.device)
    if r.main:
        print(
            f"{args.dataset} ({layout}): {len(train_set)} train / {len(eval_set)} eval images, {classes} classes, "
            f"device {r.device}, world {r.world}, bf16 autocast {r.amp is not nullcontext}"
        )
    return Data(train_set, test_set, sampler, loader, eval_loader, val_x, val_y, classes)


def get_teacher(r: Run, d: Data) -> nn.Module:
    """The teacher: --teacher-ckpt, the saved one of a resumed run, or trained here (PGD-AT or
    FGSM-RS, its best epoch by PGD-10 on held-out images kept; FGSM stops on catastrophic
    overfitting), in eval mode."""
    args = r.args
    if args.teacher is not None:
        from softrank_ad.teachers import robustbench_teacher

        teacher, info = robustbench_teacher(args.teacher.split(":", 1)[1], model_dir=args.model_dir)
        args.teacher_info = info._asdict() | {"checkpoint": str(info.checkpoint)}
        if r.main:
            print(
                f"teacher: RobustBench {info.name} ({info.architecture}), listed clean {info.clean_acc}%, "
                f"AutoAttack {info.autoattack_acc}% (RobustBench's full test set)"
            )
        return teacher.to(r.device)
    teacher = r.build(args.teacher_arch, args.teacher_width, d.classes)
    teacher_path = args.out / "teacher.pt"
    if args.teacher_ckpt is not None:
        load_weights(teacher, args.teacher_ckpt)
    elif args.resume and teacher_path.exists():
        load_weights(teacher, teacher_path)
    else:
        if args.train_teacher is None:
            raise SystemExit("error: give --teacher-ckpt, or --train-teacher pgd|fast to train one")
        net = nn.parallel.DistributedDataParallel(teacher) if r.world > 1 else teacher
        keep_best = KeepBest(
            teacher, lambda m: d.val_pgd(m, args.epsilon), stop_drop=0.2 if args.train_teacher == "fast" else None
        )
        loss = adversarial_training_loss(
            net,
            epsilon=args.epsilon,
            step_size=args.step_size,
            steps=args.steps,
            fast=args.train_teacher == "fast",
            amp=r.amp,
        )
        schedule = r.schedule(args.teacher_epochs, teacher_milestones(args.teacher_epochs))
        extra = fit("teacher", net, loss, d.loader, schedule, on_epoch_end=keep_best, **r.fit_options(d.sampler))
        KeepBest.best(teacher, extra)
        if r.main:
            save_checkpoint(teacher.state_dict(), teacher_path)
    return teacher.eval()


def train_student(r: Run, d: Data, teacher: nn.Module) -> tuple[nn.Module, float]:
    """The student distilled with --method; returns it and its training time."""
    args = r.args
    # Seeded afresh: the student's initialisation and data order do not depend on whether the
    # teacher was trained, loaded or resumed in this process.
    seed_everything(args.seed + r.rank + 1)
    student = r.build(args.student, args.student_width, d.classes)
    net = nn.parallel.DistributedDataParallel(student) if r.world > 1 else student
    objective = make_objective(args.method, net, teacher, **objective_kwargs(args))

    def loss(x, y, epoch):
        # Attack and outer loss both under bf16 autocast on CUDA (the attack is ~90% of a step);
        # soft ranks, softmaxes and Grad-CAM maps are computed in float32 inside either way.
        with r.amp():
            return objective.breakdown(x, y, epoch=epoch)

    def log_val(epoch, row, extra):
        row["val_pgd"] = d.val_pgd(student, args.epsilon)
        return False

    started = time.time()
    fit(
        "student",
        net,
        loss,
        d.loader,
        r.schedule(args.epochs, args.milestones),
        on_epoch_end=log_val,
        **r.fit_options(d.sampler),
    )
    return student, time.time() - started


def evaluate_and_report(
    r: Run, d: Data, teacher: nn.Module, student: nn.Module, train_seconds: float, wall_started: float
) -> dict:
    """Rank 0: clean, PGD, CW∞ and AutoAttack accuracy of both models; results.json/.md, curves."""
    args = r.args
    save_checkpoint(student.state_dict(), args.out / "student.pt")
    plot_curves(args.out / "history.csv", args.out / "curves.png")
    rows = {}
    for name, model in (("teacher", teacher), (args.method, student)):
        started = time.time()
        scores = robustness.evaluate(
            model,
            d.eval_loader,
            r.device,
            epsilon=args.epsilon,
            pgd_steps=args.eval_pgd_steps,
            cw_steps=args.eval_cw_steps,
            progress=not args.no_progress,
            desc=f"evaluating {name}",
        )
        scores["autoattack"] = None
        if args.autoattack_n > 0:
            x_aa, y_aa = first_batch(data.first(d.test_set, args.autoattack_n, seed=0, shuffle=True), r.device)
            scores["autoattack"] = robustness.autoattack_accuracy(
                model, x_aa, y_aa, epsilon=args.epsilon, seed=args.seed, progress=not args.no_progress
            )
        scores["eval_seconds"] = time.time() - started
        rows[name] = scores
    card = torch.cuda.get_device_name(r.device) if r.device.type == "cuda" else "cpu"
    result = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "device": str(r.device),
        "card": card,
        "world_size": r.world,
        "torch": torch.__version__,
        "student_train_seconds": train_seconds,
        "wall_seconds": time.time() - wall_started,
        "results": rows,
    }
    (args.out / "results.json").write_text(json.dumps(result, indent=2))
    pgd_key = f"pgd{args.eval_pgd_steps}"
    lines = [
        f"| model | clean | PGD-{args.eval_pgd_steps} | CW∞-{args.eval_cw_steps} | AutoAttack (first {args.autoattack_n}) |",
        "|---|---|---|---|---|",
    ]
    for name, s in rows.items():
        aa = f"{s['autoattack']:.2%}" if s["autoattack"] is not None else "not run"
        lines.append(f"| {name} | {s['clean']:.2%} | {s[pgd_key]:.2%} | {s['cw']:.2%} | {aa} |")
    lines += [
        "",
        f"Preset {args.preset}, method {args.method}, {card}, world size {r.world}, torch "
        f"{torch.__version__}, bf16 autocast {r.amp is not nullcontext}; wall-clock {result['wall_seconds']:.0f} s "
        f"in this process (student training {train_seconds:.0f} s).",
    ]
    info = getattr(args, "teacher_info", None)
    if info is not None:
        lines.append(
            f"Teacher: RobustBench {info['name']} ({info['architecture']}); RobustBench lists clean "
            f"{info['clean_acc']}% and AutoAttack {info['autoattack_acc']}% on the full CIFAR-10 test set."
        )
        result["teacher_listed"] = info
        (args.out / "results.json").write_text(json.dumps(result, indent=2))
    if args.preset == "smoke":
        lines.append(
            "Smoke preset: tiny models and data; these numbers only show that the pipeline runs and "
            "say nothing about the methods."
        )
    table = "\n".join(lines)
    (args.out / "results.md").write_text(table + "\n")
    print(table)
    return result


def run(args: argparse.Namespace) -> dict:
    """Teacher, then student, then evaluation; under torchrun every process trains and rank 0
    alone writes files and evaluates."""
    wall_started = time.time()
    r = start(args)
    finished = prepare_out(args, r.main)
    if finished is not None:
        return finished
    d = load_data(r)
    args.out.mkdir(parents=True, exist_ok=True)  # only once there is data to train on
    teacher = get_teacher(r, d)
    student, train_seconds = train_student(r, d, teacher)
    result = evaluate_and_report(r, d, teacher, student, train_seconds, wall_started) if r.main else {}
    if r.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return result


if __name__ == "__main__":
    main()
