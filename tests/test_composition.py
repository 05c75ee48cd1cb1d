"""Objectives composed from terms: the published methods' formulas bit for bit, new combinations
in one line, forwards shared between terms, and the objectives layer's review fixes."""

from __future__ import annotations

from typing import get_args

import pytest
import torch
import torch.nn.functional as F
from test_objectives import TinyCNN, _count_forwards, blobs, fresh_pair

from softrank_ad import (
    Attack,
    DistillationObjective,
    SlackMatchingLoss,
    attribution_alignment_loss,
    dcg_weights,
    dist_loss,
    igdm_loss,
    kendall_matching_loss,
    kl_divergence,
    make_objective,
    slack_matching_loss,
)
from softrank_ad.attacks import STARTS, Start
from softrank_ad.attribution import NORMALIZATIONS, Normalization
from softrank_ad.terms import DIST, IGDM, KL, CrossEntropy, KendallMatching, LogitLoss, SlackMatching


def _sm(a, b, **kw):
    return slack_matching_loss(a, b, check_finite=False, **kw)


# Each published method against its formula written out with the library's primitives, in the
# order the pre-composition classes evaluated it: torch.equal, not allclose.
FORMULAS = {
    "adaad": (
        {"adv_weight": 0.6},
        lambda s, t, x, xa, y: 0.6 * kl_divergence(s(xa), t(xa)) + (1 - 0.6) * kl_divergence(s(x), t(x)),
    ),
    "rslad": ({}, lambda s, t, x, xa, y: 5 / 6 * kl_divergence(s(xa), t(x)) + (1 - 5 / 6) * kl_divergence(s(x), t(x))),
    "ard": (
        {"ce_weight": 0.3, "temperature": 4.0},
        lambda s, t, x, xa, y: (
            (1 - 0.3) * 4.0 * 4.0 * kl_divergence(s(xa), t(x), temperature=4.0) + 0.3 * F.cross_entropy(s(x), y)
        ),
    ),
    "smaraad": (
        {"adv_weight": 0.8, "align_weight": 0.0, "kl_weight": 0.5, "gamma": 2.0},
        lambda s, t, x, xa, y: (
            0.8 * (_sm(s(xa), t(xa), gamma=2.0) + 0.5 * kl_divergence(s(xa), t(xa)))
            + (1 - 0.8) * (_sm(s(x), t(x), gamma=2.0) + 0.5 * kl_divergence(s(x), t(x)))
        ),
    ),
    "smaraad-samples": (
        {"rank_axis": "both", "align_weight": 0.0},
        lambda s, t, x, xa, y: _sm(s(xa), t(xa)) + _sm(s(xa), t(xa), dim=0),
    ),
}


@pytest.mark.parametrize("name", FORMULAS)
def test_published_methods_equal_their_formulas_bit_for_bit(name, fixed):
    s, t, x, x_adv, y = fixed
    hparams, formula = FORMULAS[name]
    objective = make_objective(name.split("-")[0], s, t, **hparams)
    with torch.no_grad():
        assert torch.equal(objective(x, y, x_adv=x_adv), formula(s, t, x, x_adv, y))


def test_smaraad_pp_equals_its_formula_bit_for_bit(fixed):
    s, t, x, x_adv, y = fixed
    objective = make_objective(
        "smaraad++", s, t, ce_weight=0.1, align_weight=0.0, weight_power=0.5, position_weights="dcg"
    )
    with torch.no_grad():
        z_sa, z_ta, z_s = s(x_adv), t(x_adv), s(x)
        w = F.softmax(z_ta, 1).gather(1, y[:, None]).squeeze(1).pow(0.5)
        to_t = _sm(z_sa, z_ta, reduction="none", position_weights=dcg_weights(z_ta))
        to_self = _sm(z_sa, z_s, reduction="none", position_weights=dcg_weights(z_s))
        expected = (1 - 0.1) * (w * to_t + (1 - w) * to_self).mean() + 0.1 * F.cross_entropy(z_s, y)
        assert torch.equal(objective(x, y, x_adv=x_adv), expected)


def test_smaraad_with_alignment_equals_its_formula_bit_for_bit():
    student, teacher = fresh_pair()
    x, y = blobs(8)
    x_adv = make_objective("smaraad", student, teacher, steps=1).perturb(x, y)
    loss = make_objective("smaraad", student, teacher, align_weight=2.5, gamma=3.0)(x, y, x_adv=x_adv)
    align, z_s, z_t = attribution_alignment_loss(student, teacher, x_adv, y)
    assert torch.equal(loss, _sm(z_s, z_t, gamma=3.0) + 2.5 * align)


def test_attack_losses_equal_their_formulas(fixed):
    s, t, x, x_adv, y = fixed
    expected = {
        "adaad": kl_divergence(s(x_adv), t(x_adv)),
        "rslad": kl_divergence(s(x_adv), t(x)),
        "ard": F.cross_entropy(s(x_adv), y),
    }
    for name, value in expected.items():
        assert torch.equal(make_objective(name, s, t).inner_loss(x_adv, x, y), value), name


