"""The one preset system of the CIFAR scripts: a :class:`Preset` is everything a run depends on
besides its method, configuration and seed, and :data:`PRESETS` names them.
``examples/distill_cifar.py`` and ``study/method_study.py`` both take ``--preset NAME`` from this
table; a field a script does not use is ignored by it (the study always trains its teacher with
fast-AT and reads ``teacher_train_n``; ``distill_cifar.py`` reads ``autoattack_n`` and
``workers``). ``distill_cifar.py``'s flags override single fields.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

TeacherTraining = Literal["pgd", "fast"]


@dataclass(frozen=True)
class Preset:
    """A CIFAR run's recipe. ``None`` for a width is the architecture's full width, for a count
    the whole split."""

    student: str = "resnet18"
    student_width: float | None = 8
    teacher_arch: str = "preact_resnet18"
    teacher_width: float | None = 16
    teacher_epochs: int = 5
    #: PGD-AT, or FGSM with a random start (fast-AT) and its best epoch by held-out PGD-10.
    train_teacher: TeacherTraining = "fast"
    teacher_train_n: int | None = None
    train_n: int | None = 10_240
    epochs: int = 4
    milestones: tuple[int, ...] = (3,)
    batch_size: int = 128
    lr: float = 0.1
    #: PGD steps of the training attacks (step 2.5 ε / steps).
    steps: int = 3
    eval_n: int | None = 1000
    val_n: int = 256
    eval_pgd_steps: int = 20
    eval_cw_steps: int = 30
    autoattack_n: int = 0
    workers: int = 0

    def replace(self, **changes: Any) -> Preset:
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, Preset] = {
    # distill_cifar.py: checks that the pipeline runs (seconds on a CPU); numbers mean nothing.
    "smoke": Preset(
        student_width=8,
        teacher_width=8,
        epochs=2,
        teacher_epochs=2,
        steps=2,
        batch_size=32,
        lr=0.05,
        milestones=(),
        train_n=256,
        eval_n=64,
        autoattack_n=8,
    ),
    # distill_cifar.py on one GPU: full-width models, 5 student epochs.
    "quick": Preset(
        student_width=None,
        teacher_width=None,
        epochs=5,
        teacher_epochs=10,
        steps=5,
        milestones=(4,),
        train_n=None,
        eval_n=1000,
        autoattack_n=1000,
        workers=8,
    ),
    # The paper's protocol: WRN-34-10 PGD-AT teacher, 200 student epochs.
    "paper": Preset(
        student_width=None,
        teacher_arch="wrn34_10",
        teacher_width=None,
        epochs=200,
        teacher_epochs=100,
        train_teacher="pgd",
        steps=10,
        milestones=(100, 150),
        train_n=None,
        eval_n=None,
        autoattack_n=10_000,
        workers=8,
    ),
    # The method study, sized for 2 CPU cores: teacher A ≈ 10 min, a student run ≈ 4 min with
    # its evaluation.
    "cpu": Preset(),
    # Teacher B of the teacher-strength study: the cpu recipe trained 3x longer (15 epochs);
    # students as in "cpu".
    "cpu-strong": Preset(teacher_epochs=15),
    # The capacity-gap cell: teacher A (the same key as "cpu"), students of width 4.
    "cpu-narrow": Preset(student_width=4),
    # One H200 (2026-12-04): the teacher trains in ≈ 48 s, a student in ≈ 30 s (AdaAD) or ≈ 43 s
    # (SmaraAD), each evaluated in 2 s; the rest of a process (data, the teacher re-evaluated) ≈ 25 s.
    "gpu-mini": Preset(
        teacher_width=None,
        teacher_epochs=8,
        student_width=None,
        train_n=25_000,
        epochs=3,
        milestones=(2,),
        batch_size=256,
        lr=0.2,
        steps=5,
    ),
    # Tiny, for tests on generated data.
    "test": Preset(
        teacher_width=4,
        teacher_epochs=1,
        student_width=4,
        train_n=64,
        epochs=2,
        milestones=(1,),
        batch_size=32,
        steps=1,
        eval_n=16,
        val_n=16,
        eval_pgd_steps=2,
        eval_cw_steps=2,
    ),
}
