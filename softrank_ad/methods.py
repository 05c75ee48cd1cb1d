"""The published methods, each an :class:`~softrank_ad.engine.Attack` and an outer loss of
:mod:`~softrank_ad.terms` on the :class:`~softrank_ad.engine.DistillationObjective` engine.

A method class only validates its hyperparameters, builds those two values and keeps its
hyperparameters in one place, :attr:`hparams`. Every class takes the engine's options
(``epsilon``, ``step_size``, ``steps``, ``kl_reduction``, ``attack_mode``, ``clean_bn_forward``,
``check_finite``, ``student_forwards``, ``clip_start``) as
:class:`~softrank_ad.engine.DistillationObjective` documents them.
"""

from __future__ import annotations

import functools
import inspect
from types import MappingProxyType
from typing import Any

from torch import nn

from softrank_ad import _deprecation, _validate
from softrank_ad.attribution import AttributionAlignmentLoss
from softrank_ad.divergence import KLReduction
from softrank_ad.engine import Attack, AttackMode, DistillationObjective
from softrank_ad.rank import DEFAULT_GAMMA, Scale
from softrank_ad.spearman import PositionWeights
from softrank_ad.terms import (
    KL,
    RANK_AXES,
    Alignment,
    ConfidenceWeightedSlackMatching,
    CrossEntropy,
    Introspection,
    LinearizedTeacherKL,
    RankAxis,
    SlackMatching,
    Term,
    TransferWeightedKL,
    View,
)

#: 0.1 took the Grad-CAM settings one by one; 0.2 takes them as one ``alignment=``.
CAM_ARGUMENTS_0_1 = (
    "student_layer",
    "teacher_layer",
    "target",
    "student_reshape_transform",
    "teacher_reshape_transform",
)


def _folds_cam_settings(init):
    """Accept 0.1's separate Grad-CAM arguments, with a warning, as ``alignment=``."""

    @functools.wraps(init)
    def wrapper(self, student, teacher, **kwargs):
        old = {name: kwargs.pop(name) for name in CAM_ARGUMENTS_0_1 if name in kwargs}
        if old:
            if "alignment" in kwargs:
                raise TypeError(f"{type(self).__name__}: pass alignment= only, not also {sorted(old)}")
            _deprecation.warn(
                f"{type(self).__name__}({', '.join(f'{n}=' for n in old)})",
                "alignment=AttributionAlignmentLoss(...) with the same arguments",
            )
            kwargs["alignment"] = AttributionAlignmentLoss(**old)
        init(self, student, teacher, **kwargs)

    wrapper.__signature__ = inspect.signature(init)  # type: ignore[attr-defined]
    return wrapper


class Method(DistillationObjective):
    """A published method: the engine with the method's attack and loss, and its
    hyperparameters in :attr:`hparams` (read-only)."""

    def _build(
        self,
        student: nn.Module,
        teacher: nn.Module,
        attack: Attack,
        loss: Term,
        hparams: dict[str, Any],
        options: dict[str, Any],
    ) -> None:
        super().__init__(student, teacher, attack=attack, loss=loss, **options)
        self._hparams = MappingProxyType(hparams)

    @property
    def hparams(self) -> MappingProxyType:
        """The method's hyperparameters as given (validated), one place for each."""
        return self._hparams

    def extra_repr(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self._hparams.items() if not isinstance(v, nn.Module))
        return f"{shown}, {super().extra_repr()}"


def _options(
    epsilon, step_size, steps, kl_reduction, attack_mode, clean_bn_forward, check_finite, student_forwards, clip_start
) -> dict:
    return dict(
        epsilon=epsilon,
        step_size=step_size,
        steps=steps,
        kl_reduction=kl_reduction,
        attack_mode=attack_mode,
        clean_bn_forward=clean_bn_forward,
        check_finite=check_finite,
        student_forwards=student_forwards,
        clip_start=clip_start,
    )


def _cam(alignment: AttributionAlignmentLoss | None) -> AttributionAlignmentLoss:
    if alignment is None:
        return AttributionAlignmentLoss()
    if not isinstance(alignment, AttributionAlignmentLoss):
        raise TypeError(f"alignment must be an AttributionAlignmentLoss, got {type(alignment).__name__}")
    return alignment


