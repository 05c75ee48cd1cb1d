"""The far-field expansion of long float32 rows (native_farfield.h): its error bound, its accuracy
against the exact float32 sweep, and the per-row choice between them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from softrank_ad._kernels import native

pytestmark = pytest.mark.skipif(not native.available(), reason="needs a C compiler")

# Per pair, the dropped Taylor terms are at most this (FARFIELD_TOL in native_farfield.h).
PAIR_BOUND = 1e-9
HALF_ULP = 2.0**-24  # float32's rounding of the returned value, relative


def _exact(x: torch.Tensor, grad: torch.Tensor, gamma: float):
    """The dense formula in float64 at the γ the float32 kernel computes with (γ in float32)."""
    gamma = float(np.float32(gamma))
    x64, g64 = x.double(), grad.double()
    return native.forward(x64, gamma), native.backward(x64, g64, gamma)


def _rows(shape: str, n: int, scale: float, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    if shape == "normal":
        v = rng.normal(size=n)
    elif shape == "uniform":
        v = rng.uniform(-1, 1, size=n)
    elif shape == "clusters":  # two tight clumps: most pairs in one bin or far apart
        v = np.where(rng.random(n) < 0.5, -1.0, 1.0) + 0.01 * rng.normal(size=n)
    else:  # heavy tails: a few entries far out, many empty bins between
        v = rng.standard_t(2, size=n)
    return torch.from_numpy(scale * v).float().unsqueeze(0)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 3000),
    gamma=st.floats(0.02, 20.0),
    scale=st.floats(0.05, 5.0),
    shape=st.sampled_from(["normal", "uniform", "clusters", "heavy"]),
    seed=st.integers(0, 2**16),
)
def test_expansion_error_stays_within_its_bound(n, gamma, scale, shape, seed):
    x = _rows(shape, n, scale, seed)
    if gamma * float(x.max() - x.min()) > 2000:
        return  # heavy tails at large γ: 4,000+ bins, and the exact sweep would be chosen anyway
    grad = torch.randn(1, n, generator=torch.Generator().manual_seed(seed))
    ranks, grads = _exact(x, grad, gamma)
    with native.farfield("always"):
        far_ranks, far_grads = native.forward(x, gamma), native.backward(x, grad, gamma)
    # Ranks: n pairs of at most PAIR_BOUND each, then float32 rounding of the result.
    rank_bound = n * PAIR_BOUND + HALF_ULP * ranks.abs() + 1e-12 * n
    assert ((far_ranks.double() - ranks).abs() <= rank_bound).all()
    # Gradients: γ (g_i Σ_j σ'(·) − Σ_j σ'(·) g_j), each sum within its pairs' bound.
    g = grad.double()
    grad_bound = gamma * PAIR_BOUND * (n * g.abs() + g.abs().sum()) + HALF_ULP * grads.abs() + 1e-12 * n * gamma
    assert ((far_grads.double() - grads).abs() <= grad_bound).all()


@pytest.mark.parametrize("n", [4096, 16384])
@pytest.mark.parametrize("gamma", [0.1, 1.0, 10.0])
def test_expansion_is_no_further_from_float64_than_the_exact_float32_sweep(n, gamma):
    torch.manual_seed(n)
    x, grad = torch.randn(1, n), torch.randn(1, n)
    ranks, grads = _exact(x, grad, gamma)
    errors = {}
    for mode in ("never", "always"):
        with native.farfield(mode):
            errors[mode] = (
                (native.forward(x, gamma).double() - ranks).abs().max(),
                (native.backward(x, grad, gamma).double() - grads).abs().max(),
            )
    assert errors["always"][0] <= errors["never"][0]
    assert errors["always"][1] <= errors["never"][1] * 1.05  # both at float32 rounding of |∂| ~ 1e3


def test_the_row_decides_the_method():
    with native.exact_cost(forward=1.0, backward=1.0):  # the fitted model, whatever this CPU measured
        _the_row_decides_the_method()


def _the_row_decides_the_method():
    torch.manual_seed(0)
    long_row = torch.randn(4096)
    assert native.method(torch.randn(500), 1.0) == "dense"  # short rows: always exact
    assert native.method(long_row, 1.0) == "far-field"  # every pair live: O(n²) exact
    assert native.method(long_row, 1.0, backward=True) == "far-field"
    assert native.method(long_row, 10_000.0) == "window"  # almost every pair saturated
    assert native.method(long_row.double(), 1.0) == "dense"  # float64 stays exact
    with native.farfield("never"):
        assert native.method(long_row, 1.0) == "dense"
    assert native.method(long_row, 1.0) == "far-field"  # the mode is restored after the block
    with pytest.raises(ValueError, match="NaN or inf"):
        native.method(torch.tensor([1.0, float("nan")]), 1.0)


def test_a_backward_with_the_order_its_forward_kept_is_not_charged_a_sort():
    # Under autograd a forward that sorted keeps each row's order, and the backward's windows
    # then need no sort: the cost model leaves it out, so such a backward takes the windows at
    # least wherever an unsorted one would, and at some rows where it would not (fixed constants:
    # the calibrated ones are the CPU's).
    flipped = 0
    with native.exact_cost(forward=1.0, backward=1.0):
        for n, gamma in [(1024, 10.0), (2048, 20.0), (3000, 30.0), (1024, 1.0), (4096, 50.0), (512, 10.0)]:
            x = torch.randn(n, generator=torch.Generator().manual_seed(0))
            unsorted = native.method(x, gamma, backward=True, rows=128)
            kept = native.method(x, gamma, backward=True, rows=128, sorted=True)
            assert unsorted != "window" or kept == "window"
            assert native.method(x, gamma, rows=128, sorted=True) == native.method(x, gamma, rows=128)  # forward
            flipped += (unsorted, kept) == ("far-field", "window")
    assert flipped >= 2


@pytest.mark.parametrize(("rows", "n"), [(3, 2048), (1, 4096), (1, 40_000)])
def test_work_split_over_threads_agrees_with_one_thread(rows, n):
    # Whole rows to a thread each (rows >= threads); a single row's forward has its bins shared
    # out over the threads and its backward one weight to a thread. Each bin's sums are the same
    # operations in the same order whichever thread runs them.
    x, grad = torch.randn(rows, n), torch.randn(rows, n)
    assert native.method(x[0], 1.0, backward=True, rows=rows) == "far-field"
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = native.forward(x, 1.0), native.backward(x, grad, 1.0)
        torch.set_num_threads(4)
        several = native.forward(x, 1.0), native.backward(x, grad, 1.0)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one[0], several[0]) and torch.equal(one[1], several[1])


BLOCK_CHILD = """
import json, torch
from softrank_ad._kernels import native
rows = [torch.randn(1, 3000, generator=torch.Generator().manual_seed(s)) * scale for s, scale in ((0, 1.0), (1, 30.0))]
grads = [torch.randn(1, 3000, generator=torch.Generator().manual_seed(9)) for _ in rows]
out = {"available": native.available()}
with native.farfield("always"):
    out["forward"] = [native.forward(x, 1.0).tolist() for x in rows]
    out["backward"] = [native.backward(x, g, 1.0).tolist() for x, g in zip(rows, grads)]
print(json.dumps(out))
"""


@pytest.mark.parametrize("block", [2, 4])
def test_every_vector_width_of_the_expansion_gives_the_same_numbers(tmp_path, block):
    """The expansion's block is the target's vector register (8 doubles with AVX-512, 4 with AVX2,
    2 with SSE2 or NEON); this machine builds one of them, so the others are built here on
    purpose, in a child with a fresh cache, and must agree with this process's build."""
    import json
    import os
    import subprocess
    import sys

    compiler = " ".join(native._compiler())
    env = {**os.environ, "CC": f"{compiler} -DFARFIELD_BLOCK={block}", "SOFTRANK_AD_CACHE": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", BLOCK_CHILD], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    child = json.loads(done.stdout.strip().splitlines()[-1])
    assert child["available"]
    scope = {}
    exec(BLOCK_CHILD.replace("print(json.dumps(out))", ""), scope)  # the same rows in this process
    for kind in ("forward", "backward"):
        for ours, theirs in zip(scope["out"][kind], child[kind]):
            torch.testing.assert_close(torch.tensor(theirs), torch.tensor(ours), rtol=1e-6, atol=1e-5)
