"""The 0.2 API as a whole: one convention for every public loss (checked by introspection and by
calls, so a new loss cannot drift), the deprecated 0.1 names, the layering, the version."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import softrank_ad
from softrank_ad import terms
from softrank_ad.attribution import AttributionAlignmentLoss, attribution_alignment_loss

PACKAGE = Path(softrank_ad.__file__).resolve().parent
REPO = PACKAGE.parent


# -- the convention ------------------------------------------------------------------------------
def _logits(shape=(6, 5), requires_grad=False):
    return torch.randn(*shape, requires_grad=requires_grad)


#: Every public distillation loss: (function, Module, tensors it takes, which of them are the
#: teacher's, the reductions it accepts, extra options a "none" call needs).
PAIR_LOSSES = {
    "slack_matching": (
        softrank_ad.slack_matching_loss,
        softrank_ad.SlackMatchingLoss,
        2,
        (1,),
        ("mean", "sum", "none"),
        {},
    ),
    "kendall_matching": (
        softrank_ad.kendall_matching_loss,
        softrank_ad.KendallMatchingLoss,
        2,
        (1,),
        ("mean", "sum", "none"),
        {},
    ),
    "kl": (softrank_ad.kl_divergence, softrank_ad.KLDivergenceLoss, 2, (1,), ("batchmean", "mean", "sum", "none"), {}),
    "dist": (softrank_ad.dist_loss, softrank_ad.DISTLoss, 2, (1,), ("mean", "sum", "none"), {"intra_weight": 0.0}),
    "igdm": (softrank_ad.igdm_loss, softrank_ad.IGDMLoss, 4, (2, 3), ("batchmean", "mean", "sum", "none"), {}),
}

#: Every public function, with the number of leading arguments that are data (tensors, models,
#: a method's name): everything after them must be keyword-only.
FUNCTIONS = {
    "soft_rank": 1,
    "soft_spearman": 2,
    "soft_kendall": 2,
    "slack_matching_loss": 2,
    "kendall_matching_loss": 2,
    "kl_divergence": 2,
    "igdm_loss": 4,
    "dist_loss": 2,
    "standardize": 1,
    "dcg_weights": 1,
    "grad_cam": 3,
    "attribution_alignment_loss": 4,
    "cw_margin_loss": 2,
    "pgd": 2,
    "suggest_gamma": 2,
    "make_objective": 3,
    "official_options": 1,
}

#: Function → Module pairs; a Module may take a tensor option per call instead of at construction.
MODULE_OF = {
    "soft_rank": ("SoftRank", set()),
    "soft_spearman": ("SoftSpearman", {"position_weights"}),
    "soft_kendall": ("SoftKendall", set()),
    "slack_matching_loss": ("SlackMatchingLoss", set()),
    "kendall_matching_loss": ("KendallMatchingLoss", set()),
    "kl_divergence": ("KLDivergenceLoss", set()),
    "igdm_loss": ("IGDMLoss", set()),
    "dist_loss": ("DISTLoss", set()),
    "grad_cam": ("GradCAM", {"y"}),
    "attribution_alignment_loss": ("AttributionAlignmentLoss", set()),
    "cw_margin_loss": ("CWMarginLoss", set()),
}


def _public(kind):
    return {name: getattr(softrank_ad, name) for name in softrank_ad.__all__ if kind(getattr(softrank_ad, name))}


def test_every_public_function_is_listed_here():
    functions = _public(lambda o: inspect.isfunction(o))
    assert set(functions) == set(FUNCTIONS), "a new public function needs a row in FUNCTIONS (and a Module)"


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_hyperparameters_are_keyword_only(name):
    params = list(inspect.signature(getattr(softrank_ad, name)).parameters.values())
    leading = FUNCTIONS[name]
    assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params[:leading]), name
    rest = [p for p in params[leading:] if p.kind is not p.VAR_KEYWORD]
    assert all(p.kind is p.KEYWORD_ONLY for p in rest), (
        f"{name}: {[p.name for p in rest if p.kind is not p.KEYWORD_ONLY]}"
    )


def test_every_module_takes_keyword_only_arguments():
    modules = _public(lambda o: inspect.isclass(o) and issubclass(o, nn.Module))
    for name, cls in modules.items():
        params = list(inspect.signature(cls).parameters.values())
        positional = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
        data = ["student", "teacher"] if issubclass(cls, softrank_ad.DistillationObjective) else []
        assert positional == data, f"{name} takes {positional} by position"
        assert not any(p.kind is p.VAR_KEYWORD for p in params), f"{name} has a **kwargs catch-all"


@pytest.mark.parametrize("function", sorted(MODULE_OF))
def test_function_and_module_take_the_same_options(function):
    module_name, per_call = MODULE_OF[function]
    fn, cls = getattr(softrank_ad, function), getattr(softrank_ad, module_name)
    fn_options = {p.name for p in inspect.signature(fn).parameters.values() if p.kind is p.KEYWORD_ONLY}
    module_options = set(inspect.signature(cls).parameters)
    assert fn_options - per_call == module_options - per_call, (fn_options ^ module_options) - per_call
    forward = set(inspect.signature(cls.forward).parameters)
    assert per_call <= forward


@pytest.mark.parametrize("name", sorted(PAIR_LOSSES))
def test_every_loss_has_check_finite_and_detach_teacher(name):
    fn, cls, *_ = PAIR_LOSSES[name]
    for options in (inspect.signature(fn).parameters, inspect.signature(cls).parameters):
        assert options["detach_teacher"].default is True and options["check_finite"].default is True
        assert "reduction" in options


def _inputs(count, teacher, requires_grad_teacher=False):
    tensors = [_logits(requires_grad=i not in teacher or requires_grad_teacher) for i in range(count)]
    return tensors


@pytest.mark.parametrize("form", ["function", "module"])
@pytest.mark.parametrize("name", sorted(PAIR_LOSSES))
def test_reductions_shapes_and_the_teacher_by_call(name, form):
    fn, cls, count, teacher, reductions, none_options = PAIR_LOSSES[name]

    def call(tensors, **options):
        return fn(*tensors, **options) if form == "function" else cls(**options)(*tensors)

    for reduction in reductions:
        options = {"reduction": reduction, **(none_options if reduction == "none" else {})}
        value = call(_inputs(count, teacher), **options)
        assert value.shape == ((6,) if reduction == "none" else ()), (reduction, value.shape)
        assert torch.isfinite(value).all()
    with pytest.raises(ValueError, match="reduction must be one of"):
        call(_inputs(count, teacher), reduction="avg")
    # A mismatch of shapes is named at the boundary.
    tensors = _inputs(count, teacher)
    tensors[teacher[0]] = _logits((6, 4))
    with pytest.raises(ValueError, match="same shape"):
        call(tensors)
    # No gradient reaches the teacher's logits by default; the student's gets one.
    tensors = _inputs(count, teacher, requires_grad_teacher=True)
    call(tensors).backward()
    assert all(tensors[i].grad is None for i in teacher)
    assert tensors[0].grad is not None and tensors[0].grad.abs().sum() > 0
    # detach_teacher=False lets it through.
    tensors = _inputs(count, teacher, requires_grad_teacher=True)
    call(tensors, detach_teacher=False).backward()
    assert all(tensors[i].grad is not None for i in teacher)
    # check_finite names the culprit; False skips the check.
    tensors = _inputs(count, teacher)
    tensors[0] = tensors[0].detach().clone()
    tensors[0][0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        call(tensors)
    call(tensors, check_finite=False)


def test_alignment_loss_follows_the_convention_too():
    torch.manual_seed(0)
    student, teacher = (
        nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
        for _ in range(2)
    )
    x, y = torch.rand(5, 3, 6, 6, requires_grad=True), torch.tensor([0, 1, 2, 0, 1])
    for reduction, shape in (("mean", ()), ("sum", ()), ("none", (5,))):
        assert attribution_alignment_loss(student, teacher, x, y, reduction=reduction).loss.shape == shape
    result = AttributionAlignmentLoss()(student, teacher, x, y)
    assert not result.teacher_logits.requires_grad  # detached by default
    result.loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    kept = attribution_alignment_loss(student, teacher, x, y, detach_teacher=False)
    assert kept.teacher_logits.requires_grad
    bad = x.detach().clone()
    bad[0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="x contains 1 non-finite"):
        attribution_alignment_loss(student, teacher, bad, y)


def test_every_term_takes_keyword_only_arguments():
    leaves = [
        cls
        for cls in vars(terms).values()
        if inspect.isclass(cls)
        and issubclass(cls, terms.Term)
        and cls not in (terms.Term, terms.Sum)
        and not cls.__name__.startswith("_")
    ]
    assert len(leaves) >= 9
    for cls in leaves:
        params = list(inspect.signature(cls).parameters.values())
        data = ["fn"] if cls is terms.LogitLoss else []
        assert [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD] == data, cls.__name__


# -- deprecated names ------------------------------------------------------------------------------
def _warns(new):
    return pytest.warns(DeprecationWarning, match=re.escape(new))


def test_old_alignment_tuple_name_warns_and_is_the_result_type():
    with _warns("softrank_ad.AlignmentResult"):
        assert softrank_ad.Alignment is softrank_ad.AlignmentResult
    from softrank_ad import attribution

    with _warns("softrank_ad.AlignmentResult"):
        assert attribution.Alignment is softrank_ad.AlignmentResult
    with pytest.raises(AttributeError):
        softrank_ad.Alignmnet  # noqa: B018


@pytest.mark.parametrize(
    ("module", "new"),
    [("softrank_ad.dist", "softrank_ad.relational"), ("softrank_ad.objectives", "softrank_ad.engine")],
)
def test_old_modules_warn_and_still_export_their_names(module, new):
    sys.modules.pop(module, None)
    with _warns(new):
        old = importlib.import_module(module)
    if module.endswith("dist"):
        assert old.dist_loss is softrank_ad.dist_loss and old.DISTLoss is softrank_ad.DISTLoss
    else:
        assert old.make_objective is softrank_ad.make_objective and old.OBJECTIVES is softrank_ad.OBJECTIVES
        assert old.SmaraADObjective is softrank_ad.SmaraADObjective and old.Attack is softrank_ad.Attack


def test_objective_terms_method_is_breakdown(fixed):
    student, teacher, x, x_adv, y = fixed
    objective = softrank_ad.make_objective("adaad", student, teacher, steps=1)
    with _warns("breakdown()"):
        old = objective.terms(x, y, x_adv=x_adv)
    new = objective.breakdown(x, y, x_adv=x_adv)
    assert old.keys() == new.keys() and torch.equal(old["loss"], new["loss"])


def test_slack_matching_axis_is_rank_axis():
    with _warns("rank_axis="):
        term = terms.SlackMatching(axis="samples")
    assert term.rank_axis == "samples" and term.name == "slack_matching_samples_adv"
    with _warns("SlackMatching.rank_axis"):
        assert term.axis == "samples"
    with pytest.raises(TypeError, match="pass rank_axis= only"):
        terms.SlackMatching(axis="samples", rank_axis="classes")


def test_weights_is_position_weights():
    a, b = torch.randn(4, 6), torch.randn(4, 6)
    w = softrank_ad.dcg_weights(b)
    expected = softrank_ad.slack_matching_loss(a, b, position_weights=w)
    with _warns("position_weights="):
        assert torch.equal(softrank_ad.slack_matching_loss(a, b, weights=w), expected)
    with _warns("position_weights="):
        assert torch.equal(
            softrank_ad.soft_spearman(a, b, weights=w), softrank_ad.soft_spearman(a, b, position_weights=w)
        )
    with _warns("position_weights="):
        assert torch.equal(softrank_ad.SlackMatchingLoss()(a, b, weights=w), expected)
    # The string form computes the same weights from the teacher side.
    assert torch.equal(softrank_ad.slack_matching_loss(a, b, position_weights="dcg"), expected)
    assert torch.equal(softrank_ad.SlackMatchingLoss(position_weights="dcg")(a, b), expected)


def test_teacher_differentiable_is_the_inverse_of_detach_teacher():
    torch.manual_seed(0)
    student, teacher = (
        nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
        for _ in range(2)
    )
    x, y = torch.rand(2, 3, 6, 6), torch.tensor([0, 1])
    with _warns("detach_teacher="):
        old = attribution_alignment_loss(student, teacher, x, y, teacher_differentiable=True)
    assert old.teacher_logits.requires_grad
    with _warns("detach_teacher="):
        module = AttributionAlignmentLoss(teacher_differentiable=True)
    assert module.detach_teacher is False
    with pytest.raises(TypeError, match="pass detach_teacher= only"):
        AttributionAlignmentLoss(teacher_differentiable=True, detach_teacher=False)


def test_positional_hyperparameters_warn_and_mean_what_they_meant():
    s, t = torch.randn(4, 6), torch.randn(4, 6)
    cases = [
        (lambda: softrank_ad.SoftRank(2.0, 0, True), lambda: softrank_ad.SoftRank(gamma=2.0, dim=0, descending=True)),
        (
            lambda: softrank_ad.SlackMatchingLoss(2.0, "sum"),
            lambda: softrank_ad.SlackMatchingLoss(gamma=2.0, reduction="sum"),
        ),
        (lambda: softrank_ad.KendallMatchingLoss(2.0), lambda: softrank_ad.KendallMatchingLoss(gamma=2.0)),
        (lambda: softrank_ad.IGDMLoss("mean"), lambda: softrank_ad.IGDMLoss(reduction="mean")),
        (
            lambda: AttributionAlignmentLoss(None, None, "predicted"),
            lambda: AttributionAlignmentLoss(target="predicted"),
        ),
        (lambda: terms.Alignment("clean"), lambda: terms.Alignment(view="clean")),
    ]
    for old, new in cases:
        with _warns("keyword arguments"):
            built = old()
        assert repr(built) == repr(new())
    with _warns("temperature="):
        value = softrank_ad.kl_divergence(s, t, 2.0, "mean")
    assert torch.equal(value, softrank_ad.kl_divergence(s, t, temperature=2.0, reduction="mean"))
    with _warns("dim="):
        assert torch.equal(softrank_ad.dcg_weights(t, 0), softrank_ad.dcg_weights(t, dim=0))
    with _warns("kappa="):
        assert torch.equal(
            softrank_ad.cw_margin_loss(s, torch.tensor([0, 1, 2, 3]), 0.5),
            softrank_ad.cw_margin_loss(s, torch.tensor([0, 1, 2, 3]), kappa=0.5),
        )
    with pytest.raises(TypeError, match="at most"):
        softrank_ad.SoftRank(1.0, -1, False, "std")


def test_separate_cam_settings_are_folded_into_alignment(fixed):
    student, teacher, *_ = fixed
    with _warns("alignment=AttributionAlignmentLoss"):
        old = softrank_ad.SmaraADObjective(student, teacher, target="predicted")
    assert old.hparams["alignment"].target == "predicted"
    with _warns("alignment=AttributionAlignmentLoss"):
        via_registry = softrank_ad.make_objective("smaraad", student, teacher, target="predicted")
    assert repr(via_registry) == repr(old)


# -- objectives describe what they compute -----------------------------------------------------------
def test_a_replaced_loss_gives_a_plain_engine_with_the_methods_attack(fixed):
    student, teacher, x, x_adv, y = fixed
    base = softrank_ad.make_objective("adaad", student, teacher, steps=1, kl_reduction="mean")
    replaced = softrank_ad.make_objective("adaad", student, teacher, loss=terms.DIST(), steps=1, kl_reduction="mean")
    assert type(replaced) is softrank_ad.DistillationObjective and not hasattr(replaced, "hparams")
    assert repr(replaced.attack) == repr(base.attack) and replaced.options == base.options
    assert repr(replaced.loss) == "dist_adv"
    assert type(base) is softrank_ad.AdaADObjective and dict(base.hparams) == {"adv_weight": 1.0}
    with pytest.raises(TypeError):
        base.hparams["adv_weight"] = 0.5  # one place, read-only
    with pytest.raises(AttributeError):
        base.loss = terms.KL()  # a composition is fixed once built


def test_a_misspelt_hyperparameter_is_named(fixed):
    student, teacher, *_ = fixed
    with pytest.raises(TypeError, match="unexpected keyword argument 'gama'"):
        softrank_ad.make_objective("smaraad", student, teacher, gama=2.0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'gama'"):
        softrank_ad.SmaraADObjective(student, teacher, gama=2.0)


# -- layering ---------------------------------------------------------------------------------------
def _documented_layers() -> list[str]:
    text = (REPO / "docs" / "architecture.md").read_text()
    block = text.split("```\n", 2)[1]
    return [line.split()[0] for line in block.splitlines() if line and not line[0].isspace()]


def _package_modules() -> set[str]:
    return {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"} | {"_kernels"}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("softrank_ad"):
            parts = node.module.split(".")
            found |= {alias.name for alias in node.names} if len(parts) == 1 else {parts[1]}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("softrank_ad.")}
    return found


def test_the_documented_layers_are_the_package_and_only_point_down():
    layers = _documented_layers()
    assert set(layers) == _package_modules(), set(layers) ^ _package_modules()
    assert len(layers) == len(set(layers))
    for index, module in enumerate(layers):
        paths = list((PACKAGE / "_kernels").glob("*.py")) if module == "_kernels" else [PACKAGE / f"{module}.py"]
        imported = set().union(*(_imports(p) for p in paths)) & set(layers)
        upward = imported & set(layers[index:]) - {module}
        assert not upward, f"{module} imports {sorted(upward)}, at or below it in docs/architecture.md"


# -- the version -------------------------------------------------------------------------------------
def test_the_version_is_written_once():
    from importlib.metadata import version

    assert softrank_ad.__version__ == version("softrank-ad")
    for path in ["pyproject.toml", "softrank_ad/__init__.py", "tests/test_wheel.py"]:
        assert softrank_ad.__version__ not in (REPO / path).read_text(), path
    assert f"## {softrank_ad.__version__}" in (REPO / "CHANGELOG.md").read_text()


def test_importing_the_package_warns_nothing():
    code = "import warnings; warnings.simplefilter('error'); import softrank_ad, softrank_ad.terms"
    import subprocess

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from softrank_ad import make_objective  # noqa: F401


def test_every_public_name_has_a_docstring():
    """A class body that starts with a computed string (a docstring built by concatenation) has no
    docstring at all, silently: the methods' docs and examples were missing that way in 0.2."""
    undocumented = [
        name
        for name in softrank_ad.__all__
        if (inspect.isclass(getattr(softrank_ad, name)) or inspect.isfunction(getattr(softrank_ad, name)))
        and not (getattr(softrank_ad, name).__doc__ or "").strip()
    ]
    assert undocumented == []
