"""The engine every objective runs on: an :class:`Attack` and an outer loss of
:mod:`~softrank_ad.terms`, on a student and a frozen teacher, with the call protocol.

Per batch the engine computes each named input (S(x'), S(x), T(x'), T(x), and x − δ where IGDM
reads it) at most once, in :class:`Inputs`, the :class:`~softrank_ad.terms.Batch` the terms
read; the terms never see the objective. It owns the models' modes (restored after every call),
the checks and the attack loop. The published methods (:mod:`softrank_ad.methods`) are
instances of it built with their attack and loss.

Every objective offers:

- ``perturb(x, y) -> x_adv``: the attack, with the student in eval mode (``attack_mode="train"``:
  train mode) and its mode restored after;
- ``objective(x, y, x_adv=None, epoch=None) -> loss``: the outer loss, attacking first when
  ``x_adv`` is not given;
- ``breakdown(x, y, x_adv=None, epoch=None) -> dict[str, Tensor]``: the same loss under
  ``"loss"`` and each term's value (detached) under its name, for logging;
- ``inner_loss(x_adv, x, y)``: the scalar ``perturb`` maximises.

``objective.parameters()`` holds the student's parameters only: pass it to the optimizer. The
teacher is frozen when the objective is built (``requires_grad_(False)``), evaluated in eval mode
in every call with its previous mode restored, and never registered as a submodule; ``.to()``,
``.cuda()`` or ``.double()`` on the objective move it with the student.

Two options reproduce how the official baselines treat the student's BatchNorm (both off by
default, where the student's BN statistics come from adversarial batches alone):

- ``attack_mode="train"`` runs the attack with the student in train mode (official ARD), so the
  attack's forwards update its BN running statistics; ``"eval"`` (default) freezes them.
- ``clean_bn_forward=True`` runs a clean train-mode forward of the student (no gradient) in every
  call whose loss evaluated no S(x) (official AdaAD at weight 1, where the clean term's weight
  is 0), so BN running statistics mix clean and adversarial batches. It runs before the outer
  loss when the loss never reads S(x), as the official AdaAD code does, and after it when the
  loss may read S(x) but did not in this call (SmaraAD++ during its warm-up).

Where the order of the student's forwards matters too (each train-mode forward moves the BN
running statistics, so their order sets them), ``student_forwards`` names it: the views the
student runs first in every call of the outer loss, in order, e.g. ``("clean", "adv")`` for
official AdaAD, which evaluates S(x) before S(x') whatever its weights. The first forward of a
view is the one the loss then uses; a view named again runs again without gradient, for the
statistics only, as official code that calls the model anew inside its loss expression does.
``clip_start=False`` starts the attack from x + noise unclipped, as the official training
attacks do. :func:`~softrank_ad.registry.official_options` gives each method's settings.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import nn

from softrank_ad import _deprecation, _validate
from softrank_ad._modes import eval_mode, modes_restored
from softrank_ad.attacks import STARTS, Start, ascend, check_budget, random_start
from softrank_ad.attribution import AttributionAlignmentLoss, attribution_alignment_loss
from softrank_ad.divergence import KL_REDUCTIONS, KLReduction
from softrank_ad.terms import VIEWS, Term, View, view_alignments

AttackMode = Literal["eval", "train"]
ATTACK_MODES = get_args(AttackMode)
#: The KL reductions an objective can default its KL terms to.
OBJECTIVE_KL_REDUCTIONS = tuple(r for r in KL_REDUCTIONS if r != "none")


class Inputs:
    """The named inputs of one evaluation of a loss (a :class:`~softrank_ad.terms.Batch`), each
    computed on first use and reused.

    In the attack (``attack=True``) the teacher's logits at x' (and x − δ) keep their graph
    w.r.t. x' and Grad-CAM differentiates the teacher's map too; in the outer loss the teacher's
    side is data. A view that a non-zero alignment term covers takes both models' logits from the
    Grad-CAM forwards, so each model runs once per view either way. ``persistent`` carries T(x)
    across the steps of one attack (x and the teacher do not change)."""

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        x_adv: torch.Tensor,
        epoch: int | None,
        *,
        attack: bool,
        check_finite: bool,
        kl_reduction: KLReduction,
        aligned: dict[str, AttributionAlignmentLoss],
        persistent: dict | None = None,
    ) -> None:
        self._student, self._teacher = student, teacher
        self.x, self.y, self.x_adv, self.epoch, self.attack = x, y, x_adv, epoch, attack
        self.check_finite, self.kl_reduction = check_finite, kl_reduction
        self._aligned = aligned
        self._persistent = persistent
        self._cache: dict[str, torch.Tensor] = dict(persistent or {})

    def computed(self, name: str) -> bool:
        """Whether input ``name`` (e.g. ``"student_clean"``) was computed in this evaluation."""
        return name in self._cache

    def point(self, view: View) -> torch.Tensor:
        if view == "adv":
            return self.x_adv
        if view == "clean":
            return self.x
        # x − δ with δ = x' − x, written as IGDM's reference computes it; not clipped.
        return self.x - (self.x_adv - self.x)

    def student(self, view: View) -> torch.Tensor:
        key = f"student_{view}"
        if key not in self._cache:
            if view in self._aligned:
                self._align(view)
            else:
                self._store(key, self._student(self.point(view)))
        return self._cache[key]

    def teacher(self, view: View) -> torch.Tensor:
        key = f"teacher_{view}"
        if key not in self._cache:
            if view in self._aligned:
                self._align(view)
            elif self.attack and view != "clean":
                self._store(key, self._teacher(self.point(view)))
            else:
                with torch.no_grad():
                    self._store(key, self._teacher(self.point(view)))
                if view == "clean":
                    self._keep(key)
        return self._cache[key]

    def teacher_label_gradient(self) -> torch.Tensor:
        """∇_x Σ_b T(x)_{b, y_b}: the teacher's input gradient of each sample's true-class logit at
        the clean x (one forward and backward, kept across the steps of an attack)."""
        key = "gradient_teacher_label"  # not "teacher_…": the logit-shape checks skip it
        if key not in self._cache:
            x = self.x.detach().requires_grad_(True)
            with torch.enable_grad():
                logits = self._teacher(x)
                (gradient,) = torch.autograd.grad(logits.gather(1, self.y[:, None]).sum(), x)
            self._cache[key] = gradient
            self._keep(key)
        return self._cache[key]

    def alignment(self, view: View) -> torch.Tensor:
        key = f"alignment_{view}"
        if key not in self._cache:
            self._align(view)
        return self._cache[key]

    def _align(self, view: View) -> None:
        settings = {**self._aligned[view].settings(), "detach_teacher": not self.attack, "check_finite": False}
        loss, z_s, z_t = attribution_alignment_loss(self._student, self._teacher, self.point(view), self.y, **settings)
        self._store(f"student_{view}", z_s)
        self._store(f"teacher_{view}", z_t)
        self._cache[f"alignment_{view}"] = loss

    def _keep(self, key: str) -> None:
        """Keeps input ``key``, which depends on x alone, for the next evaluations of this batch
        (the steps of an attack, then the outer loss)."""
        if self._persistent is not None:
            self._persistent[key] = self._cache[key]

    def _store(self, key: str, logits: torch.Tensor) -> None:
        model = key.split("_")[0]
        for other, seen in self._cache.items():
            if other.split("_")[0] in {"student", "teacher"} - {model}:
                _validate.check_logit_shapes(*((logits, seen) if model == "student" else (seen, logits)))
        self._cache[key] = logits


def check_forwards(student_forwards: object) -> tuple[View, ...]:
    """``student_forwards`` as a tuple of views, or a named error."""
    if isinstance(student_forwards, str) or not isinstance(student_forwards, (tuple, list)):
        raise TypeError(f"student_forwards must be a tuple of views such as ('clean', 'adv'), got {student_forwards!r}")
    for view in student_forwards:
        _validate.check_choice(view, "student_forwards", VIEWS)
    return tuple(student_forwards)


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
            loss evaluates no S(x), as the official AdaAD code does (see the module's notes;
            official ARD runs it after S(x'): ``student_forwards=("adv", "clean")``).
        student_forwards: the student's views (``"adv"``, ``"clean"``, ``"reflected"``) to run
            first in every call of the outer loss, in this order; a repeated view runs again
            without gradient (see the module's notes). Default ``()``: each input is computed
            when a term first reads it. Not together with ``clean_bn_forward``.
        clip_start: clip the attack's random start into [0, 1] (default); False keeps x + noise
            as the official training attacks do.
        check_finite: the data-dependent checks, each a host sync: ``x`` (and a given ``x_adv``)
            finite and in [0, 1], labels within the classes, and every logit the rank and
            correlation terms see finite (so a diverged student raises instead of training on
            NaN). False skips them all; shapes and dtypes are still checked. Class counts are
            compared once, on the first call.

    Shape:
        - x, x_adv: (B, C_in, H, W) images in [0, 1] (any (B, ...) the models take).
        - y: (B,) class indices, any integer dtype.
        - Output: a scalar loss; ``breakdown`` gives a dict of scalars (SmaraAD++ adds the
          (B,) ``sample_weights``).

    Example:
        >>> from softrank_ad.terms import KL, KendallMatching
        >>> attack = Attack(KL(), start="normal")                                  # AdaAD's
        >>> objective = DistillationObjective(student, teacher, attack=attack,
        ...                                   loss=KL() + 0.5 * KendallMatching())
        >>> objective(x, y).backward()

    Every argument is validated before the models are touched: a constructor that raises leaves
    the teacher (and any module it shares with the student) as it was.
    """

    # Not a submodule (see __init__): declared for type checkers.
    teacher: nn.Module

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
        student_forwards: tuple[View, ...] = (),
        clip_start: bool = True,
    ) -> None:
        super().__init__()
        _validate.check_choice(kl_reduction, "kl_reduction", OBJECTIVE_KL_REDUCTIONS)
        _validate.check_choice(attack_mode, "attack_mode", ATTACK_MODES)
        for name, flag in (
            ("clean_bn_forward", clean_bn_forward),
            ("check_finite", check_finite),
            ("clip_start", clip_start),
        ):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool, got {type(flag).__name__}")
        student_forwards = check_forwards(student_forwards)
        if student_forwards and clean_bn_forward:
            raise ValueError(
                "pass student_forwards or clean_bn_forward, not both: name the clean view in student_forwards"
            )
        for name, model in (("student", student), ("teacher", teacher)):
            if not isinstance(model, nn.Module):
                raise TypeError(f"{name} must be an nn.Module, got {type(model).__name__}")
        if student is teacher:
            raise ValueError("student and teacher must be different modules")
        if not isinstance(attack, Attack):
            raise TypeError(f"attack must be an Attack, got {type(attack).__name__}")
        check_budget(epsilon, step_size, steps)
        if not isinstance(loss, Term):
            raise TypeError(f"loss must be a Term (see softrank_ad.terms), got {type(loss).__name__}")
        self.attack = attack
        self._attack_aligned = view_alignments(attack.loss)
        self._aligned = view_alignments(loss)
        self._loss = loss
        self.student = student
        self.epsilon = float(epsilon)
        self.step_size = float(step_size)
        self.steps = steps
        self.kl_reduction = kl_reduction
        self.attack_mode = attack_mode
        self.clean_bn_forward = clean_bn_forward
        self.check_finite = check_finite
        self.student_forwards = student_forwards
        self.clip_start = clip_start
        self._classes: int | None = None  # learnt on the first call
        # Last, after every check (subclasses check theirs before calling this). Not a submodule:
        # the teacher's parameters stay out of parameters() and state_dict(); _apply moves it.
        object.__setattr__(self, "teacher", teacher.requires_grad_(False))

    @property
    def loss(self) -> Term:
        """The outer loss, fixed at construction; build a new objective (for instance with
        ``make_objective(..., loss=)``) to compose another."""
        return self._loss

    @property
    def options(self) -> dict:
        """The engine's settings, as keyword arguments of :class:`DistillationObjective`."""
        return dict(
            epsilon=self.epsilon,
            step_size=self.step_size,
            steps=self.steps,
            kl_reduction=self.kl_reduction,
            attack_mode=self.attack_mode,
            clean_bn_forward=self.clean_bn_forward,
            check_finite=self.check_finite,
            student_forwards=self.student_forwards,
            clip_start=self.clip_start,
        )

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

    def breakdown(
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
        inputs = self._inputs(x, y, x_adv, epoch, attack=False, aligned=self._aligned)
        may_read_clean = "student_clean" in self.loss.reads()
        if self.clean_bn_forward and not may_read_clean:
            self._bn_forward(x)
        with eval_mode(self.teacher):
            for view in self._forwards(epoch):
                if inputs.computed(f"student_{view}"):
                    self._bn_forward(inputs.point(view))
                else:
                    inputs.student(view)
            loss, parts = self.loss.evaluate(inputs)
        if self.clean_bn_forward and may_read_clean and not inputs.computed("student_clean"):
            self._bn_forward(x)
        return {"loss": loss, **{k: v.detach() for k, v in parts.items()}}

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor | None = None, epoch: int | None = None
    ) -> torch.Tensor:
        """The outer loss to minimise over the student's parameters."""
        return self.breakdown(x, y, x_adv, epoch)["loss"]

    def terms(
        self, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor | None = None, epoch: int | None = None
    ) -> dict[str, torch.Tensor]:
        """Deprecated name of :meth:`breakdown` (it read as the :mod:`softrank_ad.terms` module)."""
        _deprecation.warn("DistillationObjective.terms()", "DistillationObjective.breakdown()")
        return self.breakdown(x, y, x_adv, epoch)

    # -- helpers -------------------------------------------------------------------------------
    def _forwards(self, epoch: int | None) -> tuple[View, ...]:
        """The student's forwards to run before the loss in a call at ``epoch``; a method whose
        official code runs a forward only in some epochs overrides this."""
        return self.student_forwards

    def _bn_forward(self, x: torch.Tensor) -> None:
        with torch.no_grad():
            self.student(x)  # for its BN running statistics only

    @contextmanager
    def _attack_modes(self) -> Iterator[None]:
        """Teacher in eval mode; the student in eval mode, or in train mode with
        ``attack_mode="train"``; both modes restored after."""
        with eval_mode(self.teacher), modes_restored(self.student):
            self.student.train(self.attack_mode == "train")
            yield

    def _inputs(self, x, y, x_adv, epoch, *, attack: bool, aligned, persistent=None) -> Inputs:
        return Inputs(
            self.student,
            self.teacher,
            x,
            y,
            x_adv,
            epoch,
            attack=attack,
            check_finite=self.check_finite,
            kl_reduction=self.kl_reduction,
            aligned=aligned,
            persistent=persistent,
        )

    def _attack_value(self, x, y, x_adv, persistent: dict) -> torch.Tensor:
        inputs = self._inputs(x, y, x_adv, None, attack=True, aligned=self._attack_aligned, persistent=persistent)
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
                x_start=random_start(x, self.epsilon, self.attack.start, clip=self.clip_start),
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
        return (
            f"attack={self.attack.loss!r} from {self.attack.start!r}, loss={self.loss!r}, "
            f"epsilon={self.epsilon:.4g}, step_size={self.step_size:.4g}, steps={self.steps}, "
            f"kl_reduction={self.kl_reduction!r}, attack_mode={self.attack_mode!r}"
            + (f", student_forwards={self.student_forwards!r}" if self.student_forwards else "")
            + ("" if self.clip_start else ", clip_start=False")
        )
