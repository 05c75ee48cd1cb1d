"""SmaraAD, SmaraAD++ and the ARD / RSLAD / AdaAD baselines behind one interface (docs/method.md §4–6).

Every objective wraps a student and a frozen teacher and offers:

- ``perturb(x, y) -> x_adv``: the method's inner maximisation (student in eval mode during the
  attack, its mode restored after);
- ``objective(x, y, x_adv=None, epoch=None) -> loss``: the outer loss, attacking first when
  ``x_adv`` is not given;
- ``terms(x, y, x_adv=None, epoch=None) -> dict``: the same loss with its separate terms, for
  logging;
- ``inner_objective(x_adv, x, y)``: the quantity ``perturb`` maximises.

``objective.parameters()`` holds the student's parameters only: pass it to the optimizer. The
teacher is frozen when the objective is built (``requires_grad_(False)``), evaluated in eval mode
in every call with its previous mode restored, and never registered as a submodule.

KL convention, in every method: ``kl_div(log_softmax(z_S/τ), softmax(z_T/τ), "batchmean")``;
``kl_reduction="mean"`` averages over classes too, as the official CIFAR-10 code of AdaAD, RSLAD and
ARD does (see :func:`~softrank_ad.kl_divergence`).

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
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from softrank_ad import _validate
from softrank_ad.attacks import KL_REDUCTIONS, Start, ascend, check_budget, kl_divergence, random_start
from softrank_ad.attribution import AttributionAlignmentLoss, LayerSpec, modes_restored
from softrank_ad.rank import DEFAULT_GAMMA
from softrank_ad.spearman import dcg_weights, slack_matching_loss

Terms = dict[str, torch.Tensor]
ATTACK_MODES = ("eval", "train")


@contextmanager
def eval_mode(*models: nn.Module):
    """Every submodule of ``models`` in eval mode inside the block; each one's mode restored after."""
    with modes_restored(*models):
        for model in models:
            model.eval()
        yield


