"""soft_spearman / SlackMatchingLoss against scipy and a transcription of the paper."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import spearmanr

from softrank_ad import SlackMatchingLoss, dcg_weights, slack_matching_loss, soft_spearman

finite = st.floats(-50, 50, allow_nan=False, allow_infinity=False, width=64)


def paired_rows(min_n=2, max_n=30):
    return st.integers(min_n, max_n).flatmap(
        lambda n: st.tuples(arrays(np.float64, (3, n), elements=finite), arrays(np.float64, (3, n), elements=finite))
    )


def paper_soft_rank(x: torch.Tensor, beta: float) -> torch.Tensor:
    """Alg. 1 as printed: rank_i = Σ sigmoid(β (x − x_i)), one element at a time."""
    return torch.stack([torch.sigmoid(beta * (x - xi)).sum() for xi in x])


def paper_slack_matching(x: torch.Tensor, y: torch.Tensor, beta: float) -> torch.Tensor:
    """Alg. 2 as printed: returns −ρ."""
    rx, ry = paper_soft_rank(x, beta), paper_soft_rank(y, beta)
    n = len(x)
    d = ((rx - ry) ** 2).sum()
    return -(1 - 6 * d / (n * (n**2 - 1)))


@given(pair=paired_rows(), gamma=st.floats(0.01, 100.0))
def test_rho_in_unit_interval_and_self_correlation(pair, gamma):
    a, b = (torch.from_numpy(p) for p in pair)
    rho = soft_spearman(a, b, gamma=gamma)
    assert rho.shape == (3,)
    assert torch.all(rho >= -1 - 1e-12) and torch.all(rho <= 1 + 1e-12)
    torch.testing.assert_close(soft_spearman(a, a, gamma=gamma), torch.ones(3, dtype=torch.float64))


def test_anticorrelation_tends_to_minus_one():
    # Distinct values at least 1 apart, so γ = 1000 saturates every sigmoid.
    a = torch.stack([torch.randperm(10) for _ in range(16)]).double()
    rhos = [soft_spearman(a, -a, gamma=g).max().item() for g in (0.5, 2.0, 5.0, 50.0)]
    assert rhos[0] > rhos[1] > rhos[2] >= rhos[3], rhos
    assert rhos[-1] < -1 + 1e-12


def test_converges_to_scipy_spearmanr_for_distinct_values():
    a, b = torch.randn(2, 64, 10, dtype=torch.float64)
    hard = torch.tensor([spearmanr(x, y).statistic for x, y in zip(a.numpy(), b.numpy())], dtype=torch.float64)
    errors = [(soft_spearman(a, b, gamma=g) - hard).abs().max().item() for g in (1.0, 10.0, 100.0, 1e4, 1e8)]
    assert all(e1 > e2 for e1, e2 in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-8


@given(pair=paired_rows(max_n=12), gamma=st.floats(0.05, 20.0))
def test_equals_paper_algorithm_2(pair, gamma):
    a, b = (torch.from_numpy(p) for p in pair)
    expected = torch.stack([-paper_slack_matching(x, y, gamma) for x, y in zip(a, b)])
    torch.testing.assert_close(soft_spearman(a, b, gamma=gamma), expected)


@pytest.mark.parametrize("shape,dim", [((5,), 0), ((3, 7), -1), ((4, 3, 6), 1), ((6, 4), 0)])
def test_gradcheck(shape, dim):
    a = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    b = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s, t: soft_spearman(s, t, gamma=0.7, dim=dim), (a, b))


def test_result_drops_dim():
    assert soft_spearman(torch.randn(4, 5, 6), torch.randn(4, 5, 6), dim=1).shape == (4, 6)


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match=r"a and b must have the same shape, got \(2, 3\) and \(2, 4\)"):
        soft_spearman(torch.randn(2, 3), torch.randn(2, 4))
    with pytest.raises(ValueError, match="n >= 2 entries along dim=1, got n=1"):
        soft_spearman(torch.randn(2, 1), torch.randn(2, 1))
    with pytest.raises(TypeError, match="b must have a floating dtype"):
        soft_spearman(torch.randn(3), torch.arange(3))
    b = torch.randn(3)
    b[0] = float("nan")
    with pytest.raises(ValueError, match="b contains 1 non-finite"):
        soft_spearman(torch.randn(3), b)
    with pytest.raises(ValueError, match="dim=2 is out of range for a"):
        soft_spearman(torch.randn(3, 3), torch.randn(3, 3), dim=2)


def test_loss_errors_use_loss_argument_names():
    with pytest.raises(ValueError, match="student_logits and teacher_logits must have the same shape"):
        slack_matching_loss(torch.randn(4, 10), torch.randn(4, 9))
    with pytest.raises(TypeError, match="teacher_logits must be a torch.Tensor"):
        slack_matching_loss(torch.randn(4, 10), None)
    with pytest.raises(ValueError, match="reduction must be one of"):
        SlackMatchingLoss(reduction="avg")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_loss_is_one_minus_rho_reduced(reduction):
    s, t = torch.randn(2, 8, 10, dtype=torch.float64)
    per_row = 1 - soft_spearman(s, t, gamma=2.0)
    expected = {"mean": per_row.mean(), "sum": per_row.sum(), "none": per_row}[reduction]
    torch.testing.assert_close(SlackMatchingLoss(gamma=2.0, reduction=reduction)(s, t), expected)


def test_loss_is_zero_at_a_perfect_rank_match_and_teacher_detached():
    t = torch.randn(4, 10, requires_grad=True)
    loss = SlackMatchingLoss()(t * 1.0, t)
    torch.testing.assert_close(loss, torch.tensor(0.0))
    s = torch.randn(4, 10, requires_grad=True)
    SlackMatchingLoss()(s, t).backward()
    assert t.grad is None and torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0
    SlackMatchingLoss(detach_teacher=False)(s, t).backward()
    assert t.grad is not None


def test_minimising_the_loss_matches_the_teacher_ranking():
    teacher = torch.randn(32, 10)
    student = torch.randn(32, 10, requires_grad=True)
    optimizer = torch.optim.SGD([student], lr=20.0)
    loss_fn = SlackMatchingLoss(gamma=1.0)
    first = loss_fn(student, teacher).item()
    for _ in range(300):
        optimizer.zero_grad()
        loss = loss_fn(student, teacher)
        loss.backward()
        optimizer.step()
    assert loss.item() < first / 100
    hard = np.mean([spearmanr(s, t).statistic for s, t in zip(student.detach().numpy(), teacher.numpy())])
    assert hard > 0.99


# -- weighted soft Spearman (library extension) ----------------------------------------------------
weight_rows = st.integers(2, 20).flatmap(
    lambda n: st.tuples(
        arrays(np.float64, (3, n), elements=finite),
        arrays(np.float64, (3, n), elements=finite),
        arrays(np.float64, (3, n), elements=st.floats(0, 1e3)).filter(lambda w: (w.max(1) > 0).all()),
    )
)


@given(pair=paired_rows(), gamma=st.floats(0.01, 100.0), level=st.floats(1e-3, 1e3))
def test_uniform_weights_give_the_unweighted_rho(pair, gamma, level):
    a, b = (torch.from_numpy(p) for p in pair)
    weighted = soft_spearman(a, b, gamma=gamma, position_weights=torch.full_like(a, level))
    torch.testing.assert_close(weighted, soft_spearman(a, b, gamma=gamma), rtol=0, atol=1e-12)


@given(rows=weight_rows, gamma=st.floats(0.01, 100.0))
def test_weighted_rho_in_unit_interval_and_never_below_unweighted(rows, gamma):
    a, b, w = (torch.from_numpy(p) for p in rows)
    for other in (b, -a):  # -a: the reversed ranking, where ρ is most negative
        rho_w = soft_spearman(a, other, gamma=gamma, position_weights=w)
        assert ((rho_w >= -1 - 1e-9) & (rho_w <= 1 + 1e-9)).all()
        # Weights are at most 1 after scaling: they only discount squared rank differences.
        assert (rho_w >= soft_spearman(a, other, gamma=gamma) - 1e-9).all()


def test_weighted_rho_gradcheck_float64():
    a = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    w = torch.rand(3, 6, dtype=torch.float64) + 0.1
    assert torch.autograd.gradcheck(lambda u, v: soft_spearman(u, v, gamma=1.5, position_weights=w), (a, b))


def test_dcg_weights_follow_the_reference_ranking():
    z = torch.tensor([[0.1, 3.0, -2.0, 0.5], [4.0, 3.0, 2.0, 1.0]])
    w = dcg_weights(z)
    expected_first = 1 / torch.log2(1 + torch.tensor([3.0, 1.0, 4.0, 2.0]))
    torch.testing.assert_close(w[0], expected_first)
    torch.testing.assert_close(w[1], 1 / torch.log2(1 + torch.arange(1.0, 5.0)))
    torch.testing.assert_close(dcg_weights(z.T, dim=0), w.T)
    # A swap of the teacher's top two classes now costs more than a swap of its bottom two.
    t = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0]])
    top, bottom = t[:, [1, 0, 2, 3, 4]], t[:, [0, 1, 2, 4, 3]]
    loss = lambda s: slack_matching_loss(s, t, gamma=10.0, position_weights=dcg_weights(t))  # noqa: E731
    assert loss(top) > 1.5 * loss(bottom)


def test_bad_weights_name_the_argument():
    a, b = torch.randn(2, 5), torch.randn(2, 5)
    with pytest.raises(ValueError, match="weights must be finite and >= 0"):
        soft_spearman(a, b, position_weights=-torch.ones(5))
    with pytest.raises(ValueError, match="weights must be finite"):
        soft_spearman(a, b, position_weights=torch.tensor([1.0, float("nan"), 1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"weights must broadcast to the inputs' shape \(2, 5\), got \(3,\)"):
        soft_spearman(a, b, position_weights=torch.ones(3))
    with pytest.raises(ValueError, match="positive entry in every row"):
        soft_spearman(a, b, position_weights=torch.tensor([[1.0] * 5, [0.0] * 5]))
    with pytest.raises(TypeError, match="weights must be a torch.Tensor"):
        soft_spearman(a, b, position_weights=[1.0] * 5)


def test_hyperparameters_are_keyword_only():
    from softrank_ad import grad_cam, soft_rank

    x = torch.randn(2, 5)
    for call in (
        lambda: soft_rank(x, 2.0),
        lambda: soft_spearman(x, x, 2.0),
        lambda: slack_matching_loss(x, x, 2.0),
        lambda: grad_cam(torch.nn.Linear(5, 2), x, "predicted", None),
    ):
        with pytest.raises(TypeError, match="positional argument"):
            call()


def test_hard_spearman_matches_scipy():
    from scipy.stats import spearmanr

    from softrank_ad.diagnostics import hard_spearman

    a, b = torch.randn(5, 10), torch.randn(5, 10)
    expected = [spearmanr(a[i], b[i]).statistic for i in range(5)]
    torch.testing.assert_close(hard_spearman(a, b), torch.tensor(expected, dtype=torch.float64))