def test_a_new_combination_is_one_line(fixed):
    s, t, x, x_adv, y = fixed
    objective = make_objective("adaad", s, t, add=0.5 * KendallMatching(gamma=2.0))
    terms = objective.breakdown(x, y, x_adv=x_adv)
    assert set(terms) == {"loss", "kl_adv", "kendall_adv"}
    expected = kl_divergence(s(x_adv), t(x_adv)) + 0.5 * kendall_matching_loss(s(x_adv), t(x_adv), gamma=2.0)
    assert torch.equal(terms["loss"], expected)
    assert torch.equal(objective.inner_loss(x_adv, x, y), kl_divergence(s(x_adv), t(x_adv)))  # AdaAD's attack kept

    replaced = make_objective("adaad", s, t, loss=DIST(temperature=4.0))
    assert torch.equal(replaced(x, y, x_adv=x_adv), dist_loss(s(x_adv), t(x_adv), temperature=4.0))

    mse = DistillationObjective(s, t, attack=Attack(KL(), start="normal"), loss=LogitLoss(F.mse_loss) + KL())
    assert set(mse.breakdown(x, y, x_adv=x_adv)) == {"loss", "mse_loss_adv", "kl_adv"}


def test_a_composed_loss_trains_and_the_teacher_stays_frozen():
    student, teacher = fresh_pair()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    objective = make_objective(
        "adaad",
        student,
        teacher,
        steps=2,
        add=0.5 * KendallMatching() + DIST() + SlackMatching(rank_axis="samples") + IGDM(),
    )
    optimizer = torch.optim.SGD(objective.parameters(), lr=0.1)
    x, y = blobs(16)
    for _ in range(2):
        optimizer.zero_grad()
        objective(x, y, epoch=0).backward()
        assert all(torch.isfinite(p.grad).all() for p in student.parameters() if p.grad is not None)
        optimizer.step()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())


def test_terms_share_forwards_and_alignment_supplies_the_logits():
    student, teacher = fresh_pair()
    x, y = blobs(8)
    objective = make_objective("smaraad", student, teacher, steps=1, add=DIST() + KendallMatching() + 0.1 * KL())
    x_adv = objective.perturb(x, y)
    s_calls, t_calls = _count_forwards(student, 8), _count_forwards(teacher, 8)
    terms = objective.breakdown(x, y, x_adv=x_adv)
    assert len(s_calls) == 1 and len(t_calls) == 1  # one Grad-CAM forward each feeds every term
    assert {"slack_matching_adv", "align_adv", "dist_adv", "kendall_adv", "kl_adv"} <= set(terms)


def test_igdm_term_costs_two_forwards_and_ramps():
    student, teacher = fresh_pair()
    x, y = blobs(8)
    x_adv = make_objective("adaad", student, teacher, steps=1).perturb(x, y)
    objective = make_objective("adaad", student, teacher, add=IGDM(ramp_epochs=4))
    s_calls, t_calls = _count_forwards(student, 8), _count_forwards(teacher, 8)
    terms = objective.breakdown(x, y, x_adv=x_adv, epoch=1)
    assert len(s_calls) == 2 and len(t_calls) == 2  # x' and x − δ
    with torch.no_grad():
        reflected = x - (x_adv - x)
        teacher.eval()
        raw = igdm_loss(student(x_adv), student(reflected), teacher(x_adv), teacher(reflected))
    torch.testing.assert_close(terms["igdm"], raw)
    torch.testing.assert_close(terms["loss"], terms["kl_adv"] + 0.5 * raw)  # (1 + 1) / 4 of the way
    late = objective.breakdown(x, y, x_adv=x_adv, epoch=10)
    torch.testing.assert_close(late["loss"], late["kl_adv"] + late["igdm"])


def test_ranking_over_samples():
    student, teacher = fresh_pair(classes=3)
    x, y = blobs(8)
    y = y % 3
    x_adv = make_objective("adaad", student, teacher, steps=1).perturb(x, y)
    objective = make_objective("smaraad", student, teacher, rank_axis="samples", align_weight=0.0)
    with torch.no_grad():
        z_s, z_t = student.eval()(x_adv), teacher.eval()(x_adv)
    student.eval()
    torch.testing.assert_close(objective(x, y, x_adv=x_adv), slack_matching_loss(z_s, z_t, dim=0))
    with pytest.raises(ValueError, match="ranking over samples needs a batch of at least 2"):
        objective(x[:1], y[:1], x_adv=x_adv[:1])
    with pytest.raises(ValueError, match="rank_axis must be one of"):
        make_objective("smaraad", student, teacher, rank_axis="rows")


