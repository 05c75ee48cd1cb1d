"""The terms objectives are composed of: losses on named inputs, weighted and summed.

A term reads some of these named inputs of one batch, each computed once on first use by the
engine and then shared by every term of the loss; a term sees them through :class:`Batch`:

======================  =========================================================
``student`` / view       S(x') for ``"adv"``, S(x) for ``"clean"``, S(x − δ) for ``"reflected"``
``teacher`` / view       T(x'), T(x), T(x − δ) (δ = x' − x); constants in the outer loss
labels, epoch            y and the epoch the objective was called with
======================  =========================================================

Terms combine with ``*`` (a float weight ≥ 0) and ``+``::

    from softrank_ad.terms import KL, KendallMatching
    loss = KL() + 0.5 * KendallMatching()           # KL(S(x') ‖ T(x')) + 0.5 (1 − τ)

Evaluating a sum multiplies each term by its weight and adds them in the order written; a term
of weight 0 is not evaluated at all (so its inputs are never computed). Each leaf term has a
``name`` under which :meth:`~softrank_ad.DistillationObjective.breakdown` logs its value; names must be unique
within one loss (pass ``name=`` to tell two apart).

A new leaf term subclasses :class:`Term` and defines ``evaluate(batch) -> (value, parts)`` (a
scalar and the dict of values to log) and ``reads()`` (the input names it may touch: used to
know whether a loss can evaluate S(x), and which views need Grad-CAM forwards); or wraps any
``f(student_logits, teacher_logits) -> scalar`` in :class:`LogitLoss`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Literal, Protocol, get_args

import torch
import torch.nn.functional as F

from softrank_ad import _deprecation, _validate
from softrank_ad.attribution import AttributionAlignmentLoss
from softrank_ad.divergence import KL_REDUCTIONS, KLReduction, distillation_kl, igdm_loss
from softrank_ad.kendall import kendall_matching_loss
from softrank_ad.rank import BACKENDS, DEFAULT_GAMMA, SCALES, Backend, Scale
from softrank_ad.relational import dist_loss
from softrank_ad.spearman import POSITION_WEIGHTS, PositionWeights, slack_matching_loss

Parts = dict[str, torch.Tensor]
View = Literal["adv", "clean", "reflected"]
VIEWS = get_args(View)
# What slack matching ranks: each sample's logits over its classes, each class's logit over
# the batch, or both added.
RankAxis = Literal["classes", "samples", "both"]
RANK_AXES = get_args(RankAxis)


class Batch(Protocol):
    """What a term sees of one evaluation: the named inputs, each computed on first use by the
    engine (``softrank_ad.engine.Inputs``) and reused, and the settings that apply to it.

    In the attack (``attack`` True) the teacher's logits at x' (and x − δ) keep their graph
    w.r.t. x'; in the outer loss they are data."""

    y: torch.Tensor
    epoch: int | None
    attack: bool
    check_finite: bool
    #: The objective's default KL reduction, for KL terms without their own.
    kl_reduction: KLReduction

    def student(self, view: View) -> torch.Tensor: ...

    def teacher(self, view: View) -> torch.Tensor: ...

    def alignment(self, view: View) -> torch.Tensor: ...

    def point(self, view: View) -> torch.Tensor:
        """The input at ``view``: x', x or x − δ."""
        ...

    def teacher_label_gradient(self) -> torch.Tensor:
        """∇_x Σ_b T(x)_{b, y_b} at the clean x, computed once per batch (once per attack)."""
        ...


class Term:
    """A loss on named inputs; see the module's docstring for the contract."""

    name: str

    def evaluate(self, inputs: Batch) -> tuple[torch.Tensor, Parts]:
        """The term's scalar value and the values to log under their names (detached later)."""
        raise NotImplementedError

    def reads(self) -> frozenset[str]:
        """Names of the inputs this term may compute: ``"student_<view>"``, ``"teacher_<view>"``."""
        raise NotImplementedError

    def leaves(self) -> Iterator[tuple[float, Term]]:
        """(effective weight, leaf) pairs: 0 for leaves that a weight of 0 switches off."""
        yield 1.0, self

    def __mul__(self, weight: float) -> Sum:
        return Sum(((_check_weight(weight), self),))

    __rmul__ = __mul__

    def __add__(self, other: Term) -> Sum:
        if not isinstance(other, Term):
            return NotImplemented
        # Left-associative, as Python reads a + b + c: the left side's items carry on flat, the
        # right side joins as one item unless it is a single weighted term. Evaluation then
        # keeps the grouping the sum was written with.
        left = self.items if isinstance(self, Sum) else ((1.0, self),)
        right = other.items if isinstance(other, Sum) and len(other.items) == 1 else ((1.0, other),)
        return Sum(left + right)


