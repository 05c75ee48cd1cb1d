"""Each published method's CIFAR-10 protocol, as its official code runs it, by name: what
``distill_cifar.py --protocol NAME`` trains and the docs' protocol table lists.

A protocol fixes the method and its hyperparameters, the engine options that reproduce the
official code (:func:`softrank_ad.official_options`), the attack budget, the schedule and the
teacher; the preset still sizes the data and the evaluation (``--preset smoke --protocol saad``
runs the recipe on a few images). The reported numbers are the papers' (ResNet-18 students,
AutoAttack at ε = 8/255) as quoted in the SAAD and IGDM papers' tables; nothing here was measured
by this project.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from softrank_ad import official_options
from softrank_ad.terms import IGDM


@dataclass(frozen=True)
class Protocol:
    """One method's published recipe for a ResNet-18 student on CIFAR-10."""

    method: str
    paper: str
    source: str  # the official code: repository and file
    #: RobustBench model name of the teacher, or None where the paper trained its own (then the
    #: script trains the preset's teacher, or loads --teacher-ckpt).
    teacher: str | None
    teacher_note: str
    epochs: int
    milestones: tuple[int, ...]
    lr: float = 0.1
    weight_decay: float = 2e-4
    batch_size: int = 128
    epsilon: float = 8 / 255
    step_size: float = 2 / 255
    steps: int = 10
    hparams: dict = field(default_factory=dict)
    #: IGDM added to the method's loss, ramped over the run (AdaAD + IGDM).
    igdm: bool = False
    #: The engine options, where they are not the method's official_options.
    options: dict | None = None
    reported_autoattack: str = "–"
    notes: str = ""

    def objective_kwargs(self, epochs: int) -> dict:
        """make_objective's keywords for a run of ``epochs`` epochs: the hyperparameters, the
        official options, the budget, IGDM where the method adds it, and what spans the run (IGDM's
        ramp, the introspection's start) scaled to ``epochs`` when a preset shortens the run."""
        kwargs = {
            **self.hparams,
            **(official_options(self.method) if self.options is None else self.options),
            "epsilon": self.epsilon,
            "step_size": self.step_size,
            "steps": self.steps,
            "add": IGDM(ramp_epochs=epochs) if self.igdm else None,
        }
        if self.method == "saad":
            kwargs["ramp_epochs"] = epochs
        if "introspection_from_epoch" in self.hparams and epochs != self.epochs:
            kwargs["introspection_from_epoch"] = round(self.hparams["introspection_from_epoch"] * epochs / self.epochs)
        return kwargs


PROTOCOLS: dict[str, Protocol] = {
    "ard": Protocol(
        method="ard",
        paper="Goldblum et al., AAAI 2020",
        source="goldblum/AdversariallyRobustDistillation, main.py",
        teacher=None,
        teacher_note="their own PGD-AT WideResNet",
        epochs=200,
        milestones=(100, 150),
        hparams={"temperature": 30.0, "ce_weight": 0.0},
    ),
    "rslad": Protocol(
        method="rslad",
        paper="Zi et al., ICCV 2021",
        source="zibojia/RSLAD, resnet18_rslad_cifar10.py",
        teacher="Zhang2019Theoretically",
        teacher_note="TRADES WRN-34-10 (model_cifar_wrn.pt)",
        epochs=300,
        milestones=(215, 260, 285),
        reported_autoattack="51.49 (IGDM paper, LTD WRN-34-20 teacher)",
    ),
    "adaad": Protocol(
        method="adaad",
        paper="Huang et al., CVPR 2023",
        source="boyellow/AdaAD, main.py (--method AdaAD)",
        teacher="Chen2021LTD_WRN34_20",
        teacher_note="LTD WRN-34-20",
        epochs=200,
        milestones=(100, 150),
        weight_decay=5e-4,
        reported_autoattack="52.79 (IGDM paper, same teacher)",
    ),
    "adaiad": Protocol(
        method="adaiad",
        paper="Huang et al., CVPR 2023",
        source="boyellow/AdaAD, main.py (--method AdaAD_with_IAD1)",
        teacher="Chen2021LTD_WRN34_20",
        teacher_note="LTD WRN-34-20",
        epochs=200,
        milestones=(100, 150),
        weight_decay=5e-4,
        hparams={"temperature": 30.0, "weight_power": 0.1, "introspection_from_epoch": 60},
        reported_autoattack="52.96 (IGDM paper, same teacher)",
    ),
    "iad": Protocol(
        method="iad",
        paper="Zhu et al., ICLR 2022",
        source="ZFancy/IAD, IAD-I.py",
        teacher=None,
        teacher_note="their own PGD-AT ResNet-18",
        epochs=200,
        milestones=(100, 150),
        hparams={"temperature": 1.0, "weight_power": 0.1, "introspection_from_epoch": 60},
    ),
    "adaad+igdm": Protocol(
        method="adaad",
        paper="Lee et al. (IGDM), arXiv:2312.03286",
        source="HongsinLee/saad, igdm.py",
        teacher="Chen2021LTD_WRN34_20",
        teacher_note="LTD WRN-34-20",
        epochs=200,
        milestones=(100, 150),
        igdm=True,
        options={"clip_start": False, "student_forwards": ("adv", "reflected")},
        reported_autoattack="54.02 (IGDM paper)",
        notes="igdm.py passes step_size=8/255, epsilon=2/255 to the attack, which reads as swapped: "
        "here ε = 8/255 and step 2/255, as every other method and the paper's text; IGDM's forward "
        "order S(x + δ), S(x − δ) and batchmean KLs are the engine's defaults",
    ),
    "saad": Protocol(
        method="saad",
        paper="Lee and Chung, TMLR 2026",
        source="HongsinLee/saad, saad.py",
        teacher="Bartoldson2024Adversarial_WRN-94-16",
        teacher_note="WRN-94-16 (the script's example also names Gowal2021Improving_28_10_ddpm_100m)",
        epochs=200,
        milestones=(100, 150),
        hparams={"clean_weight": 0.0, "igdm_weight": 1.0, "entropy_order": 1.0, "linearization_weight": 1.0},
        reported_autoattack="50.3 ± 0.2 (3 seeds, last epoch, SAAD paper)",
        notes="the script evaluates an SWA average of the student's weights from epoch 95 "
        "(BN statistics recomputed); not reproduced by distill_cifar.py",
    ),
}
