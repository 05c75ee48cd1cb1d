"""The grid of configurations the method study and the toy demo share: a method, its
hyperparameters and the study's own knobs (teacher sharpness, loss scale, composed terms), by
name. The toy demo runs a subset of the same names."""

from __future__ import annotations

from dataclasses import dataclass, field

from softrank_ad.terms import DIST, IGDM, KL, KendallMatching, SlackMatching


@dataclass(frozen=True)
class Config:
    """One row of the grid: a method, its hyperparameters and the study's own knobs."""

    method: str
    hparams: dict = field(default_factory=dict)
    group: str = "probe"
    teacher_sharpness: float = 1.0  # the teacher's logits multiplied by k (its confidence)
    loss_scale: float = 1.0  # the objective's loss multiplied by this (an lr scale for its gradient)
    note: str = ""
    # Terms (names in TERMS) added to the method's outer loss, or put in its place (loss): the
    # compositions of softrank_ad.terms, kept by name so that a run's JSON can record them.
    add: tuple[str, ...] = ()
    loss: tuple[str, ...] = ()


#: The terms a configuration may add or substitute, built for a run of ``epochs`` epochs (IGDM's
#: ramp spans the run).
TERMS = {
    "kl": lambda epochs: KL(),
    "dist": lambda epochs: DIST(),
    "kendall": lambda epochs: KendallMatching(),
    "sm-samples": lambda epochs: SlackMatching(rank_axis="samples"),
    "igdm": lambda epochs: IGDM(ramp_epochs=epochs),
}


def composed(names: tuple[str, ...], epochs: int):
    """The sum of the named terms, or None for no names."""
    terms = [TERMS[name](epochs) for name in names]
    return sum(terms[1:], terms[0]) if terms else None


CONFIGS: dict[str, Config] = {
    # -- headline: each method as the library builds it by default -----------------------------
    "adaad": Config("adaad", group="headline", note="KL on T(x'), the baseline every row is paired against"),
    "smaraad": Config("smaraad", group="headline", note="the paper reading: gamma 1, c 1, alpha 1, no KL"),
    "smaraad++": Config("smaraad++", group="headline", note="Eq. 10 reading; weights from 30% of the schedule"),
    "rslad": Config("rslad", group="headline"),
    "ard": Config("ard", group="headline"),
    "iad": Config("iad", group="headline", note="IAD-I: ARD's attack, teacher at x, introspection from 30%"),
    "adaiad": Config("adaiad", group="headline", note="AdaAD's attack, tau 30, introspection from 30%"),
    "saad": Config("saad", group="headline", note="entropy-weighted KL + IGDM ramped over the run"),
    # -- probes, most informative first (a study cut short keeps these) ------------------------
    **{
        f"smaraad-x{k}": Config("smaraad", loss_scale=float(k), note="slack-matching loss (and gradient) times k")
        for k in (5, 10)
    },
    **{
        f"{m}-k{k}": Config(m, teacher_sharpness=float(k), note="teacher logits sharpened by k")
        for k in (3, 10)
        for m in ("adaad", "smaraad")
    },
    **{
        f"smaraad-kl{w}": Config("smaraad", {"kl_weight": w}, note="extension: KL added to slack matching")
        for w in (0.5, 1.0)
    },
    "smaraad-c0.0": Config("smaraad", {"align_weight": 0.0}, note="no alignment in the outer loss"),
    "adaad-official": Config(
        "adaad",
        {"kl_reduction": "mean", "clean_bn_forward": True},
        note="official code: KL mean over B*C, clean train-mode forward",
    ),
    "ard-official": Config(
        "ard",
        {"kl_reduction": "mean", "attack_mode": "train", "clean_bn_forward": True},
        note="official code: KL mean over B*C, attack in train mode, clean forward",
    ),
    "adaad-klmean": Config("adaad", {"kl_reduction": "mean"}, note="official CIFAR-10 KL (mean over B*C)"),
    "rslad-klmean": Config("rslad", {"kl_reduction": "mean"}, note="official CIFAR-10 KL (mean over B*C)"),
    **{f"smaraad-gamma{g}": Config("smaraad", {"gamma": g}, note="soft-rank sharpness") for g in (0.3, 3.0, 10.0)},
    "smaraad-std": Config("smaraad", {"scale": "std"}, note="rows divided by their spread first"),
    **{
        f"smaraad-c{c}": Config("smaraad", {"align_weight": c}, note="alignment weight in the outer loss")
        for c in (0.3, 3.0)
    },
    "smaraad-dcg": Config("smaraad", {"position_weights": "dcg"}, note="extension: DCG-weighted soft Spearman"),
    **{
        f"smaraad-atk{w:.4g}": Config("smaraad", {"attack_align_weight": w}, note="alignment weight in the attack")
        for w in (0.0, 1 / 128)
    },
    # Named for the paper's alpha = 1 - ce_weight.
    "smaraad++-alpha0.9": Config("smaraad++", {"ce_weight": 0.1}, note="Eq. 10 with its CE anchor, alpha 0.9"),
    # -- relational losses beside slack matching (the teacher-strength study) ------------------
    "adaad-dist": Config("adaad", loss=("dist",), group="relational", note="AdaAD's attack, DIST in place of KL"),
    "adaad+dist": Config("adaad", add=("dist",), group="relational", note="AdaAD plus DIST"),
    "adaad+kendall": Config("adaad", add=("kendall",), group="relational", note="AdaAD plus soft Kendall (as RKKD)"),
    "adaad+igdm": Config("adaad", add=("igdm",), group="relational", note="AdaAD plus IGDM, ramped over the run"),
    "smaraad-samples": Config(
        "smaraad", {"rank_axis": "samples"}, group="relational", note="slack matching ranks each class over the batch"
    ),
    "smaraad-both": Config(
        "smaraad", {"rank_axis": "both"}, group="relational", note="slack matching over classes and over samples"
    ),
    "smaraad-std-kl1.0": Config(
        "smaraad",
        {"scale": "std", "kl_weight": 1.0},
        group="relational",
        note="standardised logits (scale std) in slack matching, KL added",
    ),
}
GROUPS = ("headline", "probe", "relational")
BASELINE = "adaad"
