"""SmaraADObjective and the baselines: attack, freezing, formulas, errors, toy training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from softrank_ad import (
    OBJECTIVES,
    AdaADObjective,
    ARDObjective,
    RSLADObjective,
    SmaraADObjective,
    SmaraADPlusPlusObjective,
    kl_divergence,
    make_objective,
    pgd,
    soft_spearman,
)
from softrank_ad.attacks import random_start
from softrank_ad_examples import robustness

METHODS = sorted(OBJECTIVES)


class TinyCNN(nn.Module):
    """Two conv layers on 8×8 images: small, but with a spatial layer for Grad-CAM."""

    def __init__(self, width: int = 8, classes: int = 2):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1), nn.ReLU()
        )
        self.bn = nn.BatchNorm2d(width)
        self.fc = nn.Linear(width, classes)

    def forward(self, x):
        return self.fc(self.bn(self.features(x)).mean((2, 3)))


def blobs(n: int, seed: int = 0):
    """Class 0: a bright 3×3 patch in the left half; class 1: in the right half; noise elsewhere."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = 0.3 * torch.rand(n, 3, 8, 8, generator=g)
    rows = torch.randint(0, 6, (n,), generator=g)
    cols = torch.randint(0, 2, (n,), generator=g) + 4 * y
    for i in range(n):
        x[i, :, rows[i] : rows[i] + 3, cols[i] : cols[i] + 3] = 0.9
    return x, y


def robust_accuracy(model, x, y, epsilon=8 / 255):
    """PGD-10 accuracy, by the examples' one implementation (examples/robustness.py)."""
    return robustness.robust_accuracy(model.eval(), x, y, "pgd", epsilon=epsilon, step_size=epsilon / 4, steps=10)


@pytest.fixture(scope="module")
def robust_teacher():
    torch.manual_seed(0)
    teacher = TinyCNN(width=16)
    optimizer = torch.optim.Adam(teacher.parameters(), lr=1e-2)
    x, y = blobs(256)
    for _ in range(60):
        teacher.eval()
        x_adv = pgd(lambda u: F.cross_entropy(teacher(u), y), x, epsilon=8 / 255, step_size=2 / 255, steps=3)
        teacher.train()
        optimizer.zero_grad()
        F.cross_entropy(teacher(x_adv), y).backward()
        optimizer.step()
    teacher.eval()
    assert robust_accuracy(teacher, *blobs(256, seed=1)) > 0.9
    return teacher


def fresh_pair(classes: int = 2):
    torch.manual_seed(0)
    return TinyCNN(classes=classes), TinyCNN(width=16, classes=classes)


@pytest.mark.parametrize("method", METHODS)
def test_x_adv_in_epsilon_ball_and_unit_box(method):
    student, teacher = fresh_pair()
    x, y = blobs(16)
    x_adv = make_objective(method, student, teacher, epsilon=0.1, step_size=0.05, steps=3).perturb(x, y)
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert not x_adv.requires_grad


@pytest.mark.parametrize("method", METHODS)
def test_pgd_raises_the_inner_loss_over_the_random_start(method):
    student, teacher = fresh_pair()
    objective = make_objective(method, student, teacher, epsilon=0.1, step_size=0.02, steps=10)
    x, y = blobs(32)
    torch.manual_seed(5)
    start = random_start(x, objective.epsilon, objective.attack.start)
    torch.manual_seed(5)
    x_adv = objective.perturb(x, y)
    assert objective.inner_loss(x_adv, x, y) > objective.inner_loss(start, x, y)


