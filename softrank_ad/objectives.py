"""Adversarial-distillation objectives: an attack and an outer loss, composed from terms.

An objective is an :class:`Attack` (what the inner maximisation maximises, from which start) and
an outer loss (a weighted sum of :mod:`softrank_ad.terms` on the named inputs S(x'), S(x), T(x'),
T(x), y), with a PGD budget. SmaraAD, SmaraAD++ and the ARD / RSLAD / AdaAD baselines are
:class:`DistillationObjective` built with their published attack and loss; any other combination
needs no subclass::

    from softrank_ad import make_objective
    from softrank_ad.terms import DIST, KendallMatching
    objective = make_objective("adaad", student, teacher, add=0.5 * KendallMatching())  # AdaAD + 0.5 (1 − τ)
    objective = make_objective("adaad", student, teacher, loss=DIST())                  # AdaAD's attack, DIST

Every objective wraps a student and a frozen teacher and offers:

- ``perturb(x, y) -> x_adv``: the attack, with the student in eval mode (``attack_mode="train"``:
  train mode) and its mode restored after;
- ``objective(x, y, x_adv=None, epoch=None) -> loss``: the outer loss, attacking first when
  ``x_adv`` is not given;
- ``terms(x, y, x_adv=None, epoch=None) -> dict[str, Tensor]``: the same loss under ``"loss"``
  and each term's value (detached) under its name, for logging;
- ``inner_loss(x_adv, x, y)``: the scalar ``perturb`` maximises.

``objective.parameters()`` holds the student's parameters only: pass it to the optimizer. The
teacher is frozen when the objective is built (``requires_grad_(False)``), evaluated in eval mode
in every call with its previous mode restored, and never registered as a submodule; ``.to()``,
``.cuda()`` or ``.double()`` on the objective move it with the student.

KL convention, in every method: ``kl_div(log_softmax(z_S/τ), softmax(z_T/τ), "batchmean")``;
``kl_reduction="mean"`` averages over classes too, as the official CIFAR-10 code of AdaAD, RSLAD and
ARD does (see :func:`~softrank_ad.kl_divergence`).

Two options reproduce how the official baselines treat the student's BatchNorm (both off by
default, where the student's BN statistics come from adversarial batches alone):

- ``attack_mode="train"`` runs the attack with the student in train mode (official ARD), so the
  attack's forwards update its BN running statistics; ``"eval"`` (default) freezes them.
- ``clean_bn_forward=True`` runs a clean train-mode forward of the student (no gradient) in every
  call whose loss evaluated no S(x) (official AdaAD and ARD at weight 1, where the clean term's
  weight is 0), so BN running statistics mix clean and adversarial batches. It runs before the
  outer loss when the loss never reads S(x), as the official code does, and after it when the
  loss may read S(x) but did not in this call (SmaraAD++ during its warm-up).

A three-line change to a training loop::

    objective = make_objective("smaraad", student, teacher)
    ...
    loss = objective(x, y, epoch=epoch)      # instead of F.cross_entropy(student(x), y)
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import nn

from softrank_ad import _validate
from softrank_ad._modes import eval_mode, modes_restored
from softrank_ad.attacks import STARTS, Start, ascend, check_budget, random_start
from softrank_ad.attribution import AttributionAlignmentLoss, CAMTarget, LayerSpec, ReshapeTransform
from softrank_ad.divergence import KLReduction
from softrank_ad.rank import DEFAULT_GAMMA, SCALES, Scale
from softrank_ad.terms import (
    KL,
    Alignment,
    ConfidenceWeightedSlackMatching,
    CrossEntropy,
    Inputs,
    PositionWeights,
    SlackMatching,
    Term,
    alignments,
)

AttackMode = Literal["eval", "train"]
RankAxes = Literal["classes", "samples", "both"]

# Names that changed, so that old code fails with directions instead of "unexpected keyword".
_RENAMED = {
    "alpha": "adv_weight= (SmaraAD, AdaAD: the weight of the adversarial terms against the clean ones) "
             "or ce_weight= (ARD, SmaraAD++: the weight of the clean cross-entropy, 1 − the old alpha)",
    "check_inputs": "check_finite=",
}


@dataclass(frozen=True)
class Attack:
    """A method's inner maximisation: the term it maximises over x' and its random start.

    Args:
        loss: a term evaluated at x' with the student as the objective's ``attack_mode`` says and
            the teacher in eval mode; the teacher's logits at x' keep their graph w.r.t. x'.
        start: ``"uniform"`` (in the ε-ball), ``"normal"`` (x + 0.001·N(0, 1), as AdaAD and RSLAD)
            or ``"none"``.
    """

    loss: Term
    start: Start = "uniform"

    def __post_init__(self) -> None:
        if not isinstance(self.loss, Term):
            raise TypeError(f"Attack.loss must be a Term (see softrank_ad.terms), got {type(self.loss).__name__}")
        _validate.check_choice(self.start, "start", STARTS)


class DistillationObjective(nn.Module):
    """An attack and an outer loss on a student and a frozen teacher, with the call protocol.

    Args:
        student, teacher: classifiers on [0, 1] inputs with the same classes.
        attack: the :class:`Attack`.
        loss: the outer loss, a :class:`~softrank_ad.terms.Term` (usually a weighted sum).
        epsilon, step_size, steps: the L∞ PGD budget (8/255, 2/255, 10).
        kl_reduction: ``"batchmean"`` (default, the KL per sample) or ``"mean"`` (also averaged
            over classes, as the official CIFAR-10 code of AdaAD, RSLAD and ARD); every KL term
            without its own ``reduction`` follows it.
        attack_mode: the student's mode during the attack: ``"eval"`` (default) or ``"train"``
            (official ARD; its BN running statistics then follow the attack's forwards).
        clean_bn_forward: a clean train-mode forward of the student (no gradient) in calls whose
            loss evaluates no S(x), as the official AdaAD and ARD code do (see the module's notes).
        check_finite: the data-dependent checks, each a host sync: ``x`` (and a given ``x_adv``)
            finite and in [0, 1], labels within the classes, and every logit the rank and
            correlation terms see finite (so a diverged student raises instead of training on
            NaN). False skips them all; shapes and dtypes are still checked. Class counts are
            compared once, on the first call.

    Shape:
        - x, x_adv: (B, C_in, H, W) images in [0, 1] (any (B, ...) the models take).
        - y: (B,) class indices, any integer dtype.
        - Output: a scalar loss; ``terms`` gives a dict of scalars (SmaraAD++ adds (B,) weights).

    Example:
        >>> from softrank_ad.terms import KL, KendallMatching
        >>> attack = Attack(KL(), start="normal")                                  # AdaAD's
        >>> objective = DistillationObjective(student, teacher, attack=attack,     # doctest: +SKIP
        ...                                   loss=KL() + 0.5 * KendallMatching())
        >>> objective(x, y).backward()                                             # doctest: +SKIP

    Every argument is validated before the models are touched: a constructor that raises leaves
    the teacher (and any module it shares with the student) as it was.
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        *,
        attack: Attack,
        loss: Term,
        epsilon: float = 8 / 255,
        step_size: float = 2 / 255,
        steps: int = 10,
        kl_reduction: KLReduction = "batchmean",
        attack_mode: AttackMode = "eval",
        clean_bn_forward: bool = False,
        check_finite: bool = True,
        **unknown,
    ) -> None:
        super().__init__()
        _reject_unknown(unknown)
        _validate.check_choice(kl_reduction, "kl_reduction", get_args(KLReduction))
        _validate.check_choice(attack_mode, "attack_mode", get_args(AttackMode))
        for name, flag in (("clean_bn_forward", clean_bn_forward), ("check_finite", check_finite)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool, got {type(flag).__name__}")
        for name, model in (("student", student), ("teacher", teacher)):
            if not isinstance(model, nn.Module):
                raise TypeError(f"{name} must be an nn.Module, got {type(model).__name__}")
        if student is teacher:
            raise ValueError("student and teacher must be different modules")
        if not isinstance(attack, Attack):
            raise TypeError(f"attack must be an Attack, got {type(attack).__name__}")
        check_budget(epsilon, step_size, steps)
        self.attack = attack
        self._attack_aligned = alignments(attack.loss)
        self.loss = loss  # checked by the setter
        self.student = student
        self.epsilon = float(epsilon)
        self.step_size = float(step_size)
        self.steps = steps
        self.kl_reduction = kl_reduction
        self.attack_mode = attack_mode
        self.clean_bn_forward = clean_bn_forward
        self.check_finite = check_finite
        self._classes: int | None = None  # learnt on the first call
        # Last, after every check (subclasses check theirs before calling this). Not a submodule:
        # the teacher's parameters stay out of parameters() and state_dict(); _apply moves it.
        object.__setattr__(self, "teacher", teacher.requires_grad_(False))

    @property
    def loss(self) -> Term:
        """The outer loss; assigning a new :class:`~softrank_ad.terms.Term` re-composes the method."""
        return self._loss

    @loss.setter
    def loss(self, loss: Term) -> None:
        if not isinstance(loss, Term):
            raise TypeError(f"loss must be a Term (see softrank_ad.terms), got {type(loss).__name__}")
        self._aligned = alignments(loss)
        self._loss = loss

    def _apply(self, fn, recurse=True):
        # .to() / .cuda() / .half() / .double() all come here: move the teacher with the student.
        super()._apply(fn, recurse)
        self.teacher._apply(fn, recurse)
        return self

    # -- the public protocol -------------------------------------------------------------------
    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The adversarial inputs of this method's attack (detached)."""
        y = self._check_batch(x, y)
        return self._perturb(x, y)

    def inner_loss(self, x_adv: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The scalar ``perturb`` maximises, evaluated at ``x_adv`` (models as during the attack)."""
        y = self._check_batch(x, y)
        self._check_x_adv(x_adv, x)
        with self._attack_modes(), torch.enable_grad():
            return self._attack_value(x, y, x_adv, {})

    def terms(
        self, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor | None = None, epoch: int | None = None
    ) -> dict[str, torch.Tensor]:
        """The outer loss under ``"loss"`` (with its graph) and its separate terms (detached)."""
        if epoch is not None:
            _validate.check_int(epoch, "epoch")
        y = self._check_batch(x, y)
        if x_adv is None:
            x_adv = self._perturb(x, y)
        else:
            self._check_x_adv(x_adv, x)
        inputs = Inputs(self, x, y, x_adv, epoch, attack=False, aligned=self._aligned)
        may_read_clean = "student_clean" in self.loss.reads()
        if self.clean_bn_forward and not may_read_clean:
            self._bn_forward(x)
        with eval_mode(self.teacher):
            loss, parts = self.loss.evaluate(inputs)
        if self.clean_bn_forward and may_read_clean and not inputs.computed("student_clean"):
            self._bn_forward(x)
        return {"loss": loss, **{k: v.detach() for k, v in parts.items()}}

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor | None = None, epoch: int | None = None
    ) -> torch.Tensor:
        """The outer loss to minimise over the student's parameters."""
        return self.terms(x, y, x_adv, epoch)["loss"]

    # -- helpers -------------------------------------------------------------------------------
    def _bn_forward(self, x: torch.Tensor) -> None:
        with torch.no_grad():
            self.student(x)  # for its BN running statistics only

    @contextmanager
    def _attack_modes(self):
        """Teacher in eval mode; the student in eval mode, or in train mode with
        ``attack_mode="train"``; both modes restored after."""
        with eval_mode(self.teacher), modes_restored(self.student):
            self.student.train(self.attack_mode == "train")
            yield

    def _attack_value(self, x, y, x_adv, persistent: dict) -> torch.Tensor:
        inputs = Inputs(self, x, y, x_adv, None, attack=True, aligned=self._attack_aligned, persistent=persistent)
        return self.attack.loss.evaluate(inputs)[0]

    def _perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with self._attack_modes():
            persistent: dict = {}  # T(x), computed at the first step and kept
            return ascend(
                lambda u: self._attack_value(x, y, u, persistent),
                x,
                epsilon=self.epsilon,
                step_size=self.step_size,
                steps=self.steps,
                x_start=random_start(x, self.epsilon, self.attack.start),
            )

    def _check_batch(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Checks x and y before any forward; returns y as int64."""
        if self.check_finite or self._classes is None:
            _validate.check_images(x, "x")
        else:
            _validate.check_tensor(x, "x")
        if self._classes is None:
            # Once: one sample through both models, so that mismatched class counts and labels
            # out of range are reported here instead of deep inside an attack.
            with torch.no_grad(), eval_mode(self.student, self.teacher):
                z_s, z_t = self.student(x[:1]), self.teacher(x[:1])
            _validate.check_logit_shapes(z_s, z_t)
            self._classes = z_s.shape[1]
        return _validate.check_labels(y, x.shape[0], self._classes if self.check_finite else None, "y")

    def _check_x_adv(self, x_adv: torch.Tensor, x: torch.Tensor) -> None:
        if self.check_finite:
            _validate.check_images(x_adv, "x_adv")
        else:
            _validate.check_tensor(x_adv, "x_adv")
        if x_adv.shape != x.shape:
            raise ValueError(f"x_adv must have the shape of x {tuple(x.shape)}, got {tuple(x_adv.shape)}")

    def extra_repr(self) -> str:
        return (f"attack={self.attack.loss!r} from {self.attack.start!r}, loss={self.loss!r}, "
                f"epsilon={self.epsilon:.4g}, step_size={self.step_size:.4g}, steps={self.steps}, "
                f"kl_reduction={self.kl_reduction!r}, attack_mode={self.attack_mode!r}")


def _reject_unknown(unknown: dict) -> None:
    for name in unknown:
        if name in _RENAMED:
            raise TypeError(f"{name}= was renamed: use {_RENAMED[name]}")
    if unknown:
        raise TypeError(f"got an unexpected keyword argument {sorted(unknown)[0]!r}")


# -- the published methods ---------------------------------------------------------------------
def _kl_attack(start: Start, teacher: str = "adv") -> Attack:
    return Attack(KL(teacher=teacher), start=start)


def _smaraad_attack(attack_align_weight: float, cam: AttributionAlignmentLoss) -> Attack:
    """Alg. 3: max KL(S(x') ‖ T(x')) + c_atk L_align(x') from a uniform start."""
    return Attack(KL() + attack_align_weight * Alignment("adv", cam), start="uniform")


def _check_rank_settings(gamma, scale, position_weights) -> float:
    _validate.check_choice(scale, "scale", SCALES)
    _validate.check_choice(position_weights, "position_weights", get_args(PositionWeights))
    return _validate.check_gamma(gamma)


_SHARED_ARGS = """\
        student, teacher: classifiers on [0, 1] inputs with the same classes.
        gamma: soft-rank sharpness γ of slack matching.
        align_weight: c, the alignment weight in the outer loss.
        attack_align_weight: c_atk, the alignment weight inside the attack [library, default 1
            as Alg. 3].
        scale: soft-rank scaling, see :func:`~softrank_ad.soft_rank` (``"std"`` equals slack
            matching on standardised logits: ranks ignore the shift).
        position_weights: ``"none"`` (the paper) or ``"dcg"``: slack matching weighs each class by
            1 / log2(1 + its rank in the target's logits), so a swap of the teacher's top classes
            costs more than one among its least likely [library extension, see
            :func:`~softrank_ad.dcg_weights`].
        student_layer, teacher_layer: Grad-CAM layers (see :func:`~softrank_ad.grad_cam`).
        target: the Grad-CAM class, ``"label"`` or ``"predicted"`` (the teacher's).
        student_reshape_transform, teacher_reshape_transform: for transformer models, see
            ``reshape_transform`` of :func:`~softrank_ad.grad_cam`.
        **options: ``epsilon``, ``step_size``, ``steps``, ``kl_reduction``, ``attack_mode``,
            ``clean_bn_forward``, ``check_finite``, as in :class:`DistillationObjective`."""


class SmaraADObjective(DistillationObjective):
    __doc__ = r"""SmaraAD (docs/method.md §4–5): slack matching and attribution alignment.

    Attack (Alg. 3): :math:`\max_{x'} \mathrm{KL}(S(x') \| T(x')) + c_{atk} \mathcal{L}_{align}(x')`
    from a uniform random start. Outer loss (Eq. 9, AdaAD-shaped reading), with w = ``adv_weight``:

    .. math::
        w [\mathcal{L}_{sm}(S(x'), T(x')) + c \mathcal{L}_{align}(x') + \lambda \mathrm{KL}(x')]
        + (1 - w) [\text{the same on } x]

    Args:
""" + _SHARED_ARGS + r"""
        adv_weight: w, the weight of the adversarial terms against the clean ones; at 1 (default)
            the clean-input terms are not computed.
        kl_weight: λ, an optional KL term added to each bracket [library extension, default 0].
        rank_axis: what slack matching ranks: ``"classes"`` (default, the paper: each sample's
            logits over its classes), ``"samples"`` (each class's logit over the batch: the other
            reading of "the ranking of their predictions", and what the authors' snippet does
            when handed (B, C) logits; needs B ≥ 2) or ``"both"`` (the two added)
            [library extension]. Sample ranks see the local batch under
            ``DistributedDataParallel``.

    Shape: as :class:`DistillationObjective`.

    Example:
        >>> objective = SmaraADObjective(student, teacher)                # doctest: +SKIP
        >>> optimizer = torch.optim.SGD(objective.parameters(), lr=0.1)    # doctest: +SKIP
        >>> loss = objective(x, y, epoch=epoch); loss.backward()           # doctest: +SKIP

    Reference: Yin et al., "Adversarial Distillation Based on Slack Matching and Attribution
    Region Alignment", CVPR 2024.
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        *,
        gamma: float = DEFAULT_GAMMA,
        adv_weight: float = 1.0,
        align_weight: float = 1.0,
        kl_weight: float = 0.0,
        attack_align_weight: float = 1.0,
        scale: Scale = "none",
        position_weights: PositionWeights = "none",
        rank_axis: RankAxes = "classes",
        student_layer: LayerSpec = None,
        teacher_layer: LayerSpec = None,
        target: CAMTarget = "label",
        student_reshape_transform: ReshapeTransform | None = None,
        teacher_reshape_transform: ReshapeTransform | None = None,
        **options,
    ) -> None:
        self_gamma = _check_rank_settings(gamma, scale, position_weights)
        _validate.check_choice(rank_axis, "rank_axis", get_args(RankAxes))
        adv_weight = _validate.check_unit_interval(adv_weight, "adv_weight")
        align_weight = _validate.check_non_negative(align_weight, "align_weight")
        kl_weight = _validate.check_non_negative(kl_weight, "kl_weight")
        attack_align_weight = _validate.check_non_negative(attack_align_weight, "attack_align_weight")
        cam = AttributionAlignmentLoss(student_layer, teacher_layer, target,
                                       student_reshape_transform=student_reshape_transform,
                                       teacher_reshape_transform=teacher_reshape_transform)
        axes = ("classes", "samples") if rank_axis == "both" else (rank_axis,)

        def bracket(view: str) -> Term:
            ranks = [SlackMatching(student=view, teacher=view, gamma=self_gamma, scale=scale,
                                   position_weights=position_weights, axis=axis) for axis in axes]
            total = ranks[0] + ranks[1] if len(ranks) == 2 else ranks[0]
            return total + align_weight * Alignment(view, cam) + kl_weight * KL(student=view, teacher=view)

        super().__init__(student, teacher, attack=_smaraad_attack(attack_align_weight, cam),
                         loss=adv_weight * bracket("adv") + (1 - adv_weight) * bracket("clean"), **options)
        self.gamma, self.adv_weight, self.align_weight, self.kl_weight = self_gamma, adv_weight, align_weight, kl_weight
        self.attack_align_weight, self.scale, self.position_weights = attack_align_weight, scale, position_weights
        self.rank_axis = rank_axis


class SmaraADPlusPlusObjective(DistillationObjective):
    __doc__ = r"""SmaraAD++ (docs/method.md §5, Eq. 10 in an IAD-style reading): SmaraAD's attack, and
    slack matching weighted per sample by the teacher's confidence in the true class,
    :math:`w_b = p_T(y_b \mid x'_b)^{\beta_w}` (no gradient), with a self term towards S(x):

    .. math::
        (1 - c_{ce}) \operatorname{mean}_b [w_b \mathcal{L}_{sm,b}(S(x'), T(x'))
            + (1 - w_b) \mathcal{L}_{sm,b}(S(x'), S(x))]
        + c \mathcal{L}_{align}(x') + c_{ce} \mathrm{CE}(S(x), y)

    (the paper's α is 1 − c_ce). Slack matching ranks classes only: the weights are per sample.

    Args:
""" + _SHARED_ARGS + r"""
        ce_weight: c_ce, the weight of the clean cross-entropy (default 0: not computed).
        weight_power: β_w of the weights.
        weights_from_epoch: w = 1 before this epoch (60, for a 200-epoch schedule). A call with
            ``epoch=None`` uses the weights (no warm-up).

    Shape: as :class:`DistillationObjective`; ``terms`` adds the (B,) ``weights``.

    Example:
        >>> objective = SmaraADPlusPlusObjective(student, teacher, weights_from_epoch=60)  # doctest: +SKIP
        >>> loss = objective(x, y, epoch=epoch); loss.backward()                          # doctest: +SKIP

    Reference: Yin et al., CVPR 2024; the weighting follows IAD (Zhu et al., ICLR 2022).
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        *,
        gamma: float = DEFAULT_GAMMA,
        ce_weight: float = 0.0,
        align_weight: float = 1.0,
        weight_power: float = 0.1,
        weights_from_epoch: int = 60,
        attack_align_weight: float = 1.0,
        scale: Scale = "none",
        position_weights: PositionWeights = "none",
        student_layer: LayerSpec = None,
        teacher_layer: LayerSpec = None,
        target: CAMTarget = "label",
        student_reshape_transform: ReshapeTransform | None = None,
        teacher_reshape_transform: ReshapeTransform | None = None,
        **options,
    ) -> None:
        gamma = _check_rank_settings(gamma, scale, position_weights)
        ce_weight = _validate.check_unit_interval(ce_weight, "ce_weight")
        align_weight = _validate.check_non_negative(align_weight, "align_weight")
        attack_align_weight = _validate.check_non_negative(attack_align_weight, "attack_align_weight")
        weighted = ConfidenceWeightedSlackMatching(weight_power=weight_power, weights_from_epoch=weights_from_epoch,
                                                   gamma=gamma, scale=scale, position_weights=position_weights)
        cam = AttributionAlignmentLoss(student_layer, teacher_layer, target,
                                       student_reshape_transform=student_reshape_transform,
                                       teacher_reshape_transform=teacher_reshape_transform)
        loss = (1 - ce_weight) * weighted + align_weight * Alignment("adv", cam) + ce_weight * CrossEntropy(student="clean")
        super().__init__(student, teacher, attack=_smaraad_attack(attack_align_weight, cam), loss=loss, **options)
        self.gamma, self.ce_weight, self.align_weight = gamma, ce_weight, align_weight
        self.weight_power, self.weights_from_epoch = weighted.weight_power, weighted.weights_from_epoch
        self.attack_align_weight, self.scale, self.position_weights = attack_align_weight, scale, position_weights


class AdaADObjective(DistillationObjective):
    r"""AdaAD (Huang et al., 2023): the attack maximises KL(S(x') ‖ T(x')) from x + 0.001·N(0, 1);
    the outer loss is :math:`w \mathrm{KL}(S(x') \| T(x')) + (1-w) \mathrm{KL}(S(x) \| T(x))`.

    Args:
        student, teacher: classifiers on [0, 1] inputs with the same classes.
        adv_weight: w; at 1 (default) the clean term is not computed.
        **options: as in :class:`DistillationObjective`.

    Shape: as :class:`DistillationObjective`.

    Example:
        >>> loss = AdaADObjective(student, teacher)(x, y); loss.backward()  # doctest: +SKIP
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, *, adv_weight: float = 1.0, **options) -> None:
        adv_weight = _validate.check_unit_interval(adv_weight, "adv_weight")
        loss = adv_weight * KL() + (1 - adv_weight) * KL(student="clean", teacher="clean")
        # x + 0.001·N(0, 1), as the official code starts its attack.
        super().__init__(student, teacher, attack=_kl_attack("normal"), loss=loss, **options)
        self.adv_weight = adv_weight


class RSLADObjective(DistillationObjective):
    r"""RSLAD (Zi et al., 2021): the attack maximises KL(S(x') ‖ T(x)) from x + 0.001·N(0, 1); the
    outer loss is :math:`w \mathrm{KL}(S(x') \| T(x)) + (1 - w) \mathrm{KL}(S(x) \| T(x))`, w = 5/6.

    Args:
        student, teacher: classifiers on [0, 1] inputs with the same classes.
        adv_weight: w.
        **options: as in :class:`DistillationObjective`.

    Shape: as :class:`DistillationObjective`.

    Example:
        >>> loss = RSLADObjective(student, teacher)(x, y); loss.backward()  # doctest: +SKIP
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, *, adv_weight: float = 5 / 6, **options) -> None:
        adv_weight = _validate.check_unit_interval(adv_weight, "adv_weight")
        loss = adv_weight * KL(teacher="clean") + (1 - adv_weight) * KL(student="clean", teacher="clean")
        super().__init__(student, teacher, attack=_kl_attack("normal", teacher="clean"), loss=loss, **options)
        self.adv_weight = adv_weight


class ARDObjective(DistillationObjective):
    r"""ARD (Goldblum et al., 2020): the attack maximises CE(S(x'), y) from a uniform start; the
    outer loss is :math:`(1 - c_{ce}) \tau^2 \mathrm{KL}(S(x')/\tau \| T(x)/\tau) + c_{ce} \mathrm{CE}(S(x), y)`
    (the paper's α is 1 − c_ce).

    Args:
        student, teacher: classifiers on [0, 1] inputs with the same classes.
        ce_weight: c_ce, the weight of the clean cross-entropy; at 0 (default) it is not computed.
        temperature: τ.
        **options: as in :class:`DistillationObjective` (official ARD: ``attack_mode="train"``).

    Shape: as :class:`DistillationObjective`.

    Example:
        >>> loss = ARDObjective(student, teacher, temperature=30.0)(x, y)  # doctest: +SKIP
    """

    def __init__(
        self, student: nn.Module, teacher: nn.Module, *, ce_weight: float = 0.0, temperature: float = 30.0, **options
    ) -> None:
        ce_weight = _validate.check_unit_interval(ce_weight, "ce_weight")
        tau = _validate.check_positive(temperature, "temperature")
        loss = (1 - ce_weight) * tau * tau * KL(teacher="clean", temperature=tau) + ce_weight * CrossEntropy()
        super().__init__(student, teacher, attack=Attack(CrossEntropy(student="adv")), loss=loss, **options)
        self.ce_weight, self.temperature = ce_weight, tau


#: The methods by name, for :func:`make_objective` and the examples' command lines.
OBJECTIVES: dict[str, type[DistillationObjective]] = {
    "smaraad": SmaraADObjective,
    "smaraad++": SmaraADPlusPlusObjective,
    "ard": ARDObjective,
    "rslad": RSLADObjective,
    "adaad": AdaADObjective,
}


def make_objective(
    name: str, student: nn.Module, teacher: nn.Module, *, loss: Term | None = None, add: Term | None = None,
    **hparams,
) -> DistillationObjective:
    """A published objective by name (any case): ``"smaraad"``, ``"smaraad++"``, ``"ard"``,
    ``"rslad"`` or ``"adaad"``; ``hparams`` go to the class's constructor (``epsilon``,
    ``step_size``, ``steps`` and the other :class:`DistillationObjective` options for all).

    ``loss=`` replaces the method's outer loss (its attack and budget stay); ``add=`` adds terms
    to it (to the replacement, if both are given). Both take :mod:`softrank_ad.terms`.

    Example:
        >>> from softrank_ad.terms import DIST, KendallMatching
        >>> objective = make_objective("smaraad++", student, teacher, gamma=2.0)             # doctest: +SKIP
        >>> objective = make_objective("adaad", student, teacher, add=0.5 * KendallMatching())  # doctest: +SKIP
        >>> objective = make_objective("adaad", student, teacher, loss=DIST())               # doctest: +SKIP
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in OBJECTIVES:
        raise ValueError(f"unknown method {name!r}; choose one of {sorted(OBJECTIVES)}")
    for arg, value in (("loss", loss), ("add", add)):
        if value is not None and not isinstance(value, Term):
            raise TypeError(f"{arg} must be a Term (see softrank_ad.terms), got {type(value).__name__}")
    objective = OBJECTIVES[key](student, teacher, **hparams)
    if loss is not None or add is not None:
        base = loss if loss is not None else objective.loss
        objective.loss = base + add if add is not None else base
    return objective
