"""Adversarial distillation on CIFAR-10/100, end to end: teacher, student, evaluation.

    # a 3-minute CPU check on tiny data the script writes itself
    python examples/distill_cifar.py --preset smoke --data-dir /tmp/fake --make-fake-data
    # about 10 minutes on one H100: fast-AT teacher, ResNet-18 students, AutoAttack on 1,000 images
    python examples/distill_cifar.py --preset quick --data-dir /data/cifar10-jpeg --method smaraad
    # the paper's protocol (docs/method.md §7), with a robust WRN-34-10 teacher checkpoint
    python examples/distill_cifar.py --preset paper --teacher-ckpt wrn.pt --method smaraad++
    # several GPUs
    torchrun --nproc_per_node=4 examples/distill_cifar.py --preset paper --teacher-ckpt wrn.pt

Writes to ``--out``: ``history.csv`` (one row per epoch), ``curves.png``, ``results.json`` and
``results.md`` (clean, PGD-20, CW∞ and AutoAttack accuracy), ``teacher.pt``, ``student.pt`` and
the resumable checkpoints ``teacher_ckpt.pt`` / ``student_ckpt.pt`` (written atomically each epoch;
``--resume`` continues from them exactly).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

import data
import models
import robustness
from softrank_ad import make_objective
from softrank_ad.objectives import OBJECTIVES
from training import Schedule, adversarial_training_loss, fit, load_weights, read_csv, save_checkpoint, seed_everything

PRESETS = {
    "smoke": dict(
        student="resnet18", student_width=8, teacher_arch="preact_resnet18", teacher_width=8,
        epochs=2, teacher_epochs=2, train_teacher="fast", steps=2, batch_size=32, lr=0.05,
        milestones=[], train_subset=256, test_subset=64, eval_pgd_steps=20, eval_cw_steps=30,
        autoattack_n=8, workers=0,
    ),
    "quick": dict(
        student="resnet18", student_width=None, teacher_arch="preact_resnet18", teacher_width=None,
        epochs=5, teacher_epochs=10, train_teacher="fast", steps=5, batch_size=128, lr=0.1,
        milestones=[4], train_subset=None, test_subset=1000, eval_pgd_steps=20, eval_cw_steps=30,
        autoattack_n=1000, workers=8,
    ),
    "paper": dict(
        student="resnet18", student_width=None, teacher_arch="wrn34_10", teacher_width=None,
        epochs=200, teacher_epochs=100, train_teacher="pgd", steps=10, batch_size=128, lr=0.1,
        milestones=[100, 150], train_subset=None, test_subset=None, eval_pgd_steps=20, eval_cw_steps=30,
        autoattack_n=10000, workers=8,
    ),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="smoke")
    p.add_argument("--dataset", choices=["cifar10", "cifar100"], default="cifar10")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--download", action="store_true", help="download through torchvision if nothing is found")
    p.add_argument("--make-fake-data", action="store_true", help="write tiny CIFAR-shaped data into --data-dir first")
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/<preset>-<method>)")
    p.add_argument("--method", type=str.lower, choices=sorted(OBJECTIVES), default="smaraad")
    p.add_argument("--student", choices=sorted(models.MODELS))
    p.add_argument("--student-width", type=float)
    p.add_argument("--teacher-arch", choices=sorted(models.MODELS))
    p.add_argument("--teacher-width", type=float)
    p.add_argument("--teacher-ckpt", type=Path, help="state_dict or {'state_dict': ...}; 'module.' prefixes handled")
    p.add_argument("--train-teacher", choices=["pgd", "fast"], help="PGD-AT, or FGSM with random start + early stopping")
    p.add_argument("--teacher-epochs", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--milestones", type=int, nargs="*", help="epochs where the lr is divided by 10")
    p.add_argument("--epsilon", type=float, default=8 / 255)
    p.add_argument("--step-size", type=float, default=2 / 255)
    p.add_argument("--steps", type=int, help="PGD steps of the training attack")
    p.add_argument("--gamma", type=float, default=1.0)
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--align-weight", type=float, default=1.0)
    p.add_argument("--kl-weight", type=float, default=0.0)
    p.add_argument("--weight-power", type=float, default=0.1)
    p.add_argument("--weights-from-epoch", type=int, default=60)
    p.add_argument("--temperature", type=float, default=30.0, help="ARD's τ")
    p.add_argument("--train-subset", type=int)
    p.add_argument("--test-subset", type=int)
    p.add_argument("--eval-pgd-steps", type=int)
    p.add_argument("--eval-cw-steps", type=int)
    p.add_argument("--autoattack-n", type=int, help="AutoAttack (standard) on the first N test images of a fixed shuffle; 0 skips")
    p.add_argument("--workers", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--no-amp", action="store_true", help="no bfloat16 autocast on CUDA")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.out is None:
        args.out = Path("runs") / f"{args.preset}-{args.method.replace('+', 'p')}"
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


def is_main(rank: int) -> bool:
    return rank == 0


def plot_curves(path: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_csv(path)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), constrained_layout=True)
    for stage in dict.fromkeys(r["stage"] for r in rows):
        rs = [r for r in rows if r["stage"] == stage]
        epochs = [int(r["epoch"]) for r in rs]
        axes[0].plot(epochs, [float(r["loss"]) for r in rs], marker="o", label=f"{stage} loss")
        if rs[0].get("val_pgd"):
            axes[1].plot(epochs, [float(r["val_pgd"]) for r in rs if r.get("val_pgd")], marker="o", label=f"{stage} PGD acc (val)")
    axes[0].set(xlabel="epoch", ylabel="training loss", title="loss")
    axes[1].set(xlabel="epoch", ylabel="accuracy", title="robust accuracy on held-out images", ylim=(0, 1))
    for ax in axes:
        ax.legend(fontsize=8)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def first_batch(dataset, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole of a (small) dataset as one batch on ``device``."""
    x, y = next(iter(DataLoader(dataset, batch_size=len(dataset))))
    return x.to(device), y.to(device)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    rank, world, device = setup_distributed()
    seed_everything(args.seed + rank)
    args.out.mkdir(parents=True, exist_ok=True)
    use_amp = device.type == "cuda" and not args.no_amp
    amp = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_amp else nullcontext
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format

    if args.make_fake_data and is_main(rank):
        data.write_fake_cifar(Path(args.data_dir), "imagefolder", per_class=40)
    if world > 1:
        dist.barrier()
    try:
        train_set, test_set, classes, layout = data.load(args.dataset, args.data_dir, download=args.download)
    except data.DatasetNotFound as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    train_set = data.first(train_set, args.train_subset, args.seed, shuffle=True)
    # A fixed shuffle (seed 0): ImageFolder lists the test set class by class, so its literal
    # first N images would all be airplanes. AutoAttack takes the first N of the same shuffle.
    eval_set = data.first(test_set, args.test_subset, seed=0, shuffle=True)
    sampler = DistributedSampler(train_set, seed=args.seed) if world > 1 else None
    loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=sampler is None, sampler=sampler,
                        num_workers=args.workers, pin_memory=device.type == "cuda", drop_last=len(train_set) > args.batch_size)
    eval_loader = DataLoader(eval_set, batch_size=256, num_workers=args.workers)
    # 128 test images, never trained on, for a per-epoch robust-accuracy curve.
    val_x, val_y = first_batch(data.first(test_set, 128, seed=1, shuffle=True), device)
    if is_main(rank):
        print(f"{args.dataset} ({layout}): {len(train_set)} train / {len(eval_set)} eval images, {classes} classes, "
              f"device {device}, world {world}, bf16 autocast {use_amp}")

    def build(arch, width):
        return models.build(arch, classes, width).to(device, memory_format=memory_format)

    def quick_robust_acc(model):
        return robustness.robust_accuracy(model, val_x, val_y, "pgd", epsilon=args.epsilon, step_size=args.step_size, steps=10)

    def schedule(epochs, milestones):
        return Schedule(epochs, args.lr, args.momentum, args.weight_decay, milestones)

    run_fit = dict(out=args.out, device=device, resume=args.resume, sampler=sampler, progress=not args.no_progress,
                   main_process=is_main(rank), barrier=dist.barrier if world > 1 else None)

    # -- teacher ------------------------------------------------------------------------------
    teacher = build(args.teacher_arch, args.teacher_width)
    teacher_path = args.out / "teacher.pt"
    if args.teacher_ckpt is not None:
        load_weights(teacher, args.teacher_ckpt)
    elif args.resume and teacher_path.exists():
        load_weights(teacher, teacher_path)
    else:
        if args.train_teacher is None:
            raise SystemExit("error: give --teacher-ckpt, or --train-teacher pgd|fast to train one")
        net = nn.parallel.DistributedDataParallel(teacher) if world > 1 else teacher

        def early_stop(epoch, row, extra):
            row["val_pgd"] = quick_robust_acc(teacher)
            best = extra.get("best_pgd", -1.0)
            if row["val_pgd"] >= best:
                extra.update(best_pgd=row["val_pgd"], best_state={k: v.detach().cpu().clone() for k, v in teacher.state_dict().items()})
            elif args.train_teacher == "fast" and row["val_pgd"] < best - 0.2:
                return True  # catastrophic overfitting: keep the best epoch and stop
            return False

        # The teacher decays at 1/2 and 3/4 of its own schedule.
        teacher_schedule = schedule(args.teacher_epochs, [int(args.teacher_epochs * 0.5), int(args.teacher_epochs * 0.75)])
        at_loss = adversarial_training_loss(net, epsilon=args.epsilon, step_size=args.step_size, steps=args.steps,
                                            fast=args.train_teacher == "fast", amp=amp)
        extra = fit("teacher", net, at_loss, loader, teacher_schedule,
                    on_epoch_end=early_stop, **run_fit)
        if "best_state" in extra:
            teacher.load_state_dict(extra["best_state"])
        if is_main(rank):
            save_checkpoint(teacher.state_dict(), teacher_path)
    teacher.eval()

    # -- student ------------------------------------------------------------------------------
    student = build(args.student, args.student_width)
    net = nn.parallel.DistributedDataParallel(student) if world > 1 else student
    hparams = dict(epsilon=args.epsilon, step_size=args.step_size, steps=args.steps)
    if args.method in ("smaraad", "smaraad++"):
        hparams.update(gamma=args.gamma, alpha=args.alpha, align_weight=args.align_weight, kl_weight=args.kl_weight,
                       weight_power=args.weight_power, weights_from_epoch=args.weights_from_epoch)
    elif args.method in ("adaad", "ard"):
        hparams.update(alpha=args.alpha)
    if args.method == "ard":
        hparams.update(temperature=args.temperature)
    objective = make_objective(args.method, net, teacher, **hparams)

    def student_loss(x, y, epoch):
        # Attack and outer loss both under bf16 autocast on CUDA (the attack is ~90% of a step);
        # soft ranks and Grad-CAM maps are computed in float32 inside either way.
        with amp():
            return objective.terms(x, y, epoch=epoch)

    def log_val(epoch, row, extra):
        row["val_pgd"] = quick_robust_acc(student)
        return False

    started = time.time()
    fit("student", net, student_loss, loader, schedule(args.epochs, args.milestones), on_epoch_end=log_val, **run_fit)
    train_seconds = time.time() - started

    # -- evaluation (rank 0) ------------------------------------------------------------------
    result = {}
    if is_main(rank):
        save_checkpoint(student.state_dict(), args.out / "student.pt")
        plot_curves(args.out / "history.csv", args.out / "curves.png")
        rows = {}
        for name, model in (("teacher", teacher), (args.method, student)):
            started_eval = time.time()
            scores = robustness.evaluate(model, eval_loader, device, epsilon=args.epsilon, step_size=args.step_size,
                                         pgd_steps=args.eval_pgd_steps, cw_steps=args.eval_cw_steps,
                                         progress=not args.no_progress, desc=f"evaluating {name}")
            scores["autoattack"] = None
            if args.autoattack_n > 0:
                x_aa, y_aa = first_batch(data.first(test_set, args.autoattack_n, seed=0, shuffle=True), device)
                scores["autoattack"] = robustness.autoattack_accuracy(model, x_aa, y_aa, epsilon=args.epsilon, seed=args.seed,
                                                                      progress=not args.no_progress)
            scores["eval_seconds"] = time.time() - started_eval
            rows[name] = scores
        result = {"args": {k: str(v) for k, v in vars(args).items()}, "device": str(device),
                  "card": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                  "torch": torch.__version__, "student_train_seconds": train_seconds, "results": rows}
        (args.out / "results.json").write_text(json.dumps(result, indent=2))
        pgd_key = f"pgd{args.eval_pgd_steps}"
        lines = [f"| model | clean | PGD-{args.eval_pgd_steps} | CW∞-{args.eval_cw_steps} | AutoAttack (first {args.autoattack_n}) |",
                 "|---|---|---|---|---|"]
        for name, s in rows.items():
            aa = f"{s['autoattack']:.2%}" if s["autoattack"] is not None else "not run"
            lines.append(f"| {name} | {s['clean']:.2%} | {s[pgd_key]:.2%} | {s['cw']:.2%} | {aa} |")
        table = "\n".join(lines)
        (args.out / "results.md").write_text(table + "\n")
        print(table)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return result


if __name__ == "__main__":
    main()