@pytest.mark.parametrize("method", METHODS)
def test_teacher_frozen_and_student_gets_finite_gradients(method):
    student, teacher = fresh_pair()
    teacher.train()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    objective = make_objective(method, student, teacher, steps=2)
    assert {id(p) for p in objective.parameters()} == {id(p) for p in student.parameters()}
    optimizer = torch.optim.SGD(objective.parameters(), lr=0.1)
    modes_seen = []
    hook = teacher.register_forward_hook(lambda m, i, o: modes_seen.append(m.training))
    x, y = blobs(16)
    for _ in range(3):
        optimizer.zero_grad()
        objective(x, y, epoch=100).backward()
        grads = [p.grad for p in student.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        optimizer.step()
    hook.remove()
    assert modes_seen and not any(modes_seen), "the teacher must run in eval mode"
    assert teacher.training, "the teacher's own mode must be restored"
    assert all(p.grad is None for p in teacher.parameters())
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("method", METHODS)
def test_student_mode_restored_after_perturb_and_eval_during_it(method):
    student, teacher = fresh_pair()
    student.train()
    modes = []
    student.register_forward_hook(lambda m, i, o: modes.append(m.bn.training))
    make_objective(method, student, teacher, steps=2).perturb(*blobs(8))
    assert modes and not any(modes)
    assert student.training and student.bn.training


def _count_forwards(model, batch):
    counter = []
    model.register_forward_hook(lambda m, i, o: counter.append(1) if i[0].shape[0] == batch else None)
    return counter


@pytest.mark.parametrize("adv_weight,expected", [(1.0, 1), (0.5, 2)])
def test_clean_terms_skipped_when_adv_weight_is_one(adv_weight, expected):
    student, teacher = fresh_pair()
    objective = SmaraADObjective(student, teacher, adv_weight=adv_weight, steps=1)
    x, y = blobs(8)
    x_adv = objective.perturb(x, y)
    student_calls, teacher_calls = _count_forwards(student, 8), _count_forwards(teacher, 8)
    terms = objective.breakdown(x, y, x_adv=x_adv)
    assert len(student_calls) == expected and len(teacher_calls) == expected
    assert ("slack_matching_clean" in terms) == (adv_weight < 1)


def test_smaraad_pp_weights():
    student, teacher = fresh_pair()
    objective = make_objective("smaraad++", student, teacher, steps=1, weights_from_epoch=10, weight_power=0.5)
    x, y = blobs(16)
    x_adv = objective.perturb(x, y)
    early = objective.breakdown(x, y, x_adv=x_adv, epoch=3)["sample_weights"]
    torch.testing.assert_close(early, torch.ones(16))
    late = objective.breakdown(x, y, x_adv=x_adv, epoch=10)["sample_weights"]
    assert late.min() >= 0 and late.max() <= 1
    with torch.no_grad():
        p_true = F.softmax(teacher.eval()(x_adv), 1)[torch.arange(16), y]
    torch.testing.assert_close(late, p_true.sqrt())


def _manual_kl(z_s, z_t, tau=1.0):
    p_t = torch.softmax(z_t / tau, 1)
    return (p_t * (p_t.log() - torch.log_softmax(z_s / tau, 1))).sum(1).mean()


def test_ard_formula(fixed):
    s, t, x, x_adv, y = fixed
    loss = ARDObjective(s, t, ce_weight=0.3, temperature=4.0)(x, y, x_adv=x_adv)
    expected = 0.7 * 16 * _manual_kl(s(x_adv), t(x), 4.0) + 0.3 * F.cross_entropy(s(x), y)
    torch.testing.assert_close(loss, expected)


def test_rslad_formula(fixed):
    s, t, x, x_adv, y = fixed
    loss = RSLADObjective(s, t)(x, y, x_adv=x_adv)
    expected = 5 / 6 * _manual_kl(s(x_adv), t(x)) + 1 / 6 * _manual_kl(s(x), t(x))
    torch.testing.assert_close(loss, expected)


def test_adaad_formula(fixed):
    s, t, x, x_adv, y = fixed
    loss = AdaADObjective(s, t, adv_weight=0.6)(x, y, x_adv=x_adv)
    expected = 0.6 * _manual_kl(s(x_adv), t(x_adv)) + 0.4 * _manual_kl(s(x), t(x))
    torch.testing.assert_close(loss, expected)


def test_smaraad_formula_without_alignment(fixed):
    s, t, x, x_adv, y = fixed
    objective = SmaraADObjective(s, t, adv_weight=0.8, align_weight=0.0, kl_weight=0.5, gamma=2.0)
    sm = lambda a, b: (1 - soft_spearman(a, b, gamma=2.0)).mean()  # noqa: E731
    expected = 0.8 * (sm(s(x_adv), t(x_adv)) + 0.5 * _manual_kl(s(x_adv), t(x_adv)))
    expected = expected + 0.2 * (sm(s(x), t(x)) + 0.5 * _manual_kl(s(x), t(x)))
    torch.testing.assert_close(objective(x, y, x_adv=x_adv), expected)


def test_smaraad_pp_formula_without_alignment(fixed):
    s, t, x, x_adv, y = fixed
    objective = make_objective("smaraad++", s, t, ce_weight=0.1, align_weight=0.0, weight_power=0.1)
    w = torch.softmax(t(x_adv), 1)[torch.arange(10), y].detach() ** 0.1
    sm = lambda a, b: 1 - soft_spearman(a, b, gamma=1.0)  # noqa: E731
    per_sample = w * sm(s(x_adv), t(x_adv)) + (1 - w) * sm(s(x_adv), s(x))
    expected = 0.9 * per_sample.mean() + 0.1 * F.cross_entropy(s(x), y)
    torch.testing.assert_close(objective(x, y, x_adv=x_adv, epoch=None), expected)


def test_smaraad_alignment_term_is_added_with_its_weight():
    student, teacher = fresh_pair()
    x, y = blobs(8)
    x_adv = SmaraADObjective(student, teacher, steps=1).perturb(x, y)
    terms = SmaraADObjective(student, teacher, align_weight=2.5).breakdown(x, y, x_adv=x_adv)
    torch.testing.assert_close(terms["loss"], terms["slack_matching_adv"] + 2.5 * terms["align_adv"])
    assert terms["align_adv"] > 0


def test_bad_inputs():
    student, teacher = fresh_pair()
    objective = make_objective("smaraad", student, teacher, steps=1)
    x, y = blobs(4)
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\].*normalisation inside the model"):
        objective(x * 2 - 1, y)
    with pytest.raises(ValueError, match=r"y must have shape \(4,\)"):
        objective(x, y[:3])
    with pytest.raises(ValueError, match=r"y holds classes outside \[0, 2\)"):
        objective(x, y + 5)
    with pytest.raises(TypeError, match="y must be an integer tensor of class indices, got torch.float32"):
        objective(x, y.float())
    with pytest.raises(ValueError, match="same shape.*student \\(1, 2\\) and teacher \\(1, 3\\)"):
        make_objective("adaad", TinyCNN(classes=2), TinyCNN(classes=3))(x, y)
    for kwargs, name in [({"epsilon": -0.1}, "epsilon"), ({"step_size": -1.0}, "step_size"), ({"steps": -2}, "steps")]:
        with pytest.raises(ValueError, match=name):
            make_objective("smaraad", student, teacher, **kwargs)
    with pytest.raises(ValueError, match="unknown method 'trades'.*'adaad'"):
        make_objective("trades", student, teacher)
    with pytest.raises(ValueError, match="adv_weight must lie in"):
        SmaraADObjective(student, teacher, adv_weight=1.5)
    with pytest.raises(TypeError, match="unexpected keyword argument 'weighting'"):
        SmaraADObjective(student, teacher, weighting="entropy")


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_toy_training_lowers_objective_and_gives_robust_student(method, robust_teacher):
    torch.manual_seed(0)
    student = TinyCNN(width=8)
    objective = make_objective(method, student, robust_teacher, steps=3)
    optimizer = torch.optim.Adam(objective.parameters(), lr=1e-2)
    x, y = blobs(128, seed=2)
    x_eval, y_eval = blobs(32, seed=3)

    def eval_objective():
        torch.manual_seed(7)
        with torch.no_grad():
            return objective(x_eval, y_eval, epoch=100).item()

    first = eval_objective()
    for _ in range(40):
        optimizer.zero_grad()
        objective(x, y, epoch=100).backward()
        optimizer.step()
    assert eval_objective() < first
    assert robust_accuracy(student, *blobs(256, seed=4)) > 0.75