def _smaraad_attack(attack_align_weight: float, cam: AttributionAlignmentLoss) -> Attack:
    """Alg. 3: max KL(S(x') ‖ T(x')) + c_atk L_align(x') from a uniform start."""
    return Attack(KL() + attack_align_weight * Alignment(view="adv", loss_fn=cam), start="uniform")


_ENGINE_ARGS = """epsilon, step_size, steps, kl_reduction, attack_mode, clean_bn_forward, check_finite, student_forwards, clip_start: the
            engine's options, as in :class:`~softrank_ad.engine.DistillationObjective`;
            :func:`~softrank_ad.official_options` gives those that reproduce the official code."""


class SmaraADObjective(Method):
    __doc__ = (
        r"""SmaraAD (docs/method.md §4–5): slack matching and attribution alignment.

    Attack (Alg. 3): :math:`\max_{x'} \mathrm{KL}(S(x') \| T(x')) + c_{atk} \mathcal{L}_{align}(x')`
    from a uniform random start. Outer loss (Eq. 9, AdaAD-shaped reading), with w = ``adv_weight``:

    .. math::
        w [\mathcal{L}_{sm}(S(x'), T(x')) + c \mathcal{L}_{align}(x') + \lambda \mathrm{KL}(x')]
        + (1 - w) [\text{the same on } x]

    Args:
        student, teacher: classifiers on [0, 1] inputs with the same classes.
        gamma: soft-rank sharpness γ of slack matching.
        adv_weight: w, the weight of the adversarial terms against the clean ones; at 1 (default)
            the clean-input terms are not computed.
        align_weight: c, the alignment weight in the outer loss.
        kl_weight: λ, an optional KL term added to each bracket [library extension, default 0].
        attack_align_weight: c_atk, the alignment weight inside the attack [library, default 1
            as Alg. 3].
        scale: soft-rank scaling, see :func:`~softrank_ad.soft_rank` (``"std"`` equals slack
            matching on standardised logits: ranks ignore the shift).
        position_weights: ``"none"`` (the paper) or ``"dcg"``: each class weighs
            1 / log2(1 + its rank in the target's logits) [library extension, see
            :func:`~softrank_ad.dcg_weights`].
        rank_axis: what slack matching ranks: ``"classes"`` (default, the paper: each sample's
            logits over its classes), ``"samples"`` (each class's logit over the batch: the other
            reading of "the ranking of their predictions", and what the authors' snippet does
            when handed (B, C) logits; needs B ≥ 2) or ``"both"`` (the two added)
            [library extension]. Sample ranks see the local batch under
            ``DistributedDataParallel``.
        alignment: the Grad-CAM settings (layers, target class, reshape transforms), an
            :class:`~softrank_ad.AttributionAlignmentLoss`; default: its defaults.
        """
        + _ENGINE_ARGS
        + r"""

    Shape: as :class:`~softrank_ad.engine.DistillationObjective`.

    Example:
        >>> objective = SmaraADObjective(cnn, cnn_teacher, steps=1)
        >>> optimizer = torch.optim.SGD(objective.parameters(), lr=0.1)
        >>> objective(images, labels, epoch=0).backward()

    Reference: Yin et al., "Adversarial Distillation Based on Slack Matching and Attribution
    Region Alignment", CVPR 2024.
    """
    )

    @_folds_cam_settings
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
        rank_axis: RankAxis = "classes",
        alignment: AttributionAlignmentLoss | None = None,
        epsilon: float = 8 / 255,
        step_size: float = 2 / 255,
        steps: int = 10,
        kl_reduction: KLReduction = "batchmean",
        attack_mode: AttackMode = "eval",
        clean_bn_forward: bool = False,
        check_finite: bool = True,
        student_forwards: tuple[View, ...] = (),
        clip_start: bool = True,
    ) -> None:
        _validate.check_choice(rank_axis, "rank_axis", RANK_AXES)
        adv_weight = _validate.check_unit_interval(adv_weight, "adv_weight")
        align_weight = _validate.check_non_negative(align_weight, "align_weight")
        kl_weight = _validate.check_non_negative(kl_weight, "kl_weight")
        attack_align_weight = _validate.check_non_negative(attack_align_weight, "attack_align_weight")
        cam = _cam(alignment)
        gamma = _validate.check_gamma(gamma)

        def bracket(view: View) -> Term:
            ranks = SlackMatching(
                student=view,
                teacher=view,
                gamma=gamma,
                scale=scale,
                position_weights=position_weights,
                rank_axis=rank_axis,
            )
            return ranks + align_weight * Alignment(view=view, loss_fn=cam) + kl_weight * KL(student=view, teacher=view)

        # Both brackets are built (and their settings checked) before the models are touched.
        loss = adv_weight * bracket("adv") + (1 - adv_weight) * bracket("clean")
        hparams = dict(
            gamma=gamma,
            adv_weight=adv_weight,
            align_weight=align_weight,
            kl_weight=kl_weight,
            attack_align_weight=attack_align_weight,
            scale=scale,
            position_weights=position_weights,
            rank_axis=rank_axis,
            alignment=cam,
        )
        self._build(
            student,
            teacher,
            _smaraad_attack(attack_align_weight, cam),
            loss,
            hparams,
            _options(
                epsilon,
                step_size,
                steps,
                kl_reduction,
                attack_mode,
                clean_bn_forward,
                check_finite,
                student_forwards,
                clip_start,
            ),
        )