def _check_weight(weight: object) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise TypeError(f"a term's weight must be a number, got {type(weight).__name__} {weight!r}")
    return _validate.check_non_negative(weight, "weight")


class Sum(Term):
    """Weighted terms added in order: Σ_k w_k · term_k (terms of weight 0 are skipped)."""

    def __init__(self, items: tuple[tuple[float, Term], ...]) -> None:
        self.items = items
        self.name = " + ".join(t.name for _, t in items)
        # Only terms that take part: a weight of 0 switches a term off, name and all.
        names = [leaf.name for weight, leaf in self.leaves() if weight != 0]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"two terms of one loss share the name(s) {duplicates}; pass name= to tell them apart")

    def evaluate(self, inputs: Batch) -> tuple[torch.Tensor, Parts]:
        total: torch.Tensor | None = None
        parts: Parts = {}
        for weight, term in self.items:
            if weight == 0:
                continue
            value, term_parts = term.evaluate(inputs)
            clash = parts.keys() & term_parts.keys()
            if clash:
                raise ValueError(f"two terms of one loss log under the same name(s) {sorted(clash)}")
            parts.update(term_parts)
            total = weight * value if total is None else total + weight * value
        if total is None:
            raise ValueError(f"every term of the loss {self.name!r} has weight 0")
        return total, parts

    def reads(self) -> frozenset[str]:
        return frozenset().union(*(t.reads() for w, t in self.items if w != 0))

    def leaves(self) -> Iterator[tuple[float, Term]]:
        for weight, term in self.items:
            for inner, leaf in term.leaves():
                yield weight * inner, leaf

    def __repr__(self) -> str:
        shown = [
            repr(t) if w == 1 else f"{w:g} * ({t!r})" if isinstance(t, Sum) else f"{w:g} * {t!r}"
            for w, t in self.items
            if w != 0
        ]
        return " + ".join(shown) or "0"


def _check_view(view: object, name: str) -> View:
    _validate.check_choice(view, name, VIEWS)
    return view  # type: ignore[return-value]


class _LogitTerm(Term):
    """A loss on S(``student``) and T(``teacher``); subclasses define ``loss``."""

    kind: str

    def __init__(self, *, student: View = "adv", teacher: View = "adv", name: str | None = None) -> None:
        self.student = _check_view(student, "student")
        self.teacher = _check_view(teacher, "teacher")
        self.name = name if name is not None else f"{self.kind}_{self.student}"
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")

    def loss(self, z_s: torch.Tensor, z_t: torch.Tensor, inputs: Batch) -> torch.Tensor:
        raise NotImplementedError

    def evaluate(self, inputs: Batch) -> tuple[torch.Tensor, Parts]:
        value = self.loss(inputs.student(self.student), inputs.teacher(self.teacher), inputs)
        return value, {self.name: value}

    def reads(self) -> frozenset[str]:
        return frozenset({f"student_{self.student}", f"teacher_{self.teacher}"})

    def __repr__(self) -> str:
        return self.name