# -- options that reproduce the official baselines ---------------------------------------------------
def test_kl_reduction_mean_divides_by_the_class_count():
    student, teacher = fresh_pair(classes=5)
    x, y = torch.rand(4, 3, 8, 8), torch.randint(0, 5, (4,))
    x_adv = x.clone()
    batchmean = AdaADObjective(student, teacher)(x, y, x_adv=x_adv)
    mean = AdaADObjective(student, teacher, kl_reduction="mean")(x, y, x_adv=x_adv)
    torch.testing.assert_close(mean, batchmean / 5)
    s, t = torch.randn(4, 5), torch.randn(4, 5)
    torch.testing.assert_close(
        kl_divergence(s, t, reduction="mean"), F.kl_div(F.log_softmax(s, 1), F.softmax(t, 1), reduction="sum") / 20
    )


def test_adaad_attack_starts_near_x_like_the_official_code():
    student, teacher = fresh_pair()
    x, y = blobs(8)
    start = AdaADObjective(student, teacher, steps=0).perturb(x, y)
    assert 0 < (start - x).abs().max() < 0.01  # 0.001·N(0, 1), not uniform in ±8/255


class ModeRecorder(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model, self.calls = model, []

    def forward(self, x):
        self.calls.append((self.training, x.detach().clone()))
        return self.model(x)


@pytest.mark.parametrize("attack_mode", ["eval", "train"])
def test_attack_mode_sets_the_student_mode_during_the_attack(attack_mode):
    student, teacher = fresh_pair()
    recorder = ModeRecorder(student).train()
    x, y = blobs(8)
    ARDObjective(recorder, teacher, steps=2, attack_mode=attack_mode).perturb(x, y)
    attack_modes = {training for training, _ in recorder.calls[-2:]}
    assert attack_modes == {attack_mode == "train"} and recorder.training


@pytest.mark.parametrize("method", ["adaad", "ard", "smaraad"])
def test_clean_bn_forward_adds_one_train_mode_forward_on_x(method):
    student, teacher = fresh_pair()
    x, y = blobs(8)
    x_adv = x.flip(0)
    counts = {}
    for flag in (False, True):
        recorder = ModeRecorder(student).train()
        make_objective(method, recorder, teacher, clean_bn_forward=flag)(x, y, x_adv=x_adv)
        counts[flag] = [training for training, seen in recorder.calls if torch.equal(seen, x)]
    assert counts[False] == [] and counts[True] == [True]


def test_position_weights_dcg_discounts_slack_matching():
    student, teacher = fresh_pair(classes=5)
    x, y = torch.rand(6, 3, 8, 8), torch.randint(0, 5, (6,))
    plain = SmaraADObjective(student, teacher, align_weight=0.0).breakdown(x, y, x_adv=x)
    dcg = SmaraADObjective(student, teacher, align_weight=0.0, position_weights="dcg").breakdown(x, y, x_adv=x)
    assert 0 < dcg["slack_matching_adv"] < plain["slack_matching_adv"]


def test_new_options_are_validated():
    student, teacher = fresh_pair()
    with pytest.raises(ValueError, match="kl_reduction must be one of"):
        AdaADObjective(student, teacher, kl_reduction="none")
    with pytest.raises(ValueError, match="attack_mode must be one of"):
        ARDObjective(student, teacher, attack_mode="training")
    with pytest.raises(TypeError, match="clean_bn_forward must be a bool, got int"):
        AdaADObjective(student, teacher, clean_bn_forward=1)
    with pytest.raises(ValueError, match="position_weights must be one of"):
        SmaraADObjective(student, teacher, position_weights="ndcg")


# -- boundary checks found by the adversarial sweep -----------------------------------------------
def bn_state(model):
    return {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_pixels_are_rejected_before_any_forward(bad):
    student, teacher = fresh_pair()
    objective = make_objective("smaraad", student, teacher, steps=1)
    x, y = blobs(4)
    objective(x, y)  # a first call learns the class count
    before = bn_state(student)
    x[1, 0, 2, 2] = bad
    with pytest.raises(ValueError, match=r"x contains 1 non-finite value"):
        objective(x, y)
    with pytest.raises(ValueError, match=r"x_adv contains 1 non-finite value"):
        objective(blobs(4)[0], y, x_adv=x)
    with pytest.raises(ValueError, match=r"x_adv must lie in \[0, 1\]"):
        objective(blobs(4)[0], y, x_adv=x.nan_to_num(2.0))
    assert all(torch.equal(before[k], v) for k, v in bn_state(student).items())


def test_pgd_validates_its_inputs():
    model = TinyCNN()
    x, y = blobs(4)
    loss = lambda u: F.cross_entropy(model(u), y)  # noqa: E731
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\]"):
        pgd(loss, x * 255, epsilon=0.03, step_size=0.01, steps=1)
    with pytest.raises(ValueError, match="x contains 1 non-finite"):
        pgd(
            loss,
            torch.where(torch.arange(x.numel()).view_as(x) == 0, float("nan"), x),
            epsilon=0.03,
            step_size=0.01,
            steps=1,
        )
    with pytest.raises(TypeError, match="x must have a floating dtype"):
        pgd(loss, (x * 255).to(torch.uint8), epsilon=0.03, step_size=0.01, steps=1)
    with pytest.raises(ValueError, match=r"x_start must have the shape of x \(4, 3, 8, 8\), got \(2, 3, 8, 8\)"):
        pgd(loss, x, epsilon=0.03, step_size=0.01, steps=1, x_start=x[:2])
    far = pgd(loss, x, epsilon=0.03, step_size=0.01, steps=0, x_start=x + 0.5)  # projected into the ball
    assert (far - x).abs().max() <= 0.03 + 1e-6


def test_any_integer_label_dtype_works_and_bad_types_name_the_argument():
    student, teacher = fresh_pair()
    x, y = blobs(4)
    torch.manual_seed(1)
    expected = ARDObjective(student, teacher, steps=1)(x, y)
    torch.manual_seed(1)
    torch.testing.assert_close(ARDObjective(student, teacher, steps=1)(x, y.int()), expected)
    objective = make_objective("smaraad", student, teacher, steps=1)
    before = bn_state(student)
    with pytest.raises(TypeError, match="epoch must be an int, got str '5'"):
        objective.train()(x, y, epoch="5")
    assert all(torch.equal(before[k], v) for k, v in bn_state(student).items())
    with pytest.raises(TypeError, match="temperature must be a number, got str '30'"):
        ARDObjective(student, teacher, temperature="30")
    with pytest.raises(TypeError, match="weights_from_epoch must be an int, got str '60'"):
        make_objective("smaraad++", student, teacher, weights_from_epoch="60")


@pytest.mark.parametrize(
    "method,bad",
    [
        ("smaraad", {"gamma": -1.0}),
        ("ard", {"temperature": 0.0}),
        ("adaad", {"kl_reduction": "none"}),
        ("rslad", {"adv_weight": 2.0}),
        ("smaraad", {"alignment": "mine"}),
        ("smaraad", {"alignment": 1}),
    ],
)
def test_a_constructor_that_raises_leaves_the_models_untouched(method, bad):
    student, teacher = fresh_pair()
    shared = nn.Linear(2, 2)
    teacher.extra, student.extra = shared, shared
    with pytest.raises((ValueError, TypeError)):
        make_objective(method, student, teacher, **bad)
    assert all(p.requires_grad for p in teacher.parameters()) and shared.weight.requires_grad


class CallCounter(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model, self.calls = model, 0

    def forward(self, x):
        self.calls += 1
        return self.model(x)


@pytest.mark.parametrize("method", METHODS)
def test_no_extra_forward_per_step_after_the_first_call(method):
    student, teacher = fresh_pair()
    counted = CallCounter(student)
    objective = make_objective(method, counted, teacher, steps=2)
    x, y = blobs(4)
    objective(x, y, epoch=100)
    first = counted.calls
    objective(x, y, epoch=100)
    second = counted.calls - first
    assert second == first - 1  # the one-sample class check runs on the first call only
    counted.calls = 0
    make_objective(method, counted, teacher, steps=2, check_finite=False)(x, y, epoch=100)
    assert counted.calls == first  # check_finite=False still compares class counts once


def test_alignment_loss_never_updates_a_train_mode_teacher():
    from softrank_ad import AttributionAlignmentLoss

    student, teacher = fresh_pair()
    teacher.train()
    before = bn_state(teacher)
    AttributionAlignmentLoss()(student, teacher, *blobs(4))
    assert teacher.training and all(torch.equal(before[k], v) for k, v in bn_state(teacher).items())


# -- one class per method; devices -----------------------------------------------------------------
def test_smaraad_plus_plus_is_its_own_class_taking_only_its_own_parameters():
    student, teacher = fresh_pair()
    objective = make_objective("smaraad++", student, teacher, weights_from_epoch=3)
    assert type(objective) is SmaraADPlusPlusObjective and objective.hparams["weights_from_epoch"] == 3
    with pytest.raises(TypeError, match="unexpected keyword argument 'kl_weight'"):
        make_objective("smaraad++", student, teacher, kl_weight=1.0)
    for name in ("weight_power", "weights_from_epoch"):
        with pytest.raises(TypeError, match=f"unexpected keyword argument '{name}'"):
            make_objective("smaraad", student, teacher, **{name: 1})
    assert all(p.requires_grad for p in student.parameters())


def test_moving_the_objective_moves_the_teacher_and_keeps_it_out_of_the_state():
    student, teacher = fresh_pair()
    objective = make_objective("smaraad", student, teacher, steps=1)
    keys = set(objective.state_dict())
    assert objective.double() is objective
    assert all(p.dtype == torch.float64 for p in (*student.parameters(), *teacher.parameters()))
    assert set(objective.state_dict()) == keys and not any(k.startswith("teacher") for k in keys)
    assert {id(p) for p in objective.parameters()} == {id(p) for p in student.parameters()}
    x, y = blobs(4)
    assert objective(x.double(), y).dtype == torch.float64  # Grad-CAM and KL run in the new dtype
    objective.to("meta")  # stands in for .cuda(): every tensor of both models moves
    assert all(p.device.type == "meta" for p in (*student.parameters(), *teacher.parameters()))
    assert all(b.device.type == "meta" for b in teacher.buffers())