class SmaraADPlusPlusObjective(Method):
    __doc__ = (
        r"""SmaraAD++ (docs/method.md §5, Eq. 10 in an IAD-style reading): SmaraAD's attack, and
    slack matching weighted per sample by the teacher's confidence in the true class,
    :math:`w_b = p_T(y_b \mid x'_b)^{\beta_w}` (no gradient), with a self term towards S(x):

    .. math::
        (1 - c_{ce}) \operatorname{mean}_b [w_b \mathcal{L}_{sm,b}(S(x'), T(x'))
            + (1 - w_b) \mathcal{L}_{sm,b}(S(x'), S(x))]
        + c \mathcal{L}_{align}(x') + c_{ce} \mathrm{CE}(S(x), y)

    (the paper's α is 1 − c_ce). Slack matching ranks classes only: the weights are per sample.

    Args:
        student, teacher: classifiers on [0, 1] inputs with the same classes.
        gamma, scale, position_weights, align_weight, attack_align_weight, alignment: as in
            :class:`SmaraADObjective`.
        ce_weight: c_ce, the weight of the clean cross-entropy (default 0: not computed).
        weight_power: β_w of the per-sample weights.
        weights_from_epoch: w = 1 before this epoch (60, for a 200-epoch schedule). A call with
            ``epoch=None`` uses the weights (no warm-up).
        """
        + _ENGINE_ARGS
        + r"""

    Shape: as :class:`~softrank_ad.engine.DistillationObjective`; ``breakdown`` adds the (B,)
    ``sample_weights``.

    Example:
        >>> objective = SmaraADPlusPlusObjective(cnn, cnn_teacher, weights_from_epoch=0, steps=1)
        >>> objective.breakdown(images, labels, epoch=1)["sample_weights"].shape
        torch.Size([4])

    Reference: Yin et al., CVPR 2024; the weighting follows IAD (Zhu et al., ICLR 2022).
    """
    )

    @_folds_cam_settings
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
        alignment: AttributionAlignmentLoss | None = None,
        epsilon: float = 8 / 255,
        step_size: float = 2 / 255,
        steps: int = 10,
        kl_reduction: KLReduction = "batchmean",
        attack_mode: AttackMode = "eval",
        clean_bn_forward: bool = False,
        check_finite: bool = True,
        student_forwards: tuple[View, ...] = (),
        clip_start: bool = True,
    ) -> None:
        ce_weight = _validate.check_unit_interval(ce_weight, "ce_weight")
        align_weight = _validate.check_non_negative(align_weight, "align_weight")
        attack_align_weight = _validate.check_non_negative(attack_align_weight, "attack_align_weight")
        weighted = ConfidenceWeightedSlackMatching(
            weight_power=weight_power,
            weights_from_epoch=weights_from_epoch,
            gamma=gamma,
            scale=scale,
            position_weights=position_weights,
        )
        cam = _cam(alignment)
        loss = (
            (1 - ce_weight) * weighted
            + align_weight * Alignment(view="adv", loss_fn=cam)
            + ce_weight * CrossEntropy(student="clean")
        )
        hparams = dict(
            gamma=weighted.slack.gamma,
            ce_weight=ce_weight,
            align_weight=align_weight,
            weight_power=weighted.weight_power,
            weights_from_epoch=weighted.weights_from_epoch,
            attack_align_weight=attack_align_weight,
            scale=scale,
            position_weights=position_weights,
            alignment=cam,
        )
        self._build(
            student,
            teacher,
            _smaraad_attack(attack_align_weight, cam),
            loss,
            hparams,
            _options(
                epsilon,
                step_size,
                steps,
                kl_reduction,
                attack_mode,
                clean_bn_forward,
                check_finite,
                student_forwards,
                clip_start,
            ),
        )