class DistillationObjective(nn.Module):
    """Shared machinery: argument checks, the frozen teacher, PGD and the call protocol.

    Subclasses define ``_attack_loss`` (what PGD maximises), ``_outer_terms`` (the outer loss and
    its parts) and, where needed, ``_attack_context`` (teacher outputs reused across PGD steps)
    and ``start``.

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
        kl_reduction: Literal["batchmean", "mean"] = "batchmean",
        attack_mode: Literal["eval", "train"] = "eval",
        clean_bn_forward: bool = False,
        check_inputs: bool = True,
    ) -> None:
        super().__init__()
        _validate.check_choice(kl_reduction, "kl_reduction", KL_REDUCTIONS)
        _validate.check_choice(attack_mode, "attack_mode", ATTACK_MODES)
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
        # the teacher's parameters stay out of parameters() and state_dict().
        object.__setattr__(self, "teacher", teacher.requires_grad_(False))

    # -- the public protocol -------------------------------------------------------------------
    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The adversarial inputs of this method's inner maximisation (detached)."""
        y = self._check_batch(x, y)
        return self._perturb(x, y)

    @contextmanager
    def _attack_modes(self):
        """Teacher in eval mode; the student in eval mode, or in train mode with
        ``attack_mode="train"``; both modes restored after."""
        with eval_mode(self.teacher), modes_restored(self.student):
            self.student.train(self.attack_mode == "train")
            yield

    def _perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with self._attack_modes():
            context = self._attack_context(x, y)
            return ascend(
                lambda u: self._attack_loss(u, y, context),
                x,
                epsilon=self.epsilon,
                step_size=self.step_size,
                steps=self.steps,
                x_start=random_start(x, self.epsilon, self.start),
            )

    def inner_objective(self, x_adv: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The scalar ``perturb`` maximises, evaluated at ``x_adv`` (models as during the attack)."""
        y = self._check_batch(x, y)
        self._check_x_adv(x_adv, x)
        with self._attack_modes(), torch.enable_grad():
            return self._attack_loss(x_adv, y, self._attack_context(x, y))

    def terms(
        self, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor | None = None, epoch: int | None = None
    ) -> Terms:
        """The outer loss under ``"loss"`` and its separate terms (detached), for logging."""
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

    # -- hooks for subclasses -----------------------------------------------------------------
    def _skips_clean_student(self) -> bool:
        """True where the outer loss evaluates no S(x) (then ``clean_bn_forward`` adds one)."""
        return False

    def _kl(self, z_s: torch.Tensor, z_t: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        return kl_divergence(z_s, z_t, temperature, self.kl_reduction)

    def _attack_context(self, x: torch.Tensor, y: torch.Tensor) -> dict:
        return {}

    def _attack_loss(self, x_adv: torch.Tensor, y: torch.Tensor, context: dict) -> torch.Tensor:
        raise NotImplementedError

    def _outer_terms(self, x, y, x_adv, epoch) -> tuple[torch.Tensor, Terms]:
        raise NotImplementedError

    # -- helpers -------------------------------------------------------------------------------
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
        if self.check_inputs:
            _validate.check_images(x, "x")
        else:
            _validate.check_tensor(x, "x")
        if self._classes is None:
            _validate.check_images(x, "x")
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


class SmaraADObjective(DistillationObjective):
    r"""SmaraAD (and SmaraAD++ with ``weighting="teacher_confidence"``), docs/method.md §4–5.

    Inner maximisation (Alg. 3), from a uniform random start:

    .. math::
        \max_{x'} \; \mathrm{KL}(S(x') \| T(x')) + c_{atk} \, \mathcal{L}_{align}(x')

    Outer loss, SmaraAD (Eq. 9, AdaAD-shaped reading):

    .. math::
        \alpha [\mathcal{L}_{sm}(S(x'), T(x')) + c \mathcal{L}_{align}(x') + \lambda \mathrm{KL}(x')]
        + (1 - \alpha) [\text{the same on } x]

    SmaraAD++ (Eq. 10, IAD-style reading), with :math:`w_b = p_T(y_b \mid x'_b)^{\beta_w}`:

    .. math::
        \alpha \, \operatorname{mean}_b [w_b \mathcal{L}_{sm,b}(S(x'), T(x'))
            + (1 - w_b) \mathcal{L}_{sm,b}(S(x'), S(x))]
        + c \mathcal{L}_{align}(x') + (1 - \alpha) \mathrm{CE}(S(x), y)

    Args:
        student, teacher: classifiers on [0, 1] inputs with the same classes.
        epsilon, step_size, steps: the L∞ PGD budget (8/255, 2/255, 10).
        gamma: soft-rank sharpness γ of slack matching.
        alpha: weight of the adversarial terms; at 1 the clean-input terms are not computed.
        align_weight: c, the alignment weight in the outer loss.
        kl_weight: λ, an optional KL term added to each bracket of SmaraAD [ours, default 0].
        weighting: ``None`` (SmaraAD) or ``"teacher_confidence"`` (SmaraAD++).
        weight_power: β_w of the SmaraAD++ weights.
        weights_from_epoch: SmaraAD++ uses w = 1 before this epoch. With ``epoch=None`` in a call
            the weights are used (no warm-up).
        student_layer, teacher_layer: Grad-CAM layers (see :func:`~softrank_ad.grad_cam`).
        target: the Grad-CAM class, ``"label"`` or ``"predicted"`` (the teacher's).
        attack_align_weight: c_atk, the alignment weight inside the attack [ours, default 1 as
            Alg. 3].
        scale: soft-rank scaling, see :func:`~softrank_ad.soft_rank`.
        position_weights: ``"none"`` (the paper) or ``"dcg"``: slack matching weighs each class by
            1 / log2(1 + its rank in the target's logits), so a swap of the teacher's top classes
            costs more than one among its least likely [library extension, see
            :func:`~softrank_ad.dcg_weights`].
        **options: ``epsilon``, ``step_size``, ``steps``, ``kl_reduction``, ``attack_mode``,
            ``clean_bn_forward``, as in :class:`DistillationObjective`.

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
        weighting: Literal["teacher_confidence"] | None = None,
        weight_power: float = 0.1,
        weights_from_epoch: int = 60,
        student_layer: LayerSpec = None,
        teacher_layer: LayerSpec = None,
        target: Literal["label", "predicted"] = "label",
        attack_align_weight: float = 1.0,
        scale: Literal["none", "std"] = "none",
        position_weights: Literal["none", "dcg"] = "none",
        **options,
    ) -> None:
        _validate.check_choice(weighting, "weighting", (None, "teacher_confidence"))
        _validate.check_choice(scale, "scale", ("none", "std"))
        _validate.check_choice(position_weights, "position_weights", ("none", "dcg"))
        checked = dict(
            gamma=_validate.check_gamma(gamma),
            alpha=_validate.check_unit_interval(alpha, "alpha"),
            align_weight=_validate.check_non_negative(align_weight, "align_weight"),
            kl_weight=_validate.check_non_negative(kl_weight, "kl_weight"),
            attack_align_weight=_validate.check_non_negative(attack_align_weight, "attack_align_weight"),
            weight_power=_validate.check_non_negative(weight_power, "weight_power"),
            weights_from_epoch=_validate.check_int(weights_from_epoch, "weights_from_epoch"),
            weighting=weighting, scale=scale, position_weights=position_weights,
        )
        layers = dict(student_layer=student_layer, teacher_layer=teacher_layer, target=target)
        # The attack differentiates both maps w.r.t. x'; the outer loss treats the teacher's as data.
        align_attack = AttributionAlignmentLoss(**layers, teacher_differentiable=True)
        align = AttributionAlignmentLoss(**layers)
        super().__init__(student, teacher, **options)
        for name, value in checked.items():
            setattr(self, name, value)
        object.__setattr__(self, "_align_attack", align_attack)
        object.__setattr__(self, "_align", align)

    def _skips_clean_student(self) -> bool:
        return self.weighting is None and self.alpha == 1

    def _sm(self, z_s: torch.Tensor, z_t: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        # Positions are weighted by the target's ranking (the teacher's, or S(x) in the self term).
        weights = dcg_weights(z_t.detach()) if self.position_weights == "dcg" else None
        return slack_matching_loss(
            z_s, z_t, self.gamma, reduction, scale=self.scale, weights=weights, check_finite=False
        )

    def _with_alignment(self, x: torch.Tensor, y: torch.Tensor, *, attack: bool):
        """Student and teacher logits and the alignment loss, one forward per model either way
        (Grad-CAM returns the logits of its forward). In the attack both maps and the teacher's
        logits keep their graph w.r.t. x'; in the outer loss the teacher's side is data."""
        weight = self.attack_align_weight if attack else self.align_weight
        if weight == 0:
            z_s, z_t = self._student_and_teacher(x, teacher_grad=attack)
            return z_s, z_t, z_s.new_zeros(())
        align = self._align_attack if attack else self._align
        loss, z_s, z_t = align(self.student, self.teacher, x, y, return_logits=True)
        return z_s, (z_t if attack else z_t.detach()), loss

    def _attack_loss(self, x_adv, y, context):
        z_s, z_t, align = self._with_alignment(x_adv, y, attack=True)
        return self._kl(z_s, z_t) + self.attack_align_weight * align

    def _weights(self, z_t_adv: torch.Tensor, y: torch.Tensor, epoch: int | None) -> torch.Tensor | None:
        if self.weighting is None:
            return None
        if epoch is not None and epoch < self.weights_from_epoch:
            return torch.ones_like(y, dtype=z_t_adv.dtype)
        with torch.no_grad():
            p_true = F.softmax(z_t_adv.float(), dim=1).gather(1, y[:, None]).squeeze(1)
            return p_true.pow(self.weight_power).to(z_t_adv.dtype)

    def _outer_terms(self, x, y, x_adv, epoch):
        z_s_adv, z_t_adv, align_adv = self._with_alignment(x_adv, y, attack=False)
        if self.weighting is None:
            return self._smaraad(x, y, z_s_adv, z_t_adv, align_adv)
        return self._smaraad_pp(x, y, z_s_adv, z_t_adv, align_adv, epoch)

    def _smaraad(self, x, y, z_s_adv, z_t_adv, align_adv):
        sm_adv = self._sm(z_s_adv, z_t_adv)
        kl_adv = self._kl(z_s_adv, z_t_adv) if self.kl_weight else sm_adv.new_zeros(())
        loss = self.alpha * (sm_adv + self.align_weight * align_adv + self.kl_weight * kl_adv)
        parts = {"slack_matching_adv": sm_adv, "align_adv": align_adv}
        if self.kl_weight:
            parts["kl_adv"] = kl_adv
        if self.alpha < 1:
            z_s, z_t, align = self._with_alignment(x, y, attack=False)
            sm = self._sm(z_s, z_t)
            kl = self._kl(z_s, z_t) if self.kl_weight else sm.new_zeros(())
            loss = loss + (1 - self.alpha) * (sm + self.align_weight * align + self.kl_weight * kl)
            parts.update(slack_matching_clean=sm, align_clean=align)
            if self.kl_weight:
                parts["kl_clean"] = kl
        return loss, parts

    def _smaraad_pp(self, x, y, z_s_adv, z_t_adv, align_adv, epoch):
        w = self._weights(z_t_adv, y, epoch)
        sm_teacher = self._sm(z_s_adv, z_t_adv, "none")
        parts = {"slack_matching_adv": sm_teacher.mean(), "align_adv": align_adv, "weights": w}
        needs_clean_student = self.alpha < 1 or bool((w < 1).any())
        per_sample = w * sm_teacher
        if needs_clean_student:
            z_s = self.student(x)
            # S(x) is the target of the self term, as the teacher is of the other [ours].
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
        method = "SmaraAD++" if self.weighting else "SmaraAD"
        return f"{method}, {super().extra_repr()}, gamma={self.gamma}, alpha={self.alpha}, align_weight={self.align_weight}"


class AdaADObjective(DistillationObjective):
    r"""AdaAD (Huang et al., 2023): PGD on KL(S(x') ‖ T(x')); outer
    :math:`\alpha \mathrm{KL}(S(x') \| T(x')) + (1-\alpha) \mathrm{KL}(S(x) \| T(x))`.

    Example:
        >>> loss = AdaADObjective(student, teacher)(x, y)                  # doctest: +SKIP
    """

    start: Start = "normal"  # x + 0.001·N(0, 1), as the official code starts its attack

    def __init__(self, student, teacher, *, alpha: float = 1.0, **options):
        alpha = _validate.check_unit_interval(alpha, "alpha")
        super().__init__(student, teacher, **options)
        self.alpha = alpha

    def _skips_clean_student(self) -> bool:
        return self.alpha == 1

    def _attack_loss(self, x_adv, y, context):
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
    r"""RSLAD (Zi et al., 2021): PGD on KL(S(x') ‖ T(x)) from x + 0.001·N(0, 1); outer
    :math:`\tfrac56 \mathrm{KL}(S(x') \| T(x)) + \tfrac16 \mathrm{KL}(S(x) \| T(x))`.

    Example:
        >>> loss = RSLADObjective(student, teacher)(x, y)                  # doctest: +SKIP
    """

    start: Start = "normal"

    def __init__(self, student, teacher, *, adv_weight: float = 5 / 6, **options):
        adv_weight = _validate.check_unit_interval(adv_weight, "adv_weight")
        super().__init__(student, teacher, **options)
        self.adv_weight = adv_weight

    def _attack_context(self, x, y):
        return {"z_t_clean": self._teacher_logits(x)}

    def _attack_loss(self, x_adv, y, context):
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
    r"""ARD (Goldblum et al., 2020): PGD on CE(S(x'), y); outer
    :math:`\alpha \tau^2 \mathrm{KL}(S(x')/\tau \| T(x)/\tau) + (1-\alpha) \mathrm{CE}(S(x), y)`.

    Example:
        >>> loss = ARDObjective(student, teacher, temperature=30.0)(x, y)  # doctest: +SKIP
    """

    def __init__(self, student, teacher, *, alpha: float = 1.0, temperature: float = 30.0, **options):
        alpha = _validate.check_unit_interval(alpha, "alpha")
        temperature = _validate.check_positive(temperature, "temperature")
        super().__init__(student, teacher, **options)
        self.alpha, self.temperature = alpha, temperature

    def _skips_clean_student(self) -> bool:
        return self.alpha == 1

    def _attack_loss(self, x_adv, y, context):
        z_s = self.student(x_adv)
        return F.cross_entropy(z_s, y)

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


OBJECTIVES = {
    "smaraad": SmaraADObjective,
    "smaraad++": SmaraADObjective,
    "ard": ARDObjective,
    "rslad": RSLADObjective,
    "adaad": AdaADObjective,
}


def make_objective(name: str, student: nn.Module, teacher: nn.Module, **hparams) -> DistillationObjective:
    """An objective by name: ``"smaraad"``, ``"smaraad++"``, ``"ard"``, ``"rslad"`` or ``"adaad"``.

    ``hparams`` go to the class's constructor (``epsilon``, ``step_size``, ``steps`` for all).

    Example:
        >>> objective = make_objective("smaraad++", student, teacher, gamma=2.0)  # doctest: +SKIP
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in OBJECTIVES:
        raise ValueError(f"unknown method {name!r}; choose one of {sorted(OBJECTIVES)}")
    if key == "smaraad++":
        hparams.setdefault("weighting", "teacher_confidence")
    return OBJECTIVES[key](student, teacher, **hparams)