class LogitLoss(_LogitTerm):
    """Any ``fn(student_logits, teacher_logits) -> scalar`` on S(``student``) and T(``teacher``).

    Args:
        fn: the loss, e.g. ``torch.nn.functional.mse_loss`` or a loss Module.
        student, teacher: the views, ``"adv"`` (default), ``"clean"`` or ``"reflected"``.
        name: the name it is logged under (default ``"<fn's name>_<student view>"``).

    Example:
        >>> term = LogitLoss(torch.nn.functional.mse_loss)      # logged as "mse_loss_adv"
    """

    def __init__(
        self,
        fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        *,
        student: View = "adv",
        teacher: View = "adv",
        name: str | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.kind = getattr(fn, "__name__", type(fn).__name__.lower())
        super().__init__(student=student, teacher=teacher, name=name)

    def loss(self, z_s, z_t, inputs):
        return self.fn(z_s, z_t)


class KL(_LogitTerm):
    """KL(S(student) ‖ T(teacher)) by :func:`~softrank_ad.kl_divergence`; logged as ``kl_<view>``.

    Args:
        student, teacher: the views (default ``"adv"`` both: AdaAD's term).
        temperature: τ (the value is the plain KL; scale by τ² through the weight, as ARD does).
        reduction: ``"batchmean"``, ``"mean"``, ``"sum"``, or None (default) for the objective's
            ``kl_reduction``.
        standardize_logits: z-score each row first (logit standardisation, Sun et al. 2024).

    Like every term, it takes no ``detach_teacher`` (the teacher is differentiated in the attack
    and a constant in the outer loss) and no ``check_finite`` (the objective's applies).
    """

    kind = "kl"

    def __init__(
        self,
        *,
        student: View = "adv",
        teacher: View = "adv",
        temperature: float = 1.0,
        reduction: KLReduction | None = None,
        standardize_logits: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__(student=student, teacher=teacher, name=name)
        self.temperature = _validate.check_positive(temperature, "temperature")
        if reduction is not None:
            _validate.check_choice(reduction, "reduction", tuple(r for r in KL_REDUCTIONS if r != "none"))
        self.reduction = reduction
        self.standardize_logits = bool(standardize_logits)

    def loss(self, z_s, z_t, inputs: Batch):
        # Settings were checked at construction and the engine checks the logits' shapes: the
        # unchecked core, since this runs on every step of an attack.
        return distillation_kl(
            z_s,
            z_t if inputs.attack else z_t.detach(),
            self.temperature,
            self.reduction or inputs.kl_reduction,
            self.standardize_logits,
        )


class SlackMatching(_LogitTerm):
    """1 − soft Spearman ρ (:func:`~softrank_ad.slack_matching_loss`), mean over rows.

    Args:
        student, teacher: the views (default ``"adv"`` both).
        gamma, scale, backend: the soft rank's γ, scaling and backend.
        position_weights: ``"none"`` or ``"dcg"`` (weights from the teacher side's ranking).
        rank_axis: ``"classes"`` (default, the paper: each sample's logits ranked over its
            classes), ``"samples"`` (each class's logit ranked over the batch; needs B ≥ 2 and,
            under ``DistributedDataParallel``, sees the local batch only) or ``"both"`` (the two
            added). Logged as ``slack_matching_<view>`` and/or ``slack_matching_samples_<view>``.

    The function's ``dim`` is ``rank_axis`` here, since a term's logits are always (B, C); its
    ``reduction`` is the mean over rows, since a term is one summand of a scalar loss.
    """

    kind = "slack_matching"

    @_deprecation.renamed_keywords(axis="rank_axis")
    def __init__(
        self,
        *,
        student: View = "adv",
        teacher: View = "adv",
        gamma: float = DEFAULT_GAMMA,
        scale: Scale = "none",
        position_weights: PositionWeights = "none",
        rank_axis: RankAxis = "classes",
        backend: Backend = "auto",
        name: str | None = None,
    ) -> None:
        _validate.check_choice(rank_axis, "rank_axis", RANK_AXES)
        self.rank_axis = rank_axis
        self._logged = {
            axis: f"slack_matching{'_samples' if axis == 'samples' else ''}_{student}"
            for axis in (("classes", "samples") if rank_axis == "both" else (rank_axis,))
        }
        if name is None:
            name = next(iter(self._logged.values())) if rank_axis != "both" else f"slack_matching_both_{student}"
        super().__init__(student=student, teacher=teacher, name=name)
        if rank_axis != "both":
            self._logged = {rank_axis: self.name}
        self.gamma = _validate.check_gamma(gamma)
        _validate.check_choice(scale, "scale", SCALES)
        _validate.check_choice(position_weights, "position_weights", POSITION_WEIGHTS)
        _validate.check_choice(backend, "backend", BACKENDS)
        self.scale, self.position_weights, self.backend = scale, position_weights, backend

    @property
    def axis(self) -> str:
        _deprecation.warn("SlackMatching.axis", "SlackMatching.rank_axis")
        return self.rank_axis

    def per_sample(self, z_s: torch.Tensor, z_t: torch.Tensor, inputs: Batch, axis: str = "classes") -> torch.Tensor:
        """The loss per row of the ranked axis: (B,) over classes, (C,) over samples."""
        dim = 1 if axis == "classes" else 0
        if dim == 0 and z_s.shape[0] < 2:
            raise ValueError(
                f"ranking over samples needs a batch of at least 2, got logits of shape {tuple(z_s.shape)}"
            )
        return slack_matching_loss(
            z_s,
            z_t,
            gamma=self.gamma,
            reduction="none",
            dim=dim,
            scale=self.scale,
            position_weights=self.position_weights,
            backend=self.backend,
            detach_teacher=not inputs.attack,
            check_finite=inputs.check_finite,
        )

    def evaluate(self, inputs: Batch) -> tuple[torch.Tensor, Parts]:
        z_s, z_t = inputs.student(self.student), inputs.teacher(self.teacher)
        parts = {name: self.per_sample(z_s, z_t, inputs, axis).mean() for axis, name in self._logged.items()}
        values = list(parts.values())
        return (values[0] + values[1] if len(values) == 2 else values[0]), parts


class KendallMatching(_LogitTerm):
    """1 − soft Kendall τ (:func:`~softrank_ad.kendall_matching_loss`) over classes, mean over
    rows; logged as ``kendall_<view>``.

    Args:
        student, teacher: the views (default ``"adv"`` both).
        gamma: the pairwise comparisons' sharpness γ.
    """

    kind = "kendall"

    def __init__(
        self, *, student: View = "adv", teacher: View = "adv", gamma: float = DEFAULT_GAMMA, name: str | None = None
    ) -> None:
        super().__init__(student=student, teacher=teacher, name=name)
        self.gamma = _validate.check_gamma(gamma)

    def loss(self, z_s, z_t, inputs: Batch):
        return kendall_matching_loss(
            z_s, z_t, gamma=self.gamma, detach_teacher=not inputs.attack, check_finite=inputs.check_finite
        )


class DIST(_LogitTerm):
    """DIST (:func:`~softrank_ad.dist_loss`): inter- and intra-class Pearson matching of
    probabilities; logged as ``dist_<view>``. Its intra-class part is a batch statistic (the local
    batch under ``DistributedDataParallel``).

    Args:
        student, teacher: the views (default ``"adv"`` both).
        temperature, inter_weight, intra_weight: as in :func:`~softrank_ad.dist_loss`.
    """

    kind = "dist"

    def __init__(
        self,
        *,
        student: View = "adv",
        teacher: View = "adv",
        temperature: float = 1.0,
        inter_weight: float = 1.0,
        intra_weight: float = 1.0,
        name: str | None = None,
    ) -> None:
        super().__init__(student=student, teacher=teacher, name=name)
        self.temperature = _validate.check_positive(temperature, "temperature")
        self.inter_weight = _validate.check_non_negative(inter_weight, "inter_weight")
        self.intra_weight = _validate.check_non_negative(intra_weight, "intra_weight")

    def loss(self, z_s, z_t, inputs: Batch):
        return dist_loss(
            z_s,
            z_t,
            temperature=self.temperature,
            inter_weight=self.inter_weight,
            intra_weight=self.intra_weight,
            detach_teacher=not inputs.attack,
            check_finite=inputs.check_finite,
        )


class CrossEntropy(Term):
    """CE(S(``student``), y), logged as ``ce_<view>`` (default view ``"clean"``)."""

    def __init__(self, *, student: View = "clean", name: str | None = None) -> None:
        self.student = _check_view(student, "student")
        self.name = name or f"ce_{self.student}"

    def evaluate(self, inputs: Batch):
        value = F.cross_entropy(inputs.student(self.student), inputs.y)
        return value, {self.name: value}

    def reads(self):
        return frozenset({f"student_{self.student}"})

    def __repr__(self) -> str:
        return self.name


class Alignment(Term):
    """MSE of the two models' Grad-CAM maps at ``view`` (:func:`~softrank_ad.attribution_alignment_loss`),
    logged as ``align_<view>``. The view's logits then come from the Grad-CAM forwards, for every
    term of the loss. In the attack the teacher's map is differentiated too.

    Args:
        view: ``"adv"`` (default) or ``"clean"``.
        loss_fn: an :class:`~softrank_ad.AttributionAlignmentLoss` holding the settings (layers,
            target, normalize, output_size, reshape transforms); default: its defaults. Its
            ``detach_teacher`` is set by where the term is evaluated.
    """

    @_deprecation.keyword_only("view", "loss_fn")
    def __init__(
        self, *, view: View = "adv", loss_fn: AttributionAlignmentLoss | None = None, name: str | None = None
    ) -> None:
        self.view = _check_view(view, "view")
        if loss_fn is not None and not isinstance(loss_fn, AttributionAlignmentLoss):
            raise TypeError(f"loss_fn must be an AttributionAlignmentLoss, got {type(loss_fn).__name__}")
        self.loss_fn = loss_fn if loss_fn is not None else AttributionAlignmentLoss()
        self.name = name or f"align_{self.view}"

    def evaluate(self, inputs: Batch):
        value = inputs.alignment(self.view)
        return value, {self.name: value}

    def reads(self):
        return frozenset({f"student_{self.view}", f"teacher_{self.view}"})

    def __repr__(self) -> str:
        return self.name


def _check_ramp(ramp_epochs: int | None) -> int | None:
    if ramp_epochs is not None:
        _validate.check_int(ramp_epochs, "ramp_epochs", minimum=1)
    return ramp_epochs


def _ramp(epoch: int | None, ramp_epochs: int | None) -> float:
    """IGDM's weight schedule, min(1, (epoch + 1) / ramp_epochs) (epochs counted from 0); 1 without
    a ramp or without an epoch."""
    if ramp_epochs is None or epoch is None:
        return 1.0
    return min(1.0, (epoch + 1) / ramp_epochs)


class IGDM(Term):
    """IGDM's indirect input-gradient matching (:func:`~softrank_ad.igdm_loss`) between
    S(x ± δ) and T(x ± δ), δ = x' − x; logged as ``igdm``. Two forwards more than a term at x'
    alone: S(x − δ) and T(x − δ).

    Args:
        ramp_epochs: the weight grows as min(1, (epoch + 1) / ramp_epochs), as the reference
            code's epoch / 200 over a 200-epoch run (epochs counted from 0 here, from 1 there).
            None (default): no ramp. A call without ``epoch`` takes the full weight.
    """

    def __init__(self, *, ramp_epochs: int | None = None, name: str = "igdm") -> None:
        self.ramp_epochs = _check_ramp(ramp_epochs)
        self.name = name

    def evaluate(self, inputs: Batch):
        value = igdm_loss(
            inputs.student("adv"),
            inputs.student("reflected"),
            inputs.teacher("adv"),
            inputs.teacher("reflected"),
            reduction=inputs.kl_reduction,
            detach_teacher=not inputs.attack,
            check_finite=inputs.check_finite,
        )
        return _ramp(inputs.epoch, self.ramp_epochs) * value, {self.name: value}

    def reads(self):
        return frozenset({"student_adv", "student_reflected", "teacher_adv", "teacher_reflected"})

    def __repr__(self) -> str:
        return f"{self.name}(ramp_epochs={self.ramp_epochs})"


class ConfidenceWeightedSlackMatching(Term):
    r"""SmaraAD++'s slack matching: per sample, towards the teacher in proportion to its
    confidence in the true class and towards the student's own clean logits for the rest,

    .. math::
        \operatorname{mean}_b \big[w_b \mathcal{L}_{sm,b}(S(x'), T(x')) + (1 - w_b) \mathcal{L}_{sm,b}(S(x'), S(x))\big],
        \quad w_b = p_T(y_b \mid x'_b)^{\beta_w}

    (no gradient through w). S(x) is evaluated only when some w_b < 1 (one host sync to decide).
    Logged: ``slack_matching_adv`` (unweighted mean), ``slack_matching_self`` and the (B,)
    ``sample_weights`` w.

    Args:
        weight_power: β_w.
        weights_from_epoch: w = 1 before this epoch; a call without ``epoch`` uses the weights.
        gamma, scale, position_weights: as :class:`SlackMatching` (classes axis only).
    """

    name = "slack_matching_weighted"

    def __init__(
        self,
        *,
        weight_power: float,
        weights_from_epoch: int,
        gamma: float = DEFAULT_GAMMA,
        scale: Scale = "none",
        position_weights: PositionWeights = "none",
    ) -> None:
        self.weight_power = _validate.check_non_negative(weight_power, "weight_power")
        self.weights_from_epoch = _validate.check_int(weights_from_epoch, "weights_from_epoch")
        self.slack = SlackMatching(gamma=gamma, scale=scale, position_weights=position_weights)

    def sample_weights(self, z_t_adv: torch.Tensor, y: torch.Tensor, epoch: int | None) -> torch.Tensor:
        """w per sample (ones before ``weights_from_epoch``)."""
        if epoch is not None and epoch < self.weights_from_epoch:
            return torch.ones_like(y, dtype=z_t_adv.dtype)
        return teacher_confidence(z_t_adv, y, self.weight_power)

    def evaluate(self, inputs: Batch):
        z_s_adv, z_t_adv = inputs.student("adv"), inputs.teacher("adv")
        w = self.sample_weights(z_t_adv, inputs.y, inputs.epoch)
        towards_teacher = self.slack.per_sample(z_s_adv, z_t_adv, inputs)
        parts = {"slack_matching_adv": towards_teacher.mean(), "sample_weights": w}
        per_sample = w * towards_teacher
        if bool((w < 1).any()):
            # S(x) is the target of the self term, as the teacher is of the other [library].
            towards_self = self.slack.per_sample(z_s_adv, inputs.student("clean").detach(), inputs)
            per_sample = per_sample + (1 - w) * towards_self
            parts["slack_matching_self"] = towards_self.mean()
        return per_sample.mean(), parts

    def reads(self):
        return frozenset({"student_adv", "teacher_adv", "student_clean"})

    def __repr__(self) -> str:
        return f"confidence_weighted_slack_matching(weight_power={self.weight_power})"


def teacher_confidence(z_t: torch.Tensor, y: torch.Tensor, power: float) -> torch.Tensor:
    """p_T(y_b | ·)^power per sample, without gradient: how far IAD and SmaraAD++ trust the
    teacher on each sample."""
    with torch.no_grad():
        p_true = F.softmax(z_t.float(), dim=1).gather(1, y[:, None]).squeeze(1)
        return p_true.pow(power).to(z_t.dtype)


class Introspection(Term):
    r"""IAD's student introspection: where the teacher is unsure at x', the student's adversarial
    prediction is pulled towards its own clean one,

    .. math::
        \operatorname{mean}_b (1 - w_b)\, \mathrm{KL}(S(x'_b) \| S(x_b)), \quad w_b = p_T(y_b \mid x'_b)^{\beta}

    (no gradient through w; as the official code, the gradient flows through S(x) as well as
    S(x')). Before ``from_epoch`` the term is 0 and reads nothing. Logged as ``introspection``
    and, when on, the (B,) ``sample_weights`` w.

    Args:
        weight_power: β ≥ 0 (0.1 in IAD and AdaIAD).
        from_epoch: the epoch the term starts at (60 of 200 in IAD and AdaIAD); a call without
            ``epoch`` has it on.

    Reference: Zhu et al., "Reliable Adversarial Distillation with Unreliable Teachers", ICLR 2022.
    """

    def __init__(self, *, weight_power: float = 0.1, from_epoch: int = 60, name: str = "introspection") -> None:
        self.weight_power = _validate.check_non_negative(weight_power, "weight_power")
        self.from_epoch = _validate.check_int(from_epoch, "from_epoch")
        self.name = name

    def active(self, epoch: int | None) -> bool:
        return epoch is None or epoch >= self.from_epoch

    def evaluate(self, inputs: Batch):
        z_s_adv = inputs.student("adv")
        if not self.active(inputs.epoch):
            value = z_s_adv.new_zeros(())
            return value, {self.name: value}
        w = teacher_confidence(inputs.teacher("adv"), inputs.y, self.weight_power)
        towards_self = distillation_kl(z_s_adv, inputs.student("clean"), 1.0, "none")
        value = ((1 - w) * towards_self).mean()
        return value, {self.name: value, "sample_weights": w}

    def reads(self):
        return frozenset({"student_adv", "student_clean", "teacher_adv"})

    def __repr__(self) -> str:
        return f"{self.name}(weight_power={self.weight_power}, from_epoch={self.from_epoch})"


class LinearizedTeacherKL(Term):
    r"""SAAD's attack objective: KL from the student at x' to the teacher at x corrected to first
    order on the true class only,

    .. math::
        \mathrm{KL}(S(x') \| \tilde T), \quad
        \tilde T_{b,c} = T(x)_{b,c} + [c = y_b]\, \lambda \langle \nabla_x T(x)_{b,y_b}, x'_b - x_b \rangle

    — the teacher's true-class logit followed along the perturbation without a teacher forward
    at each step (one forward and backward of the teacher per attack). Logged as
    ``kl_linearized``. Meant for an :class:`~softrank_ad.engine.Attack`; in an outer loss the
    corrected teacher is a constant.

    Args:
        weight: λ ≥ 0, the correction's weight (1 in SAAD).
    """

    def __init__(self, *, weight: float = 1.0, name: str = "kl_linearized") -> None:
        self.weight = _validate.check_non_negative(weight, "weight")
        self.name = name

    def evaluate(self, inputs: Batch):
        z_t = inputs.teacher("clean").detach()
        delta = inputs.point("adv") - inputs.point("clean")
        gradient = inputs.teacher_label_gradient()
        correction = torch.einsum("bi,bi->b", gradient.flatten(1), delta.flatten(1))
        corrected = z_t + (self.weight * correction)[:, None] * F.one_hot(inputs.y, z_t.shape[1]).to(z_t.dtype)
        if not inputs.attack:
            corrected = corrected.detach()
        value = distillation_kl(inputs.student("adv"), corrected, 1.0, inputs.kl_reduction)
        return value, {self.name: value}

    def reads(self):
        return frozenset({"student_adv", "teacher_clean"})

    def __repr__(self) -> str:
        return self.name


def entropy(z: torch.Tensor, order: float = 1.0, eps: float = 1e-12) -> torch.Tensor:
    """Rényi entropy of order α of softmax(z) per row (Shannon at α = 1), with ``eps`` inside the
    logarithm as SAAD's code adds it."""
    p = F.softmax(z, dim=1)
    if abs(order - 1.0) < 1e-6:
        return -(p * torch.log(p + eps)).sum(dim=1)
    return torch.log((p**order).sum(dim=1) + eps) / (1.0 - order)


class TransferWeightedKL(Term):
    r"""SAAD's outer loss: per sample, the adversarial KL (and IGDM) weighted by the teacher's
    entropy at x', a proxy of how well the student's adversarial example transfers to the teacher,

    .. math::
        \operatorname{mean}_b \big[w_b (\mathrm{KL}_b(x') + c_{igdm}\, r(e)\, \mathrm{IGDM}_b)
            + \beta (1 - \hat w_b) \mathrm{KL}_b(x)\big], \quad
        w_b = s\,(H_b - \min_{b'} H_{b'}), \quad \hat w = \frac{w - \min w}{\max w - \min w + 10^{-8}}

    with H the Rényi entropy of order α of the teacher's prediction at x' (no gradient),
    KL_b(v) = KL(S(v_b) ‖ T(v_b)) per sample, IGDM_b IGDM's per-sample term (see
    :func:`~softrank_ad.igdm_loss`) and r(e) = min(1, (epoch + 1) / ramp_epochs) its ramp. The KLs
    are per sample by construction, so the objective's ``kl_reduction`` does not apply. Logged:
    ``kl_adv``, ``igdm`` and ``kl_clean`` (unweighted means; each when computed) and the (B,)
    ``sample_weights`` w.

    Args:
        clean_weight: β ≥ 0, the clean KL's weight (0 in SAAD's script: then S(x) is not read).
        igdm_weight: c_igdm ≥ 0 (1 on CIFAR-10, 10 on CIFAR-100 and Tiny-ImageNet in SAAD).
        ramp_epochs: the IGDM ramp's length (the run's epochs, 200); None: no ramp.
        entropy_order: α of the Rényi entropy (1: Shannon, SAAD's script).
        entropy_scale: s (5 in SAAD's code).

    Reference: Lee and Chung, "Sample-wise Adaptive Weighting for Transfer Consistency in
    Adversarial Distillation", TMLR 2026.
    """

    name = "saad"

    def __init__(
        self,
        *,
        clean_weight: float = 0.0,
        igdm_weight: float = 1.0,
        ramp_epochs: int | None = 200,
        entropy_order: float = 1.0,
        entropy_scale: float = 5.0,
    ) -> None:
        self.clean_weight = _validate.check_non_negative(clean_weight, "clean_weight")
        self.igdm_weight = _validate.check_non_negative(igdm_weight, "igdm_weight")
        self.ramp_epochs = _check_ramp(ramp_epochs)
        self.entropy_order = _validate.check_positive(entropy_order, "entropy_order")
        self.entropy_scale = _validate.check_positive(entropy_scale, "entropy_scale")

    def sample_weights(self, z_t_adv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(w, ŵ): the entropy weights and their min–max normalisation."""
        with torch.no_grad():
            h = entropy(z_t_adv.float(), self.entropy_order)  # half-precision softmax would blur it
            w = (self.entropy_scale * (h - h.min())).clamp(min=0.0)
            return w, (w - w.min()) / (w.max() - w.min() + 1e-8)

    def evaluate(self, inputs: Batch):
        z_s_adv, z_t_adv = inputs.student("adv"), inputs.teacher("adv")
        w, w_normalised = self.sample_weights(z_t_adv)
        kl_adv = distillation_kl(z_s_adv, z_t_adv.detach(), 1.0, "none")
        parts = {"kl_adv": kl_adv.mean()}
        adversarial = kl_adv
        if self.igdm_weight != 0:
            igdm = igdm_loss(
                z_s_adv,
                inputs.student("reflected"),
                z_t_adv,
                inputs.teacher("reflected"),
                reduction="none",
                check_finite=inputs.check_finite,
            )
            adversarial = adversarial + self.igdm_weight * _ramp(inputs.epoch, self.ramp_epochs) * igdm
            parts["igdm"] = igdm.mean()
        per_sample = w * adversarial
        if self.clean_weight != 0:
            kl_clean = distillation_kl(inputs.student("clean"), inputs.teacher("clean").detach(), 1.0, "none")
            per_sample = per_sample + self.clean_weight * (1 - w_normalised) * kl_clean
            parts["kl_clean"] = kl_clean.mean()
        value = per_sample.mean()
        return value, {self.name: value, **parts, "sample_weights": w}

    def reads(self):
        names = {"student_adv", "teacher_adv"}
        if self.igdm_weight != 0:
            names |= {"student_reflected", "teacher_reflected"}
        if self.clean_weight != 0:
            names |= {"student_clean", "teacher_clean"}
        return frozenset(names)

    def __repr__(self) -> str:
        return f"saad(clean_weight={self.clean_weight}, igdm_weight={self.igdm_weight}, ramp_epochs={self.ramp_epochs})"


def view_alignments(term: Term) -> dict[str, AttributionAlignmentLoss]:
    """The alignment settings per view of the non-zero :class:`Alignment` terms of ``term``; one
    per view, since a view's logits come from its one pair of Grad-CAM forwards."""
    found: dict[str, AttributionAlignmentLoss] = {}
    for weight, leaf in term.leaves():
        if weight == 0 or not isinstance(leaf, Alignment):
            continue
        if leaf.view in found and found[leaf.view].settings() != leaf.loss_fn.settings():
            raise ValueError(
                f"two alignment terms on view {leaf.view!r} with different settings; one loss "
                "can align each view one way only"
            )
        found[leaf.view] = leaf.loss_fn
    return found