class AdaADObjective(Method):
    __doc__ = (
        r"""AdaAD (Huang et al., 2023): the attack maximises KL(S(x') ‖ T(x')) from x + 0.001·N(0, 1);
    the outer loss is :math:`w \mathrm{KL}(S(x') \| T(x')) + (1-w) \mathrm{KL}(S(x) \| T(x))`.

    Args:
        student, teacher: classifiers on [0, 1] inputs with the same classes.
        adv_weight: w; at 1 (default) the clean term is not computed.
        """
        + _ENGINE_ARGS
        + r"""

    Shape: as :class:`~softrank_ad.engine.DistillationObjective`.

    Example:
        >>> AdaADObjective(student, teacher, steps=2)(x, y).backward()
    """
    )

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        *,
        adv_weight: float = 1.0,
        epsilon: float = 8 / 255,
        step_size: float = 2 / 255,
        steps: int = 10,
        kl_reduction: KLReduction = "batchmean",
        attack_mode: AttackMode = "eval",
        clean_bn_forward: bool = False,
        check_finite: bool = True,
        student_forwards: tuple[View, ...] = (),
        clip_start: bool = True,
    ) -> None:
        adv_weight = _validate.check_unit_interval(adv_weight, "adv_weight")
        loss = adv_weight * KL() + (1 - adv_weight) * KL(student="clean", teacher="clean")
        # x + 0.001·N(0, 1), as the official code starts its attack.
        self._build(
            student,
            teacher,
            Attack(KL(), start="normal"),
            loss,
            dict(adv_weight=adv_weight),
            _options(
                epsilon,
                step_size,
                steps,
                kl_reduction,
                attack_mode,
                clean_bn_forward,
                check_finite,
                student_forwards,
                clip_start,
            ),
        )


class RSLADObjective(Method):
    __doc__ = (
        r"""RSLAD (Zi et al., 2021): the attack maximises KL(S(x') ‖ T(x)) from x + 0.001·N(0, 1); the
    outer loss is :math:`w \mathrm{KL}(S(x') \| T(x)) + (1 - w) \mathrm{KL}(S(x) \| T(x))`, w = 5/6.
    The official code adds 1e-5 inside log p_T: a constant of the teacher alone, so its logged
    loss differs from this one by that constant and its gradients are equal.

    Args:
        student, teacher: classifiers on [0, 1] inputs with the same classes.
        adv_weight: w.
        """
        + _ENGINE_ARGS
        + r"""

    Shape: as :class:`~softrank_ad.engine.DistillationObjective`.

    Example:
        >>> RSLADObjective(student, teacher, steps=2)(x, y).backward()
    """
    )

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        *,
        adv_weight: float = 5 / 6,
        epsilon: float = 8 / 255,
        step_size: float = 2 / 255,
        steps: int = 10,
        kl_reduction: KLReduction = "batchmean",
        attack_mode: AttackMode = "eval",
        clean_bn_forward: bool = False,
        check_finite: bool = True,
        student_forwards: tuple[View, ...] = (),
        clip_start: bool = True,
    ) -> None:
        adv_weight = _validate.check_unit_interval(adv_weight, "adv_weight")
        loss = adv_weight * KL(teacher="clean") + (1 - adv_weight) * KL(student="clean", teacher="clean")
        self._build(
            student,
            teacher,
            Attack(KL(teacher="clean"), start="normal"),
            loss,
            dict(adv_weight=adv_weight),
            _options(
                epsilon,
                step_size,
                steps,
                kl_reduction,
                attack_mode,
                clean_bn_forward,
                check_finite,
                student_forwards,
                clip_start,
            ),
        )


