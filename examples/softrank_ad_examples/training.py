"""The training loop of the CIFAR examples: SGD with step decay, resumable checkpoints, RNG state.

Used by ``distill_cifar.py`` and ``study/method_study.py``. Checkpoints are written atomically
and read with ``torch.load(weights_only=True)``: they hold tensors, numbers and strings only, so a
checkpoint file can never run code when it is loaded.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from softrank_ad_examples import robustness


@dataclass
class Schedule:
    """SGD with momentum and weight decay; the lr is divided by 10 at each milestone epoch."""

    epochs: int
    lr: float
    momentum: float = 0.9
    weight_decay: float = 5e-4
    milestones: list[int] = field(default_factory=list)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read safely (it holds more than tensors and plain data)."""


def save_checkpoint(obj, path: Path) -> None:
    """``torch.save`` to a temporary file, flushed to disk, then renamed over ``path``: a crash
    mid-write never leaves a truncated checkpoint."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path):
    """``torch.load(path, weights_only=True)`` on CPU, with an error naming the file when it holds
    anything but tensors and plain containers (such a file could run code when unpickled)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError or RuntimeError depending on the payload
        raise CheckpointError(
            f"{path}: not loaded: it is not a checkpoint of tensors and plain data ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200]}). Only weights-only checkpoints are accepted, since "
            "unpickling anything else can execute code."
        ) from None


def load_weights(model: nn.Module, path: Path) -> None:
    """A state_dict, or ``{'state_dict': ...}`` / ``{'model': ...}``; ``module.`` prefixes (DDP)
    are removed."""
    state = load_checkpoint(path)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    model.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})


def rng_state() -> dict:
    """Every RNG the loop draws from, as tensors and ints (loadable with ``weights_only=True``)."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, mt, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": {"version": version, "mt": torch.tensor(mt, dtype=torch.int64), "gauss": gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["mt"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def append_csv(path: Path, row: dict) -> None:
    """Add one row to a CSV whose header is the union of every row's columns. The file is
    rewritten to a temporary file and renamed over the old one, so a kill mid-write leaves the
    previous version whole."""
    rows = read_csv(path) if path.exists() else []
    rows.append({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        writer.writeheader()
        writer.writerows(rows)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def grad_norm(parameters) -> float:
    """The global L2 norm of the parameters' gradients."""
    norms = [p.grad.detach().norm() for p in parameters if p.grad is not None]
    return float(torch.stack(norms).norm()) if norms else 0.0


LossFn = Callable[[torch.Tensor, torch.Tensor, int], dict]


def adversarial_training_loss(
    model: nn.Module, *, epsilon: float, step_size: float, steps: int, fast: bool = False, amp=contextlib.nullcontext
) -> LossFn:
    """PGD-AT (Madry et al. 2018), or with ``fast`` FGSM-RS (Wong et al. 2020: one step of 1.25 ε
    from a uniform start), as a ``fit`` loss; the attack runs with the model in eval mode."""

    def loss_fn(x, y, epoch):
        k, eta = (1, 1.25 * epsilon) if fast else (steps, step_size)
        with amp():
            model.eval()
            x_adv = robustness.adversarial(model, x, y, "pgd", epsilon=epsilon, step_size=eta, steps=k)
            model.train()
            return {"loss": F.cross_entropy(model(x_adv), y)}

    return loss_fn


EpochHook = Callable[[int, dict, dict], bool]


