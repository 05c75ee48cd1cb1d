"""DIST, soft Kendall, IGDM, logit standardisation and suggest_gamma: oracles, limits, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from softrank_ad import (
    DISTLoss,
    IGDMLoss,
    KendallMatchingLoss,
    dist_loss,
    igdm_loss,
    kendall_matching_loss,
    kl_divergence,
    soft_kendall,
    standardize,
    suggest_gamma,
)


# -- DIST ------------------------------------------------------------------------------------------
def _dist_by_scipy(z_s, z_t, tau, beta, gamma):
    y_s = torch.softmax(z_s.double() / tau, 1).numpy()
    y_t = torch.softmax(z_t.double() / tau, 1).numpy()
    inter = 1 - np.mean([scipy.stats.pearsonr(y_s[i], y_t[i])[0] for i in range(len(y_s))])
    intra = 1 - np.mean([scipy.stats.pearsonr(y_s[:, j], y_t[:, j])[0] for j in range(y_s.shape[1])])
    return tau**2 * (beta * inter + gamma * intra)


@pytest.mark.parametrize("tau,beta,gamma", [(1.0, 1.0, 1.0), (4.0, 2.0, 0.5), (2.0, 1.0, 0.0)])
def test_dist_matches_scipy_pearson_per_row_and_per_column(tau, beta, gamma):
    torch.manual_seed(0)
    z_s, z_t = torch.randn(12, 7, dtype=torch.float64), 3 * torch.randn(12, 7, dtype=torch.float64)
    got = dist_loss(z_s, z_t, temperature=tau, inter_weight=beta, intra_weight=gamma)
    assert got.item() == pytest.approx(_dist_by_scipy(z_s, z_t, tau, beta, gamma), rel=1e-6)
    assert DISTLoss(temperature=tau, inter_weight=beta, intra_weight=gamma)(z_s, z_t).item() == got.item()


def test_dist_is_zero_for_equal_logits_and_ignores_the_student_scale_of_probabilities():
    z = torch.randn(16, 10)
    assert dist_loss(z, z).abs().item() < 1e-5
    # Correlation ignores affine maps of the probabilities, not of the logits: check the zero only.
    assert dist_loss(z, -z).item() > 0.5


def test_dist_gradcheck_and_reductions():
    z_s = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    z_t = torch.randn(5, 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda s: dist_loss(s, z_t, temperature=2.0), (z_s,))
    per_row = dist_loss(z_s, z_t, intra_weight=0.0, reduction="none")
    assert per_row.shape == (5,)
    torch.testing.assert_close(per_row.sum(), dist_loss(z_s, z_t, intra_weight=0.0, reduction="sum"))
    with pytest.raises(ValueError, match="intra_weight=0"):
        dist_loss(z_s, z_t, reduction="none")


def test_dist_bad_input():
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match="B >= 2.*a batch of 1"):
        dist_loss(z[:1], z[:1])
    assert dist_loss(z[:1], z[:1] + 1, intra_weight=0.0).isfinite()
    with pytest.raises(ValueError, match="same shape"):
        dist_loss(z, z[:, :2])
    with pytest.raises(ValueError, match=r"\(B, C\)"):
        dist_loss(z[0], z[0])
    with pytest.raises(ValueError, match="teacher_logits contains 1 non-finite"):
        dist_loss(z, z.clone().index_put_((torch.tensor([0]), torch.tensor([0])), torch.tensor(float("nan"))))
    with pytest.raises(ValueError, match="inter_weight must be a finite number >= 0"):
        dist_loss(z, z, inter_weight=-1.0)
    with pytest.raises(ValueError, match="temperature must be finite and > 0"):
        DISTLoss(temperature=0.0)


def test_dist_half_precision_is_computed_in_float32():
    z_s, z_t = torch.randn(8, 10), torch.randn(8, 10)
    half = dist_loss(z_s.bfloat16(), z_t.bfloat16(), temperature=4.0)
    assert half.dtype == torch.float32
    assert half.item() == pytest.approx(dist_loss(z_s, z_t, temperature=4.0).item(), rel=0.05)


# -- soft Kendall ----------------------------------------------------------------------------------
distinct_rows = st.integers(2, 12).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(-1000, 1000), min_size=n, max_size=n, unique=True),
        st.lists(st.integers(-1000, 1000), min_size=n, max_size=n, unique=True),
    )
)


@settings(max_examples=60, deadline=None)
@given(distinct_rows)
def test_soft_kendall_tends_to_scipy_kendalltau_for_distinct_values(rows):
    a, b = (torch.tensor(r, dtype=torch.float64) / 10 for r in rows)  # gaps of at least 0.1
    got = soft_kendall(a, b, gamma=2000.0).item()
    assert got == pytest.approx(scipy.stats.kendalltau(a.numpy(), b.numpy()).statistic, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(distinct_rows, st.floats(0.01, 30.0))
def test_soft_kendall_bounds_symmetry_and_oddness(rows, gamma):
    a, b = (torch.tensor(r, dtype=torch.float64) / 10 for r in rows)
    tau = soft_kendall(a, b, gamma=gamma)
    assert -1 <= tau.item() <= 1
    torch.testing.assert_close(tau, soft_kendall(b, a, gamma=gamma))
    torch.testing.assert_close(soft_kendall(a, -b, gamma=gamma), -tau)
    torch.testing.assert_close(soft_kendall(a + 7.5, b, gamma=gamma), tau)
    perm = torch.randperm(len(a))
    torch.testing.assert_close(soft_kendall(a[perm], b[perm], gamma=gamma), tau)


def test_soft_kendall_ties_count_as_tau_a():
    a = torch.tensor([1.0, 1.0, 2.0, 3.0], dtype=torch.float64)
    b = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    # τ-a: (concordant − discordant) / (n(n−1)/2) = 5 / 6; scipy's default τ-b divides differently.
    signs = np.sign(a.numpy()[:, None] - a.numpy()[None]) * np.sign(b.numpy()[:, None] - b.numpy()[None])
    tau_a = signs[np.triu_indices(4, 1)].sum() / 6
    assert soft_kendall(a, b, gamma=1e4).item() == pytest.approx(tau_a) == pytest.approx(5 / 6)
    assert scipy.stats.kendalltau(a, b).statistic > tau_a


def test_soft_kendall_gradcheck_both_sides_and_dims():
    a = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda u, v: soft_kendall(u, v, gamma=1.5), (a, b))
    assert torch.autograd.gradcheck(lambda u, v: soft_kendall(u, v, gamma=0.7, dim=0), (a, b))
    torch.testing.assert_close(soft_kendall(a, b, dim=0), soft_kendall(a.T, b.T))


def test_soft_kendall_chunks_rows_and_saves_only_the_inputs(monkeypatch):
    import softrank_ad.kendall as kendall

    a, b = torch.randn(50, 20, requires_grad=True), torch.randn(50, 20)
    whole = soft_kendall(a, b)
    (g_whole,) = torch.autograd.grad(whole.sum(), a)
    monkeypatch.setattr(kendall, "_PAIRS_PER_CHUNK", 20 * 20 * 7)  # 7 rows per chunk
    chunked = soft_kendall(a, b)
    torch.testing.assert_close(chunked, whole)
    (g_chunked,) = torch.autograd.grad(chunked.sum(), a)
    torch.testing.assert_close(g_chunked, g_whole)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        soft_kendall(a, b)
    assert max(saved) <= a.numel()  # O(B·n), no (B, n, n) pair matrix


def test_kendall_matching_loss_and_module():
    s, t = torch.randn(8, 10, requires_grad=True), torch.randn(8, 10)
    loss = kendall_matching_loss(s, t, gamma=2.0)
    torch.testing.assert_close(loss, (1 - soft_kendall(s, t, gamma=2.0)).mean())
    assert KendallMatchingLoss(gamma=2.0)(s, t).item() == loss.item()
    loss.backward()
    assert s.grad.abs().sum() > 0
    assert kendall_matching_loss(t, t, gamma=100.0).item() < 0.05
    assert kendall_matching_loss(s, t, reduction="none").shape == (8,)


def test_kendall_bad_input():
    a = torch.randn(4, 3)
    with pytest.raises(ValueError, match="n >= 2 entries along dim=1"):
        soft_kendall(a[:, :1], a[:, :1])
    with pytest.raises(ValueError, match="a contains 1 non-finite"):
        soft_kendall(a.clone().fill_(float("inf")).index_fill_(1, torch.tensor([0, 1]), 0.0)[:1], a[:1])
    with pytest.raises(TypeError, match="b must have a floating dtype"):
        soft_kendall(a, a.long())
    with pytest.raises(ValueError, match="gamma must be finite and > 0"):
        kendall_matching_loss(a, a, gamma=-1.0)
    with pytest.raises(ValueError, match="reduction must be one of"):
        KendallMatchingLoss(reduction="avg")


# -- KL with standardised logits, IGDM ------------------------------------------------------------------
def test_standardize_and_kl_on_standardised_logits():
    z_s, z_t = torch.randn(6, 10), 5 * torch.randn(6, 10) + 3
    zs = standardize(z_t)
    torch.testing.assert_close(zs.mean(1), torch.zeros(6), atol=1e-6, rtol=0)
    torch.testing.assert_close(zs.std(1), torch.ones(6), atol=1e-5, rtol=0)
    expected = F.kl_div(
        F.log_softmax(standardize(z_s) / 2, 1), F.softmax(standardize(z_t) / 2, 1), reduction="batchmean"
    )
    torch.testing.assert_close(kl_divergence(z_s, z_t, temperature=2.0, standardize_logits=True), expected)
    # Invariant to each model's logit scale and shift.
    torch.testing.assert_close(
        kl_divergence(3 * z_s - 1, z_t, standardize_logits=True),
        kl_divergence(z_s, z_t, standardize_logits=True),
        rtol=1e-4,
        atol=1e-6,
    )


def test_kl_of_bfloat16_logits_is_computed_in_float32():
    torch.manual_seed(0)
    z_s, z_t = torch.randn(64, 10), torch.randn(64, 10)
    full = kl_divergence(z_s, z_t, temperature=30.0)
    half = kl_divergence(z_s.bfloat16(), z_t.bfloat16(), temperature=30.0)
    assert half.dtype == torch.float32 and half.item() >= 0
    assert 900 * abs(half.item() - full.item()) < 0.05  # τ² amplifies what rounding is left


def test_igdm_loss_is_the_kl_of_logit_differences():
    torch.manual_seed(0)
    s_p, s_m, t_p, t_m = (torch.randn(4, 6, dtype=torch.float64) for _ in range(4))
    s_p.requires_grad_()
    expected = F.kl_div(F.log_softmax(s_p - s_m, 1), F.softmax(t_p - t_m, 1), reduction="batchmean")
    torch.testing.assert_close(igdm_loss(s_p, s_m, t_p, t_m), expected)
    assert IGDMLoss()(s_p, s_m, t_p, t_m).item() == expected.item()
    assert torch.autograd.gradcheck(lambda u: igdm_loss(u, s_m, t_p, t_m), (s_p,))
    with pytest.raises(ValueError, match="student_adv and teacher_reflected must have the same shape"):
        igdm_loss(s_p, s_m, t_p, t_m[:, :3])
    with pytest.raises(ValueError, match="teacher_adv contains 24 non-finite"):
        igdm_loss(s_p, s_m, t_p * float("inf"), t_m)
    with pytest.raises(ValueError, match="reduction must be one of"):
        igdm_loss(s_p, s_m, t_p, t_m, reduction="avg")


def test_standardised_kl_gradcheck():
    z_s = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    z_t = torch.randn(3, 5, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda s: kl_divergence(s, z_t, temperature=2.0, standardize_logits=True), (z_s,))


# -- suggest_gamma ---------------------------------------------------------------------------------
def test_suggest_gamma_measures_and_rule():
    torch.manual_seed(0)
    logits = 2 * torch.randn(200, 10)
    report = suggest_gamma(logits)
    assert list(report.live_pairs) == sorted(report.live_pairs, reverse=True)  # fewer live pairs as γ grows
    assert report.rho_gap[0] > report.rho_gap[-1]  # soft ρ closer to hard ρ as γ grows
    qualified = [g for g, live in zip(report.gammas, report.live_pairs) if live >= 0.9]
    assert report.gamma == max(qualified)
    # The live share by brute force at the pick.
    d = (logits[:, :, None] - logits[:, None, :]).abs() * report.gamma
    off_diagonal = ~torch.eye(10, dtype=torch.bool)
    brute = (1 / torch.cosh(d / 2) ** 2 > 0.01)[:, off_diagonal].double().mean().item()
    assert report.live_pairs[report.gammas.index(report.gamma)] == pytest.approx(brute, abs=1e-9)
    assert "| **" in report.table()
    # Sharper logits (a larger scale) call for a smaller γ.
    assert suggest_gamma(10 * logits).gamma < report.gamma


def test_suggest_gamma_bad_input():
    with pytest.raises(ValueError, match=r"\(B, C\)"):
        suggest_gamma(torch.randn(10))
    with pytest.raises(ValueError, match="B >= 2"):
        suggest_gamma(torch.randn(1, 10))
    with pytest.raises(ValueError, match="min_live must lie in"):
        suggest_gamma(torch.randn(4, 10), min_live=2.0)
    with pytest.raises(ValueError, match="gamma must be finite"):
        suggest_gamma(torch.randn(4, 10), gammas=(1.0, -2.0))
    with pytest.raises(ValueError, match="logits contains 1 non-finite"):
        suggest_gamma(
            torch.randn(4, 10)
            .index_fill_(0, torch.tensor([0]), 0)
            .index_put_((torch.tensor([0]), torch.tensor([0])), torch.tensor(float("nan")))
        )