class ARDObjective(Method):
    __doc__ = (
        r"""ARD (Goldblum et al., 2020): the attack maximises CE(S(x'), y) from a uniform start; the
    outer loss is :math:`(1 - c_{ce}) \tau^2 \mathrm{KL}(S(x')/\tau \| T(x)/\tau) + c_{ce} \mathrm{CE}(S(x), y)`
    (the paper's α is 1 − c_ce).

    Args:
        student, teacher: classifiers on [0, 1] inputs with the same classes.
        ce_weight: c_ce, the weight of the clean cross-entropy; at 0 (default) it is not computed.
        temperature: τ.
        """
        + _ENGINE_ARGS
        + r""" Official ARD: ``official_options("ard")``.

    Shape: as :class:`~softrank_ad.engine.DistillationObjective`.

    Example:
        >>> ARDObjective(student, teacher, temperature=30.0, steps=2)(x, y).backward()
    """
    )

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        *,
        ce_weight: float = 0.0,
        temperature: float = 30.0,
        epsilon: float = 8 / 255,
        step_size: float = 2 / 255,
        steps: int = 10,
        kl_reduction: KLReduction = "batchmean",
        attack_mode: AttackMode = "eval",
        clean_bn_forward: bool = False,
        check_finite: bool = True,
        student_forwards: tuple[View, ...] = (),
        clip_start: bool = True,
    ) -> None:
        ce_weight = _validate.check_unit_interval(ce_weight, "ce_weight")
        tau = _validate.check_positive(temperature, "temperature")
        loss = (1 - ce_weight) * tau * tau * KL(teacher="clean", temperature=tau) + ce_weight * CrossEntropy()
        self._build(
            student,
            teacher,
            Attack(CrossEntropy(student="adv")),
            loss,
            dict(ce_weight=ce_weight, temperature=tau),
            _options(
                epsilon,
                step_size,
                steps,
                kl_reduction,
                attack_mode,
                clean_bn_forward,
                check_finite,
                student_forwards,
                clip_start,
            ),
        )


class _Introspective(Method):
    """IAD's family: the official code evaluates S(x) once more inside the introspection term,
    which exists only from its first epoch, so one of the named forwards drops out before it."""

    _introspection: Introspection

    def _forwards(self, epoch: int | None) -> tuple[View, ...]:
        forwards = self.student_forwards
        if self._introspection.active(epoch) or forwards.count("clean") < 2:
            return forwards
        last = len(forwards) - 1 - forwards[::-1].index("clean")
        return forwards[:last] + forwards[last + 1 :]


def _introspective_loss(
    teacher_view: View, ce_weight: float, temperature: float, weight_power: float, from_epoch: int
) -> tuple[Term, Introspection, dict[str, Any]]:
    ce_weight = _validate.check_unit_interval(ce_weight, "ce_weight")
    tau = _validate.check_positive(temperature, "temperature")
    introspection = Introspection(weight_power=weight_power, from_epoch=from_epoch)
    loss = (
        (1 - ce_weight) * tau * tau * KL(teacher=teacher_view, temperature=tau)
        + (1 - ce_weight) * introspection
        + ce_weight * CrossEntropy()
    )
    hparams = dict(
        ce_weight=ce_weight,
        temperature=tau,
        weight_power=introspection.weight_power,
        introspection_from_epoch=introspection.from_epoch,
    )
    return loss, introspection, hparams


_IAD_LOSS = r"""

    .. math::
        (1 - c_{ce}) \big[\tau^2 \mathrm{KL}(S(x')/\tau \| T(%s)/\tau)
            + \operatorname{mean}_b (1 - w_b) \mathrm{KL}(S(x'_b) \| S(x_b))\big] + c_{ce} \mathrm{CE}(S(x), y)

    with :math:`w_b = p_T(y_b \mid x'_b)^{\beta}` (no gradient) and the introspection term (see
    :class:`~softrank_ad.terms.Introspection`) on from epoch ``introspection_from_epoch``. As in
    the official code the teacher term is not weighted by w (the paper's text weights both) and
    the gradient flows through S(x) in the introspection term."""


