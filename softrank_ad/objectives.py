"""SmaraAD, SmaraAD++ and the ARD / RSLAD / AdaAD baselines behind one interface (docs/method.md §4–6).

Every objective wraps a student and a frozen teacher and offers:

- ``perturb(x, y) -> x_adv``: the method's attack (its inner maximisation), with the student in
  eval mode (``attack_mode="train"``: train mode) and its mode restored after;
- ``objective(x, y, x_adv=None, epoch=None) -> loss``: the outer loss, attacking first when
  ``x_adv`` is not given;
- ``terms(x, y, x_adv=None, epoch=None) -> dict[str, Tensor]``: the same loss under ``"loss"``
  and its separate terms (detached), for logging;
- ``inner_loss(x_adv, x, y)``: the scalar ``perturb`` maximises.

A method is a subclass that defines ``_inner_loss`` (what the attack maximises), ``_outer_terms``
(the outer loss and its parts) and, where needed, ``_inner_context`` (teacher outputs reused
across attack steps), ``start`` and ``_skips_clean_student``.

``objective.parameters()`` holds the student's parameters only: pass it to the optimizer. The
teacher is frozen when the objective is built (``requires_grad_(False)``), evaluated in eval mode
in every call with its previous mode restored, and never registered as a submodule; ``.to()``,
``.cuda()`` or ``.double()`` on the objective move it with the student.

KL convention, in every method: ``kl_div(log_softmax(z_S/τ), softmax(z_T/τ), "batchmean")``;
``kl_reduction="mean"`` averages over classes too, as the official CIFAR-10 code of AdaAD, RSLAD and
ARD does (see :func:`kl_divergence`).

Two options reproduce how the official baselines treat the student's BatchNorm (both off by
default, where the student's BN statistics come from adversarial batches alone):

- ``attack_mode="train"`` runs the attack with the student in train mode (official ARD), so the
  attack's forwards update its BN running statistics; ``"eval"`` (default) freezes them.
- ``clean_bn_forward=True`` runs a clean train-mode forward of the student before the outer loss
  even where no clean term is computed (official AdaAD and ARD at α = 1, where that term's weight
  is 0), so BN running statistics mix clean and adversarial batches.

A three-line change to a training loop::

    objective = make_objective("smaraad", student, teacher)
    ...
    loss = objective(x, y, epoch=epoch)      # instead of F.cross_entropy(student(x), y)
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from softrank_ad import _validate
from softrank_ad._modes import eval_mode, modes_restored
from softrank_ad.attacks import Start, ascend, check_budget, random_start
from softrank_ad.attribution import LayerSpec, ReshapeTransform, attribution_alignment_loss
from softrank_ad.rank import DEFAULT_GAMMA, Scale
from softrank_ad.spearman import dcg_weights, slack_matching_loss

Terms = dict[str, torch.Tensor]
KLReduction = Literal["batchmean", "mean"]
AttackMode = Literal["eval", "train"]
PositionWeights = Literal["none", "dcg"]
Target = Literal["label", "predicted"]


def kl_divergence(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 1.0,
    reduction: KLReduction = "batchmean",
) -> torch.Tensor:
    r"""The KL term of every objective here, written KL(S ‖ T) in the papers:

    ``kl_div(log_softmax(z_S / τ), softmax(z_T / τ), reduction=reduction)``.

    ``"batchmean"`` (the default) sums over classes and averages over the batch: the true KL per
    sample. ``"mean"`` averages over batch *and* classes, as ``nn.KLDivLoss()`` does in the official
    CIFAR-10 code of AdaAD, RSLAD and ARD: C times smaller, so at the same learning rate those
    methods take C-times smaller steps (C = 10 on CIFAR-10).

    Example:
        >>> s, t = torch.randn(4, 10, requires_grad=True), torch.randn(4, 10)
        >>> kl_divergence(s, t).backward()
    """
    _validate.check_choice(reduction, "kl_reduction", get_args(KLReduction))
    kl = F.kl_div(
        F.log_softmax(student_logits / temperature, dim=1),
        F.softmax(teacher_logits / temperature, dim=1),
        reduction="batchmean",
    )
    # torch warns on kl_div(reduction="mean"); this is the same number without the warning.
    return kl / student_logits.shape[1] if reduction == "mean" else kl


class DistillationObjective(nn.Module):
    """Shared machinery: argument checks, the frozen teacher, the attack and the call protocol.

    Args (every objective takes them as keywords):
        epsilon, step_size, steps: the L∞ PGD budget (8/255, 2/255, 10).
        kl_reduction: ``"batchmean"`` (default, the KL per sample) or ``"mean"`` (also averaged
            over classes, as the official CIFAR-10 code of AdaAD, RSLAD and ARD).
        attack_mode: the student's mode during the attack: ``"eval"`` (default) or ``"train"``
            (official ARD; its BN running statistics then follow the attack's forwards).
        clean_bn_forward: add a clean train-mode forward of the student (no gradient) where the
            outer loss has none, as the official AdaAD and ARD code do at α = 1.
        check_inputs: check every call that ``x`` (and a given ``x_adv``) holds finite values in
            [0, 1] and that the labels index the classes: one host sync per call. False skips it
            (shapes and dtypes are still checked). Class counts are compared once, on the first call.

    Shape:
        - x, x_adv: (B, C_in, H, W) images in [0, 1] (any (B, ...) the models take).
        - y: (B,) class indices, any integer dtype.
        - Output: a scalar loss; ``terms`` gives a dict of scalars (SmaraAD++ adds (B,) weights).

    Every argument is validated before the models are touched: a constructor that raises leaves
    the teacher (and any module it shares with the student) as it was.
    """

    start: Start = "uniform"

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        *,
        epsilon: float = 8 / 255,
        step_size: float = 2 / 255,
        steps: int = 10,
        kl_reduction: KLReduction = "batchmean",
        attack_mode: AttackMode = "eval",
        clean_bn_forward: bool = False,
        check_inputs: bool = True,
    ) -> None:
        super().__init__()
        _validate.check_choice(kl_reduction, "kl_reduction", get_args(KLReduction))
        _validate.check_choice(attack_mode, "attack_mode", get_args(AttackMode))
        for name, flag in (("clean_bn_forward", clean_bn_forward), ("check_inputs", check_inputs)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool, got {type(flag).__name__}")
        for name, model in (("student", student), ("teacher", teacher)):
            if not isinstance(model, nn.Module):
                raise TypeError(f"{name} must be an nn.Module, got {type(model).__name__}")
        if student is teacher:
            raise ValueError("student and teacher must be different modules")
        check_budget(epsilon, step_size, steps)
        self.student = student
        self.epsilon = float(epsilon)
        self.step_size = float(step_size)
        self.steps = steps
        self.kl_reduction = kl_reduction
        self.attack_mode = attack_mode
        self.clean_bn_forward = clean_bn_forward
        self.check_inputs = check_inputs
        self._classes: int | None = None  # learnt on the first call
        # Last, after every check (subclasses check theirs before calling this). Not a submodule:
        # the teacher's parameters stay out of parameters() and state_dict(); _apply moves it.
        object.__setattr__(self, "teacher", teacher.requires_grad_(False))

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
        with self._inner_modes(), torch.enable_grad():
            return self._inner_loss(x_adv, y, self._inner_context(x, y))

    def terms(
        self, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor | None = None, epoch: int | None = None
    ) -> Terms:
        """The outer loss under ``"loss"`` (with its graph) and its separate terms (detached)."""
        if epoch is not None:
            _validate.check_int(epoch, "epoch")
        y = self._check_batch(x, y)
        if x_adv is None:
            x_adv = self._perturb(x, y)
        else:
            self._check_x_adv(x_adv, x)
        if self.clean_bn_forward and self._skips_clean_student():
            with torch.no_grad():
                self.student(x)  # for its BN running statistics only; the term's weight is 0
        with eval_mode(self.teacher):
            loss, parts = self._outer_terms(x, y, x_adv, epoch)
        return {"loss": loss, **{k: v.detach() for k, v in parts.items()}}

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor | None = None, epoch: int | None = None
    ) -> torch.Tensor:
        """The outer loss to minimise over the student's parameters."""
        return self.terms(x, y, x_adv, epoch)["loss"]

    # -- what a method defines -----------------------------------------------------------------
    def _inner_context(self, x: torch.Tensor, y: torch.Tensor) -> dict:
        """Values the attack reuses at every step (e.g. the teacher's clean logits)."""
        return {}

    def _inner_loss(self, x_adv: torch.Tensor, y: torch.Tensor, context: dict) -> torch.Tensor:
        raise NotImplementedError

    def _outer_terms(self, x, y, x_adv, epoch) -> tuple[torch.Tensor, Terms]:
        raise NotImplementedError

    def _skips_clean_student(self) -> bool:
        """True where the outer loss evaluates no S(x) (then ``clean_bn_forward`` adds one)."""
        return False

    # -- helpers -------------------------------------------------------------------------------
    @contextmanager
    def _inner_modes(self):
        """Teacher in eval mode; the student in eval mode, or in train mode with
        ``attack_mode="train"``; both modes restored after."""
        with eval_mode(self.teacher), modes_restored(self.student):
            self.student.train(self.attack_mode == "train")
            yield

    def _perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with self._inner_modes():
            context = self._inner_context(x, y)
            return ascend(
                lambda u: self._inner_loss(u, y, context),
                x,
                epsilon=self.epsilon,
                step_size=self.step_size,
                steps=self.steps,
                x_start=random_start(x, self.epsilon, self.start),
            )

    def _kl(self, z_s: torch.Tensor, z_t: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        return kl_divergence(z_s, z_t, temperature, self.kl_reduction)

    def _teacher_logits(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.teacher(x)

    def _student_and_teacher(self, x: torch.Tensor, teacher_grad: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Both models' logits; the teacher's carry a graph w.r.t. x only with ``teacher_grad``
        (inside attacks, where the ascent direction flows through T(x') too)."""
        z_s = self.student(x)
        z_t = self.teacher(x) if teacher_grad else self._teacher_logits(x)
        self._check_classes(z_s, z_t)
        return z_s, z_t

    @staticmethod
    def _check_classes(z_s: torch.Tensor, z_t: torch.Tensor) -> None:
        if z_s.shape != z_t.shape:
            raise ValueError(
                f"student and teacher must output logits of the same shape (the same classes), got "
                f"student {tuple(z_s.shape)} and teacher {tuple(z_t.shape)}"
            )

    def _check_batch(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Checks x and y before any forward; returns y as int64."""
        if self.check_inputs or self._classes is None:
            _validate.check_images(x, "x")
        else:
            _validate.check_tensor(x, "x")
        if self._classes is None:
            # Once: one sample through both models, so that mismatched class counts and labels
            # out of range are reported here instead of deep inside an attack.
            with torch.no_grad(), eval_mode(self.student, self.teacher):
                z_s, z_t = self.student(x[:1]), self.teacher(x[:1])
            self._check_classes(z_s, z_t)
            self._classes = z_s.shape[1]
        return _validate.check_labels(y, x.shape[0], self._classes if self.check_inputs else None, "y")

    def _check_x_adv(self, x_adv: torch.Tensor, x: torch.Tensor) -> None:
        if self.check_inputs:
            _validate.check_images(x_adv, "x_adv")
        else:
            _validate.check_tensor(x_adv, "x_adv")
        if x_adv.shape != x.shape:
            raise ValueError(f"x_adv must have the shape of x {tuple(x.shape)}, got {tuple(x_adv.shape)}")

    def extra_repr(self) -> str:
        return (f"epsilon={self.epsilon:.4g}, step_size={self.step_size:.4g}, steps={self.steps}, "
                f"kl_reduction={self.kl_reduction!r}, attack_mode={self.attack_mode!r}")


class _RankMatchingObjective(DistillationObjective):
    """What SmaraAD and SmaraAD++ share: slack matching, attribution alignment and the attack

    .. math::
        \\max_{x'} \\; \\mathrm{KL}(S(x') \\| T(x')) + c_{atk} \\, \\mathcal{L}_{align}(x')

    (Alg. 3), from a uniform random start. ``own`` holds the subclass's own checked settings.
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        *,
        gamma: float,
        alpha: float,
        align_weight: float,
        attack_align_weight: float,
        scale: Scale,
        position_weights: PositionWeights,
        student_layer: LayerSpec,
        teacher_layer: LayerSpec,
        target: Target,
        student_reshape_transform: ReshapeTransform | None,
        teacher_reshape_transform: ReshapeTransform | None,
        own: dict,
        **options,
    ) -> None:
        _validate.check_choice(scale, "scale", get_args(Scale))
        _validate.check_choice(position_weights, "position_weights", get_args(PositionWeights))
        _validate.check_choice(target, "target", get_args(Target))
        checked = dict(
            gamma=_validate.check_gamma(gamma),
            alpha=_validate.check_unit_interval(alpha, "alpha"),
            align_weight=_validate.check_non_negative(align_weight, "align_weight"),
            attack_align_weight=_validate.check_non_negative(attack_align_weight, "attack_align_weight"),
            scale=scale,
            position_weights=position_weights,
            **own,
        )
        super().__init__(student, teacher, **options)
        for name, value in checked.items():
            setattr(self, name, value)
        # A plain dict: layer modules held here are not registered as submodules.
        self._alignment = dict(student_layer=student_layer, teacher_layer=teacher_layer, target=target,
                               student_reshape_transform=student_reshape_transform,
                               teacher_reshape_transform=teacher_reshape_transform)

    def _sm(self, z_s: torch.Tensor, z_t: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        # Positions are weighted by the target's ranking (the teacher's, or S(x) in the self term).
        weights = dcg_weights(z_t.detach()) if self.position_weights == "dcg" else None
        return slack_matching_loss(
            z_s, z_t, gamma=self.gamma, reduction=reduction, scale=self.scale, weights=weights, check_finite=False
        )

    def _with_alignment(self, x: torch.Tensor, y: torch.Tensor, *, inner: bool):
        """Student and teacher logits and the alignment loss, one forward per model either way
        (Grad-CAM returns the logits of its forward). In the attack both maps and the teacher's
        logits keep their graph w.r.t. x'; in the outer loss the teacher's side is data."""
        weight = self.attack_align_weight if inner else self.align_weight
        if weight == 0:
            z_s, z_t = self._student_and_teacher(x, teacher_grad=inner)
            return z_s, z_t, z_s.new_zeros(())
        # The attack differentiates both maps w.r.t. x'; the outer loss treats the teacher's as data.
        loss, z_s, z_t = attribution_alignment_loss(self.student, self.teacher, x, y, teacher_differentiable=inner,
                                                    **self._alignment)
        return z_s, z_t, loss

    def _inner_loss(self, x_adv, y, context):
        z_s, z_t, align = self._with_alignment(x_adv, y, inner=True)
        return self._kl(z_s, z_t) + self.attack_align_weight * align

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, gamma={self.gamma}, alpha={self.alpha}, align_weight={self.align_weight}"


_SHARED_ARGS = """\
        student, teacher: classifiers on [0, 1] inputs with the same classes.
        gamma: soft-rank sharpness γ of slack matching.
        align_weight: c, the alignment weight in the outer loss.
        attack_align_weight: c_atk, the alignment weight inside the attack [library, default 1
            as Alg. 3].
        scale: soft-rank scaling, see :func:`~softrank_ad.soft_rank`.
        position_weights: ``"none"`` (the paper) or ``"dcg"``: slack matching weighs each class by
            1 / log2(1 + its rank in the target's logits), so a swap of the teacher's top classes
            costs more than one among its least likely [library extension, see
            :func:`~softrank_ad.dcg_weights`].
        student_layer, teacher_layer: Grad-CAM layers (see :func:`~softrank_ad.grad_cam`).
        target: the Grad-CAM class, ``"label"`` or ``"predicted"`` (the teacher's).
        student_reshape_transform, teacher_reshape_transform: for transformer models, see
            ``reshape_transform`` of :func:`~softrank_ad.grad_cam`.
        **options: ``epsilon``, ``step_size``, ``steps``, ``kl_reduction``, ``attack_mode``,
            ``clean_bn_forward``, ``check_inputs``, as in :class:`DistillationObjective`."""


class SmaraADObjective(_RankMatchingObjective):
    __doc__ = r"""SmaraAD (docs/method.md §4–5): slack matching and attribution alignment.

    Attack (Alg. 3): :math:`\max_{x'} \mathrm{KL}(S(x') \| T(x')) + c_{atk} \mathcal{L}_{align}(x')`
    from a uniform random start. Outer loss (Eq. 9, AdaAD-shaped reading):

    .. math::
        \alpha [\mathcal{L}_{sm}(S(x'), T(x')) + c \mathcal{L}_{align}(x') + \lambda \mathrm{KL}(x')]
        + (1 - \alpha) [\text{the same on } x]

    Args:
""" + _SHARED_ARGS + r"""
        alpha: weight of the adversarial terms; at 1 the clean-input terms are not computed.
        kl_weight: λ, an optional KL term added to each bracket [library extension, default 0].

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
        alpha: float = 1.0,
        align_weight: float = 1.0,
        kl_weight: float = 0.0,
        attack_align_weight: float = 1.0,
        scale: Scale = "none",
        position_weights: PositionWeights = "none",
        student_layer: LayerSpec = None,
        teacher_layer: LayerSpec = None,
        target: Target = "label",
        student_reshape_transform: ReshapeTransform | None = None,
        teacher_reshape_transform: ReshapeTransform | None = None,
        **options,
    ) -> None:
        super().__init__(
            student, teacher, gamma=gamma, alpha=alpha, align_weight=align_weight,
            attack_align_weight=attack_align_weight, scale=scale, position_weights=position_weights,
            student_layer=student_layer, teacher_layer=teacher_layer, target=target,
            student_reshape_transform=student_reshape_transform, teacher_reshape_transform=teacher_reshape_transform,
            own={"kl_weight": _validate.check_non_negative(kl_weight, "kl_weight")}, **options,
        )

    def _skips_clean_student(self) -> bool:
        return self.alpha == 1

    def _outer_terms(self, x, y, x_adv, epoch):
        z_s_adv, z_t_adv, align_adv = self._with_alignment(x_adv, y, inner=False)
        sm_adv = self._sm(z_s_adv, z_t_adv)
        kl_adv = self._kl(z_s_adv, z_t_adv) if self.kl_weight else sm_adv.new_zeros(())
        loss = self.alpha * (sm_adv + self.align_weight * align_adv + self.kl_weight * kl_adv)
        parts = {"slack_matching_adv": sm_adv, "align_adv": align_adv}
        if self.kl_weight:
            parts["kl_adv"] = kl_adv
        if self.alpha < 1:
            z_s, z_t, align = self._with_alignment(x, y, inner=False)
            sm = self._sm(z_s, z_t)
            kl = self._kl(z_s, z_t) if self.kl_weight else sm.new_zeros(())
            loss = loss + (1 - self.alpha) * (sm + self.align_weight * align + self.kl_weight * kl)
            parts.update(slack_matching_clean=sm, align_clean=align)
            if self.kl_weight:
                parts["kl_clean"] = kl
        return loss, parts

    def extra_repr(self) -> str:
        return f"SmaraAD, {super().extra_repr()}, kl_weight={self.kl_weight}"


class SmaraADPlusPlusObjective(_RankMatchingObjective):
    __doc__ = r"""SmaraAD++ (docs/method.md §5, Eq. 10 in an IAD-style reading): SmaraAD's attack, and
    slack matching weighted per sample by the teacher's confidence in the true class,
    :math:`w_b = p_T(y_b \mid x'_b)^{\beta_w}` (no gradient), with a self term towards S(x):

    .. math::
        \alpha \, \operatorname{mean}_b [w_b \mathcal{L}_{sm,b}(S(x'), T(x'))
            + (1 - w_b) \mathcal{L}_{sm,b}(S(x'), S(x))]
        + c \mathcal{L}_{align}(x') + (1 - \alpha) \mathrm{CE}(S(x), y)

    Args:
""" + _SHARED_ARGS + r"""
        alpha: weight of the slack-matching terms; below 1 the clean cross-entropy enters.
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
        alpha: float = 1.0,
        align_weight: float = 1.0,
        weight_power: float = 0.1,
        weights_from_epoch: int = 60,
        attack_align_weight: float = 1.0,
        scale: Scale = "none",
        position_weights: PositionWeights = "none",
        student_layer: LayerSpec = None,
        teacher_layer: LayerSpec = None,
        target: Target = "label",
        student_reshape_transform: ReshapeTransform | None = None,
        teacher_reshape_transform: ReshapeTransform | None = None,
        **options,
    ) -> None:
        own = {"weight_power": _validate.check_non_negative(weight_power, "weight_power"),
               "weights_from_epoch": _validate.check_int(weights_from_epoch, "weights_from_epoch")}
        super().__init__(
            student, teacher, gamma=gamma, alpha=alpha, align_weight=align_weight,
            attack_align_weight=attack_align_weight, scale=scale, position_weights=position_weights,
            student_layer=student_layer, teacher_layer=teacher_layer, target=target,
            student_reshape_transform=student_reshape_transform, teacher_reshape_transform=teacher_reshape_transform,
            own=own, **options,
        )

    def _weights(self, z_t_adv: torch.Tensor, y: torch.Tensor, epoch: int | None) -> torch.Tensor:
        if epoch is not None and epoch < self.weights_from_epoch:
            return torch.ones_like(y, dtype=z_t_adv.dtype)
        with torch.no_grad():
            p_true = F.softmax(z_t_adv.float(), dim=1).gather(1, y[:, None]).squeeze(1)
            return p_true.pow(self.weight_power).to(z_t_adv.dtype)

    def _outer_terms(self, x, y, x_adv, epoch):
        z_s_adv, z_t_adv, align_adv = self._with_alignment(x_adv, y, inner=False)
        w = self._weights(z_t_adv, y, epoch)
        sm_teacher = self._sm(z_s_adv, z_t_adv, "none")
        parts = {"slack_matching_adv": sm_teacher.mean(), "align_adv": align_adv, "weights": w}
        needs_clean_student = self.alpha < 1 or bool((w < 1).any())
        per_sample = w * sm_teacher
        if needs_clean_student:
            z_s = self.student(x)
            # S(x) is the target of the self term, as the teacher is of the other [library].
            sm_self = self._sm(z_s_adv, z_s.detach(), "none")
            per_sample = per_sample + (1 - w) * sm_self
            parts["slack_matching_self"] = sm_self.mean()
        loss = self.alpha * per_sample.mean() + self.align_weight * align_adv
        if self.alpha < 1:
            ce = F.cross_entropy(z_s, y)
            loss = loss + (1 - self.alpha) * ce
            parts["ce_clean"] = ce
        return loss, parts

    def extra_repr(self) -> str:
        return (f"SmaraAD++, {super().extra_repr()}, weight_power={self.weight_power}, "
                f"weights_from_epoch={self.weights_from_epoch}")


class AdaADObjective(DistillationObjective):
    r"""AdaAD (Huang et al., 2023): the attack maximises KL(S(x') ‖ T(x')) from x + 0.001·N(0, 1);
    the outer loss is :math:`\alpha \mathrm{KL}(S(x') \| T(x')) + (1-\alpha) \mathrm{KL}(S(x) \| T(x))`.

    Args:
        student, teacher: classifiers on [0, 1] inputs with the same classes.
        alpha: weight of the adversarial term; at 1 the clean term is not computed.
        **options: as in :class:`DistillationObjective`.

    Shape: as :class:`DistillationObjective`.

    Example:
        >>> loss = AdaADObjective(student, teacher)(x, y); loss.backward()  # doctest: +SKIP
    """

    start: Start = "normal"  # x + 0.001·N(0, 1), as the official code starts its attack

    def __init__(self, student: nn.Module, teacher: nn.Module, *, alpha: float = 1.0, **options) -> None:
        alpha = _validate.check_unit_interval(alpha, "alpha")
        super().__init__(student, teacher, **options)
        self.alpha = alpha

    def _skips_clean_student(self) -> bool:
        return self.alpha == 1

    def _inner_loss(self, x_adv, y, context):
        return self._kl(*self._student_and_teacher(x_adv, teacher_grad=True))

    def _outer_terms(self, x, y, x_adv, epoch):
        z_s_adv, z_t_adv = self._student_and_teacher(x_adv)
        kl_adv = self._kl(z_s_adv, z_t_adv)
        loss, parts = self.alpha * kl_adv, {"kl_adv": kl_adv}
        if self.alpha < 1:
            kl = self._kl(*self._student_and_teacher(x))
            loss = loss + (1 - self.alpha) * kl
            parts["kl_clean"] = kl
        return loss, parts


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

    start: Start = "normal"

    def __init__(self, student: nn.Module, teacher: nn.Module, *, adv_weight: float = 5 / 6, **options) -> None:
        adv_weight = _validate.check_unit_interval(adv_weight, "adv_weight")
        super().__init__(student, teacher, **options)
        self.adv_weight = adv_weight

    def _inner_context(self, x, y):
        return {"z_t_clean": self._teacher_logits(x)}

    def _inner_loss(self, x_adv, y, context):
        z_s = self.student(x_adv)
        self._check_classes(z_s, context["z_t_clean"])
        return self._kl(z_s, context["z_t_clean"])

    def _outer_terms(self, x, y, x_adv, epoch):
        z_t = self._teacher_logits(x)
        z_s_adv = self.student(x_adv)
        self._check_classes(z_s_adv, z_t)
        kl_adv = self._kl(z_s_adv, z_t)
        kl_clean = self._kl(self.student(x), z_t)
        loss = self.adv_weight * kl_adv + (1 - self.adv_weight) * kl_clean
        return loss, {"kl_adv": kl_adv, "kl_clean": kl_clean}


class ARDObjective(DistillationObjective):
    r"""ARD (Goldblum et al., 2020): the attack maximises CE(S(x'), y) from a uniform start; the
    outer loss is :math:`\alpha \tau^2 \mathrm{KL}(S(x')/\tau \| T(x)/\tau) + (1-\alpha) \mathrm{CE}(S(x), y)`.

    Args:
        student, teacher: classifiers on [0, 1] inputs with the same classes.
        alpha: weight of the distillation term; at 1 the clean cross-entropy is not computed.
        temperature: τ.
        **options: as in :class:`DistillationObjective` (official ARD: ``attack_mode="train"``).

    Shape: as :class:`DistillationObjective`.

    Example:
        >>> loss = ARDObjective(student, teacher, temperature=30.0)(x, y)  # doctest: +SKIP
    """

    def __init__(
        self, student: nn.Module, teacher: nn.Module, *, alpha: float = 1.0, temperature: float = 30.0, **options
    ) -> None:
        alpha = _validate.check_unit_interval(alpha, "alpha")
        temperature = _validate.check_positive(temperature, "temperature")
        super().__init__(student, teacher, **options)
        self.alpha, self.temperature = alpha, temperature

    def _skips_clean_student(self) -> bool:
        return self.alpha == 1

    def _inner_loss(self, x_adv, y, context):
        return F.cross_entropy(self.student(x_adv), y)

    def _outer_terms(self, x, y, x_adv, epoch):
        z_t = self._teacher_logits(x)
        z_s_adv = self.student(x_adv)
        self._check_classes(z_s_adv, z_t)
        tau = self.temperature
        kl_adv = self._kl(z_s_adv, z_t, tau)
        loss, parts = self.alpha * tau * tau * kl_adv, {"kl_adv": kl_adv}
        if self.alpha < 1:
            ce = F.cross_entropy(self.student(x), y)
            loss = loss + (1 - self.alpha) * ce
            parts["ce_clean"] = ce
        return loss, parts


#: The methods by name, for :func:`make_objective` and the examples' command lines.
OBJECTIVES: dict[str, type[DistillationObjective]] = {
    "smaraad": SmaraADObjective,
    "smaraad++": SmaraADPlusPlusObjective,
    "ard": ARDObjective,
    "rslad": RSLADObjective,
    "adaad": AdaADObjective,
}


def make_objective(name: str, student: nn.Module, teacher: nn.Module, **hparams) -> DistillationObjective:
    """An objective by name (any case): ``"smaraad"``, ``"smaraad++"``, ``"ard"``, ``"rslad"`` or
    ``"adaad"``; ``hparams`` go to the class's constructor (``epsilon``, ``step_size``, ``steps``
    and the other :class:`DistillationObjective` options for all).

    Example:
        >>> objective = make_objective("smaraad++", student, teacher, gamma=2.0)  # doctest: +SKIP
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in OBJECTIVES:
        raise ValueError(f"unknown method {name!r}; choose one of {sorted(OBJECTIVES)}")
    return OBJECTIVES[key](student, teacher, **hparams)