# -- the recipes every script shares ----------------------------------------------------------------
def teacher_milestones(epochs: int) -> list[int]:
    """The teacher's learning-rate drops (÷10): at 1/2 and 3/4 of its schedule."""
    return [epochs // 2, (3 * epochs) // 4]


def attack_step(epsilon: float, steps: int) -> float:
    """The training attack's step size: 2.5 ε / steps, so that the steps can cross the ε-ball
    (Madry et al.); 2/255 at ε = 8/255 and 10 steps."""
    return 2.5 * epsilon / steps


class KeepBest:
    """An ``on_epoch_end`` hook that scores the model each epoch (``row["val_pgd"]``) and keeps its
    best weights (ties go to the later epoch) in the checkpoint's ``extra`` under ``best_state``, so
    that a resumed run keeps them too; with ``stop_drop``, training stops once the score falls that
    far below the best (FGSM training's catastrophic overfitting). ``best(model)`` loads them."""

    def __init__(self, model: nn.Module, score: Callable[[nn.Module], float], stop_drop: float | None = None) -> None:
        self.model, self.score, self.stop_drop = model, score, stop_drop

    def __call__(self, epoch: int, row: dict, extra: dict) -> bool:
        row["val_pgd"] = self.score(self.model)
        best = extra.get("best_pgd", -1.0)
        if row["val_pgd"] >= best:
            extra.update(
                best_pgd=row["val_pgd"],
                best_state={k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
            )
            return False
        return self.stop_drop is not None and row["val_pgd"] < best - self.stop_drop

    @staticmethod
    def best(model: nn.Module, extra: dict) -> None:
        """Load the kept weights into ``model`` (nothing kept: left as trained)."""
        if "best_state" in extra:
            model.load_state_dict(extra["best_state"])


def fit(
    stage: str,
    module: nn.Module,
    loss_fn: LossFn,
    loader,
    schedule: Schedule,
    out: Path,
    *,
    device: torch.device,
    resume: bool = False,
    sampler=None,
    on_epoch_end: EpochHook | None = None,
    progress: bool = True,
    main_process: bool = True,
    barrier: Callable[[], None] | None = None,
) -> dict:
    """Train ``module`` on ``loss_fn(x, y, epoch) -> {"loss": ..., other scalar terms}``.

    Resumable from ``out/<stage>_ckpt.pt``, written after every epoch; one row per epoch goes to
    ``out/history.csv`` (mean loss and terms, the mean gradient norm, lr, seconds, and whatever
    ``on_epoch_end(epoch, row, extra)`` adds; it returns True to stop early). ``extra`` is a dict
    kept in the checkpoint for the hook's own state. Returns ``extra``.
    """
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=schedule.lr, momentum=schedule.momentum, weight_decay=schedule.weight_decay)
    milestones = sorted({m for m in schedule.milestones if 0 < m < schedule.epochs})
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
    ckpt_path = out / f"{stage}_ckpt.pt"
    start_epoch, extra = 0, {}
    if resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        unwrap(module).load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        set_rng_state(ckpt["rng"])
        start_epoch, extra = ckpt["epoch"], ckpt.get("extra", {})
        if main_process:
            history = read_csv(out / "history.csv") if (out / "history.csv").exists() else []
            if not any(r["stage"] == stage and r["epoch"] == str(start_epoch) for r in history):
                append_csv(out / "history.csv", ckpt["row"])  # killed between checkpoint and row
            print(f"resumed {stage} at epoch {start_epoch}/{schedule.epochs}")
    for epoch in range(start_epoch, schedule.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        module.train()
        started, seen, sums = time.time(), 0, {}
        bar = tqdm(
            loader,
            desc=f"{stage} epoch {epoch + 1}/{schedule.epochs}",
            disable=not (progress and main_process),
            leave=False,
        )
        for x, y in bar:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            terms = loss_fn(x, y, epoch)
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            scalars = {k: v.item() for k, v in terms.items() if v.ndim == 0}
            scalars["grad_norm"] = grad_norm(params)
            if not math.isfinite(scalars["loss"]):
                raise FloatingPointError(f"{stage} epoch {epoch + 1}: the loss is {scalars['loss']}")
            optimizer.step()
            seen += len(y)
            for k, v in scalars.items():
                sums[k] = sums.get(k, 0.0) + v * len(y)
            bar.set_postfix(loss=f"{sums['loss'] / seen:.4f}")
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        row = {
            "stage": stage,
            "epoch": epoch + 1,
            "lr": lr,
            **{k: v / max(seen, 1) for k, v in sums.items()},
            "seconds": time.time() - started,
        }
        stop = on_epoch_end(epoch, row, extra) if on_epoch_end is not None else False
        if main_process:
            # Checkpoint (holding the row) before the row: a kill between the two writes is
            # mended on resume, and a row is never written twice.
            save_checkpoint(
                {
                    "model": unwrap(module).state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": rng_state(),
                    "epoch": epoch + 1,
                    "extra": extra,
                    "row": row,
                },
                ckpt_path,
            )
            append_csv(out / "history.csv", row)
            print(
                f"{stage} epoch {epoch + 1}: "
                + ", ".join(f"{k}={v:.4g}" for k, v in row.items() if isinstance(v, float))
            )
        if barrier is not None:
            barrier()
        if stop:
            break
    return extra