class IADObjective(_Introspective):
    __doc__ = (
        r"""IAD (IAD-I, Zhu et al., ICLR 2022): ARD's attack (CE(S(x'), y) from a uniform start) and
    ARD's loss with the student's introspection, trusting the teacher on a sample only as far as
    the teacher is right on it:"""
        + _IAD_LOSS % "x"
        + r"""

    Args:
        student, teacher: classifiers on [0, 1] inputs with the same classes.
        ce_weight: c_ce (the code's 1 − α; 0 by default, as its α = 1).
        temperature: τ (1, the code's default).
        weight_power: β (0.1).
        introspection_from_epoch: the first epoch of the introspection term (60 of 200).
        """
        + _ENGINE_ARGS
        + r"""

    Shape: as :class:`~softrank_ad.engine.DistillationObjective`; ``breakdown`` adds the (B,)
    ``sample_weights`` once the introspection is on.

    Example:
        >>> IADObjective(student, teacher, steps=2)(x, y, epoch=60).backward()

    Reference: Zhu et al., "Reliable Adversarial Distillation with Unreliable Teachers",
    ICLR 2022; official code ZFancy/IAD, ``IAD-I.py``.
    """
    )

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        *,
        ce_weight: float = 0.0,
        temperature: float = 1.0,
        weight_power: float = 0.1,
        introspection_from_epoch: int = 60,
        epsilon: float = 8 / 255,
        step_size: float = 2 / 255,
        steps: int = 10,
        kl_reduction: KLReduction = "batchmean",
        attack_mode: AttackMode = "eval",
        clean_bn_forward: bool = False,
        check_finite: bool = True,
        student_forwards: tuple[View, ...] = (),
        clip_start: bool = True,
    ) -> None:
        loss, self._introspection, hparams = _introspective_loss(
            "clean", ce_weight, temperature, weight_power, introspection_from_epoch
        )
        self._build(
            student,
            teacher,
            Attack(CrossEntropy(student="adv"), start="uniform"),
            loss,
            hparams,
            _options(
                epsilon,
                step_size,
                steps,
                kl_reduction,
                attack_mode,
                clean_bn_forward,
                check_finite,
                student_forwards,
                clip_start,
            ),
        )


class AdaIADObjective(_Introspective):
    __doc__ = (
        r"""AdaIAD (Huang et al., CVPR 2023): AdaAD's attack (KL(S(x') ‖ T(x')) from
    x + 0.001·N(0, 1)) and IAD's loss with the teacher at x':"""
        + _IAD_LOSS % "x'"
        + r"""

    Args:
        student, teacher: classifiers on [0, 1] inputs with the same classes.
        ce_weight: c_ce (the code's 1 − IAD_alpha; 0 by default).
        temperature: τ (30: the AdaAD code's default ``--temp``, which its AdaIAD command keeps).
        weight_power: β (0.1).
        introspection_from_epoch: the first epoch of the introspection term (60 of 200).
        """
        + _ENGINE_ARGS
        + r"""

    Shape: as :class:`~softrank_ad.engine.DistillationObjective`.

    Example:
        >>> AdaIADObjective(student, teacher, steps=2)(x, y, epoch=60).backward()

    Reference: Huang et al., "Boosting Accuracy and Robustness of Student Models via Adaptive
    Adversarial Distillation", CVPR 2023; official code boyellow/AdaAD, ``main.py``
    (method ``AdaAD_with_IAD1``).
    """
    )

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        *,
        ce_weight: float = 0.0,
        temperature: float = 30.0,
        weight_power: float = 0.1,
        introspection_from_epoch: int = 60,
        epsilon: float = 8 / 255,
        step_size: float = 2 / 255,
        steps: int = 10,
        kl_reduction: KLReduction = "batchmean",
        attack_mode: AttackMode = "eval",
        clean_bn_forward: bool = False,
        check_finite: bool = True,
        student_forwards: tuple[View, ...] = (),
        clip_start: bool = True,
    ) -> None:
        loss, self._introspection, hparams = _introspective_loss(
            "adv", ce_weight, temperature, weight_power, introspection_from_epoch
        )
        self._build(
            student,
            teacher,
            Attack(KL(), start="normal"),
            loss,
            hparams,
            _options(
                epsilon,
                step_size,
                steps,
                kl_reduction,
                attack_mode,
                clean_bn_forward,
                check_finite,
                student_forwards,
                clip_start,
            ),
        )