def test_clean_bn_forward_acts_during_the_smaraad_pp_warm_up():
    student, teacher = fresh_pair()
    x, y = blobs(8)
    objective = make_objective("smaraad++", student, teacher, steps=1, clean_bn_forward=True, weights_from_epoch=5)
    x_adv = objective.perturb(x, y)
    seen = []
    student.register_forward_hook(lambda m, i, o: seen.append(torch.equal(i[0], x) and m.training))
    terms = objective.breakdown(x, y, x_adv=x_adv, epoch=0)  # warm-up: w = 1, the loss reads no S(x)
    assert "slack_matching_self" not in terms and seen.count(True) == 1
    seen.clear()
    objective.breakdown(x, y, x_adv=x_adv, epoch=9)  # the self term reads S(x): no extra forward
    assert seen.count(True) == 1
    plain = make_objective("smaraad++", student, teacher, steps=1, weights_from_epoch=5)
    seen.clear()
    plain.breakdown(x, y, x_adv=x_adv, epoch=0)
    assert seen.count(True) == 0


def test_check_finite_reaches_the_terms(fixed):
    s, t, x, x_adv, y = fixed
    with torch.no_grad():
        s.fc.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="student_logits contains 10 non-finite"):
        make_objective("smaraad", s, t, align_weight=0.0)(x, y, x_adv=x_adv)
    assert make_objective("smaraad", s, t, align_weight=0.0, check_finite=False)(x, y, x_adv=x_adv).isnan()


def test_renamed_arguments_say_what_replaced_them():
    student, teacher = fresh_pair()
    with pytest.raises(TypeError, match="alpha= was renamed: use adv_weight=.*ce_weight="):
        make_objective("adaad", student, teacher, alpha=0.5)
    with pytest.raises(TypeError, match="check_inputs= was renamed: use check_finite="):
        make_objective("ard", student, teacher, check_inputs=False)


def test_term_algebra_and_composition_errors():
    student, teacher = fresh_pair()
    with pytest.raises(ValueError, match="weight must be a finite number >= 0, got -0.5"):
        -0.5 * KL()
    with pytest.raises(TypeError, match="weight must be a number, got str"):
        KL() * "2"
    with pytest.raises(ValueError, match=r"share the name\(s\) \['kl_adv'\]; pass name="):
        KL() + KL(temperature=2.0)
    assert (KL() + KL(temperature=2.0, name="kl_soft")).name == "kl_adv + kl_soft"
    with pytest.raises(TypeError, match="add must be a Term"):
        make_objective("adaad", student, teacher, add=F.mse_loss)
    with pytest.raises(TypeError, match="loss must be a Term"):
        DistillationObjective(student, teacher, attack=Attack(KL()), loss="kl")
    with pytest.raises(ValueError, match="student must be one of"):
        KL(student="noisy")
    with pytest.raises(ValueError, match="start must be one of"):
        Attack(KL(), start="gaussian")
    with pytest.raises(ValueError, match="every term of the loss .* has weight 0"):
        make_objective("adaad", student, teacher, loss=0 * KL())(*blobs(4))
    with pytest.raises(ValueError, match="log under the same name"):
        make_objective("smaraad++", student, teacher, add=SlackMatching(), steps=1)(*blobs(4), epoch=100)


def test_weight_checks_follow_check_finite():
    a, b = torch.randn(4, 5), torch.randn(4, 5)
    with pytest.raises(ValueError, match="weights must be finite and >= 0"):
        slack_matching_loss(a, b, position_weights=-torch.ones(5))
    with pytest.raises(ValueError, match="positive entry in every row"):
        slack_matching_loss(a, b, position_weights=torch.zeros(5))
    assert slack_matching_loss(a, b, position_weights=-torch.ones(5), check_finite=False).isfinite()
    # The module takes the function's weights too.
    w = dcg_weights(b)
    assert SlackMatchingLoss()(a, b, position_weights=w).item() == slack_matching_loss(a, b, position_weights=w).item()


def test_choice_tuples_are_derived_from_their_literals():
    assert STARTS == get_args(Start)
    assert NORMALIZATIONS == get_args(Normalization)


def test_cross_entropy_term_reads_the_labels(fixed):
    s, t, x, x_adv, y = fixed
    objective = make_objective("adaad", s, t, loss=CrossEntropy(student="adv"))
    assert torch.equal(objective(x, y, x_adv=x_adv), F.cross_entropy(s(x_adv), y))


def test_objective_repr_shows_the_composition():
    student, teacher = fresh_pair()
    text = repr(make_objective("adaad", student, teacher, add=0.5 * KendallMatching()))
    assert "loss=kl_adv + 0.5 * kendall_adv," in text and "attack=kl_adv from 'normal'" in text


def test_bigger_models_still_validate_class_counts():
    with pytest.raises(ValueError, match="same shape"):
        make_objective("adaad", TinyCNN(classes=2), TinyCNN(classes=3), add=DIST())(*blobs(4))