class SAADObjective(Method):
    __doc__ = (
        r"""SAAD (Lee and Chung, TMLR 2026): each sample's distillation weighted by how well its
    adversarial example transfers from student to teacher, read from the teacher's entropy at x'.

    Attack: :math:`\max_{x'} \mathrm{KL}(S(x') \| \tilde T)` from x + 0.001·N(0, 1), with
    :math:`\tilde T` the teacher's logits at x corrected to first order on the true class along
    x' − x (:class:`~softrank_ad.terms.LinearizedTeacherKL`). Outer loss
    (:class:`~softrank_ad.terms.TransferWeightedKL`):

    .. math::
        \operatorname{mean}_b \big[w_b (\mathrm{KL}_b(x') + c_{igdm}\, r(e)\, \mathrm{IGDM}_b)
            + \beta (1 - \hat w_b) \mathrm{KL}_b(x)\big], \quad w_b = s\,(H_b - \min H)

    Args:
        student, teacher: classifiers on [0, 1] inputs with the same classes.
        clean_weight: β (0, the script's ``--beta``).
        igdm_weight: c_igdm (1 on CIFAR-10).
        ramp_epochs: the IGDM ramp's length r(e) = min(1, (epoch + 1) / ramp_epochs) (the run's
            epochs, 200); None: no ramp.
        entropy_order: α of the teacher's Rényi entropy (1: Shannon, the script's ``--gamma``).
        entropy_scale: s (5, fixed in the code).
        linearization_weight: λ of the attack's correction (1, ``--lambda_inner``).
        """
        + _ENGINE_ARGS
        + r"""

    The official script also averages the student's weights from epoch 95 (SWA, with BN
    statistics recomputed) and evaluates that average: a training-loop choice, not part of the
    objective (see the protocol table in the docs).

    Shape: as :class:`~softrank_ad.engine.DistillationObjective`; ``breakdown`` adds the (B,)
    ``sample_weights``.

    Example:
        >>> SAADObjective(student, teacher, steps=2)(x, y, epoch=0).backward()

    Reference: Lee and Chung, "Sample-wise Adaptive Weighting for Transfer Consistency in
    Adversarial Distillation", TMLR 2026; official code HongsinLee/saad, ``saad.py``.
    """
    )

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        *,
        clean_weight: float = 0.0,
        igdm_weight: float = 1.0,
        ramp_epochs: int | None = 200,
        entropy_order: float = 1.0,
        entropy_scale: float = 5.0,
        linearization_weight: float = 1.0,
        epsilon: float = 8 / 255,
        step_size: float = 2 / 255,
        steps: int = 10,
        kl_reduction: KLReduction = "batchmean",
        attack_mode: AttackMode = "eval",
        clean_bn_forward: bool = False,
        check_finite: bool = True,
        student_forwards: tuple[View, ...] = (),
        clip_start: bool = True,
    ) -> None:
        loss = TransferWeightedKL(
            clean_weight=clean_weight,
            igdm_weight=igdm_weight,
            ramp_epochs=ramp_epochs,
            entropy_order=entropy_order,
            entropy_scale=entropy_scale,
        )
        attack_loss = LinearizedTeacherKL(weight=linearization_weight)
        hparams = dict(
            clean_weight=loss.clean_weight,
            igdm_weight=loss.igdm_weight,
            ramp_epochs=loss.ramp_epochs,
            entropy_order=loss.entropy_order,
            entropy_scale=loss.entropy_scale,
            linearization_weight=attack_loss.weight,
        )
        self._build(
            student,
            teacher,
            Attack(attack_loss, start="normal"),
            loss,
            hparams,
            _options(
                epsilon,
                step_size,
                steps,
                kl_reduction,
                attack_mode,
                clean_bn_forward,
                check_finite,
                student_forwards,
                clip_start,
            ),
        )
