"""soft_rank / SoftRank: invariants, limits, gradients, memory, dtypes and bad input."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import rankdata

from conftest import DEVICES
from softrank_ad import SoftRank, soft_rank, soft_spearman

BACKENDS = ["reference", "window", "compiled", "native"]

finite = st.floats(-100, 100, allow_nan=False, allow_infinity=False, width=64)
gammas = st.floats(0.01, 100.0)


def rows(min_n=1, max_n=40):
    return arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(min_n, max_n)), elements=finite)


@pytest.mark.parametrize("backend", BACKENDS)
@given(v=rows(), gamma=gammas)
def test_ranks_sum_to_n_n_plus_1_over_2(backend, v, gamma):
    r = soft_rank(torch.from_numpy(v), gamma=gamma, backend=backend)
    n = v.shape[-1]
    torch.testing.assert_close(r.sum(-1), torch.full((v.shape[0],), n * (n + 1) / 2, dtype=r.dtype))


@given(v=rows(max_n=30), gamma=gammas, seed=st.integers(0, 2**31 - 1))
def test_permutation_equivariance(v, gamma, seed):
    x = torch.from_numpy(v)
    perm = torch.randperm(x.shape[-1], generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(soft_rank(x[:, perm], gamma=gamma), soft_rank(x, gamma=gamma)[:, perm])


@given(v=arrays(np.float64, st.integers(2, 30), elements=finite, unique=True), gamma=gammas)
def test_strictly_monotone(v, gamma):
    order = np.argsort(v)
    assume(np.min(np.diff(v[order])) * gamma > 1e-6)
    r = soft_rank(torch.from_numpy(v), gamma=gamma).numpy()
    assert np.all(np.diff(r[order]) > 0)


@given(v=rows(), gamma=gammas, shift=st.floats(-1e3, 1e3))
def test_translation_invariance(v, gamma, shift):
    x = torch.from_numpy(v)
    torch.testing.assert_close(soft_rank(x + shift, gamma=gamma), soft_rank(x, gamma=gamma), atol=1e-8, rtol=1e-8)


@given(v=rows(), gamma=st.floats(0.01, 10.0), c=st.floats(0.1, 10.0))
def test_scaling_input_equals_scaling_gamma(v, gamma, c):
    x = torch.from_numpy(v)
    torch.testing.assert_close(soft_rank(c * x, gamma=gamma), soft_rank(x, gamma=c * gamma))


@pytest.mark.parametrize("backend", BACKENDS)
def test_converges_to_scipy_average_ranks_with_ties(backend):
    # Integer-valued rows repeat values often, so ties are common.
    x = torch.randint(-5, 6, (32, 50)).double()
    hard = torch.from_numpy(np.stack([rankdata(row, method="average") for row in x.numpy()]))
    errors = [(soft_rank(x, gamma=g, backend=backend) - hard).abs().max().item() for g in (1, 5, 25, 100)]
    assert all(e1 > e2 for e1, e2 in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-9


def test_descending_is_n_plus_1_minus_ascending():
    x = torch.randn(3, 17, dtype=torch.float64)
    torch.testing.assert_close(soft_rank(x, gamma=2.0, descending=True), 18 - soft_rank(x, gamma=2.0))


@pytest.mark.parametrize("dim", [0, 1, -1, 2])
def test_dim_matches_moving_the_axis(dim):
    x = torch.randn(4, 5, 6, dtype=torch.float64)
    expected = soft_rank(x.movedim(dim, -1), gamma=3.0).movedim(-1, dim)
    torch.testing.assert_close(soft_rank(x, gamma=3.0, dim=dim), expected)


@pytest.mark.parametrize("backend", ["window", "compiled", "native", "auto"])
def test_backends_agree_with_float64_on_wide_spread_and_ties(backend):
    x = torch.cat([torch.randn(64, 500) * 30, torch.randint(-3, 3, (64, 500)).float()])
    g = torch.randn_like(x)
    for gamma in (0.3, 3.0, 30.0):
        x64 = x.double().requires_grad_()
        exact = soft_rank(x64, gamma=gamma, backend="reference")
        (exact_grad,) = torch.autograd.grad(exact, x64, g.double())
        x32 = x.clone().requires_grad_()
        r = soft_rank(x32, gamma=gamma, backend=backend)
        (grad,) = torch.autograd.grad(r, x32, g)
        torch.testing.assert_close(r.double(), exact, rtol=1e-6, atol=2e-3)
        torch.testing.assert_close(grad.double(), exact_grad, rtol=1e-4, atol=1e-3 * gamma)


def test_std_scale_is_gamma_relative_to_spread():
    x = torch.randn(8, 20, dtype=torch.float64)
    for c in (1e-3, 1.0, 1e3):
        torch.testing.assert_close(soft_rank(c * x, gamma=2.0, scale="std"), soft_rank(x, gamma=2.0, scale="std"))
    spread = x.std(-1, unbiased=False, keepdim=True)
    torch.testing.assert_close(soft_rank(x, gamma=2.0, scale="std"), soft_rank(x / spread, gamma=2.0))
    constant = torch.ones(2, 5, dtype=torch.float64, requires_grad=True)
    r = soft_rank(constant, gamma=2.0, scale="std")
    r.pow(2).sum().backward()
    assert torch.isfinite(constant.grad).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape,dim", [((7,), 0), ((3, 9), -1), ((3, 9), 0), ((2, 3, 5), 1)])
def test_gradcheck(backend, shape, dim):
    x = (torch.randn(shape, dtype=torch.float64) * 2).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: soft_rank(t, gamma=1.5, dim=dim, backend=backend), (x,))


def test_gradcheck_std_scale_and_descending():
    x = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: soft_rank(t, gamma=1.0, descending=True, scale="std"), (x,))


@pytest.mark.parametrize("gamma", [1.0, 100.0])  # dense rows; sorted rows (native keeps their order)
@pytest.mark.parametrize("backend", BACKENDS)
def test_saved_tensors_are_linear_in_n(backend, gamma):
    rows, n = 64, 512
    x = torch.randn(rows, n, requires_grad=True)
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        r = soft_rank(x, gamma=gamma, backend=backend)
    input_bytes = rows * n * 4
    kept_order = rows * n * 4 if backend == "native" and gamma == 100.0 else 0  # int32 per entry
    assert sum(saved) == input_bytes + kept_order, saved
    assert sum(saved) < rows * n * n * 4 / 100
    r.sum().backward()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_computed_in_float32(device, dtype):
    x = torch.randn(4, 30, device=device)
    xh = x.to(dtype).requires_grad_()
    r = soft_rank(xh, gamma=1.0)
    assert r.dtype == dtype
    torch.testing.assert_close(r.float(), soft_rank(xh.detach().float(), gamma=1.0), atol=0.2, rtol=0.01)
    r.float().square().sum().backward()
    assert xh.grad.dtype == dtype and torch.isfinite(xh.grad.float()).all()


def test_float64_kept():
    assert soft_rank(torch.randn(5, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.parametrize("bad", [torch.arange(5), torch.ones(5, dtype=torch.bool)])
def test_integer_and_bool_rejected(bad):
    with pytest.raises(TypeError, match="x must have a floating dtype.*got torch"):
        soft_rank(bad)


def test_non_tensor_rejected():
    with pytest.raises(TypeError, match="x must be a torch.Tensor, got list"):
        soft_rank([1.0, 2.0])


@pytest.mark.parametrize("gamma", [0.0, -1.0, math.nan, math.inf])
def test_bad_gamma(gamma):
    with pytest.raises(ValueError, match="gamma must be finite and > 0"):
        soft_rank(torch.randn(4), gamma=gamma)
    with pytest.raises(ValueError, match="gamma"):
        SoftRank(gamma=gamma)


def test_gamma_beyond_the_compute_dtype_is_refused_and_just_below_it_has_finite_gradients():
    x = torch.randn(3, 6, requires_grad=True)
    with pytest.raises(ValueError, match=r"at most 3.4e\+38 \(the largest torch.float32 value\), got 3.5e\+38"):
        soft_rank(x, gamma=3.5e38)
    with pytest.raises(ValueError, match="got an int of 1101 bits"):
        soft_rank(x, gamma=2**1100)
    soft_rank(x, gamma=3.0e38).square().sum().backward()
    assert torch.isfinite(x.grad).all()
    soft_rank(x.detach().double(), gamma=3.5e38)  # float64 holds it


def test_gamma_type():
    with pytest.raises(TypeError, match="gamma must be a positive float, got str"):
        soft_rank(torch.randn(4), gamma="1")


@pytest.mark.parametrize("dim", [2, -3])
def test_dim_out_of_range(dim):
    with pytest.raises(ValueError, match=rf"dim={dim} is out of range for x of shape \(2, 3\)"):
        soft_rank(torch.randn(2, 3), dim=dim)


def test_zero_dim_and_empty_axis():
    with pytest.raises(ValueError, match="0-d"):
        soft_rank(torch.tensor(1.0))
    with pytest.raises(ValueError, match="size 0 along dim=1"):
        soft_rank(torch.randn(3, 0))


@pytest.mark.parametrize("backend", ["native", "reference", "window", "compiled"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_input(value, backend):
    # The check reads the ranks (NaN wherever the input is not finite), so every backend must
    # turn a bad entry into NaN; scale="std" and float64 and long rows take other paths.
    for x in (torch.randn(2, 5), torch.randn(3, 300, dtype=torch.float64)):
        x[1, 2] = value
        for scale in ("none", "std"):
            with pytest.raises(ValueError, match="x contains 1 non-finite value"):
                soft_rank(x, gamma=30.0, scale=scale, backend=backend)
        assert torch.isnan(soft_rank(x, backend=backend, check_finite=False)[1]).any()  # the opt-out


def test_native_finiteness_report_replaces_the_reduction_only_for_its_own_output(monkeypatch):
    # The native kernel reports rows holding NaN/inf; soft_rank and the Spearman losses then skip
    # their reduction over the ranks, but only for the tensor that very forward returned.
    from softrank_ad import _validate, soft_spearman
    from softrank_ad._kernels import native

    reductions = []
    real = _validate.check_finite_from
    monkeypatch.setattr(_validate, "check_finite_from", lambda *a: reductions.append(1) or real(*a))
    ranks = soft_rank(torch.randn(3, 2, 6), dim=1, backend="native")  # a view of the kernel's output
    soft_spearman(torch.randn(4, 6), torch.randn(4, 6), backend="native")
    assert native.known_finite(ranks) is False  # the Spearman call's forward came last
    assert reductions == []
    soft_rank(torch.randn(2, 6, dtype=torch.bfloat16), backend="native")  # checked before the cast back
    assert reductions == []
    soft_rank(torch.randn(2, 6), backend="reference")  # another backend: reduced
    assert len(reductions) == 1
    finite = soft_rank(torch.randn(2, 6), backend="native")
    bad = torch.randn(2, 6)
    bad[0, 1] = math.nan
    with pytest.raises(ValueError, match="x contains 1 non-finite"):
        soft_rank(bad, backend="reference")  # right after a finite native forward
    with pytest.raises(ValueError, match="b contains 1 non-finite"):
        soft_spearman(torch.randn(2, 6), bad, backend="native")
    other_thread = []
    thread = threading.Thread(target=lambda: other_thread.append(native.known_finite(finite)))
    thread.start()
    thread.join()
    assert other_thread == [False]


def test_bad_backend_and_scale():
    with pytest.raises(ValueError, match="backend must be one of"):
        soft_rank(torch.randn(4), backend="cuda")
    with pytest.raises(ValueError, match="scale must be one of"):
        soft_rank(torch.randn(4), scale="max")


def test_module_matches_function_and_stores_arguments():
    module = SoftRank(gamma=3.0, dim=0, descending=True)
    x = torch.randn(6, 2)
    torch.testing.assert_close(module(x), soft_rank(x, gamma=3.0, dim=0, descending=True))
    assert "gamma=3.0" in repr(module) and not list(module.parameters())


def test_torch_compile_fullgraph():
    x = torch.randn(8, 12, requires_grad=True)
    compiled = torch.compile(lambda t: soft_rank(t, gamma=2.0).square().sum(), fullgraph=True)
    out = compiled(x)
    (grad,) = torch.autograd.grad(out, x)
    x_eager = x.detach().requires_grad_()
    soft_rank(x_eager, gamma=2.0).square().sum().backward()
    torch.testing.assert_close(out, soft_rank(x.detach(), gamma=2.0).square().sum())
    torch.testing.assert_close(grad, x_eager.grad, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_batch(backend):
    x = torch.randn(0, 5, requires_grad=True)
    r = soft_rank(x, backend=backend)
    r.sum().backward()
    assert r.shape == (0, 5) and x.grad.shape == (0, 5)


def test_eager_calls_keep_their_checks_while_another_thread_compiles(monkeypatch):
    # torch.compiler.is_compiling() is one process-wide flag: while any thread compiles it reads
    # True everywhere. Eager calls must still reject NaN and keep their fast backend.
    import torch.compiler

    from softrank_ad.rank import _pick_backend

    monkeypatch.setattr(torch.compiler, "_is_compiling_flag", True)
    assert torch.compiler.is_compiling()
    x = torch.randn(4, 6)
    x[0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        soft_rank(x)
    assert _pick_backend(torch.randn(4, 6), 1.0, "auto") == "native"


def test_reference_backend_splits_long_rows_into_entry_blocks(monkeypatch):
    from softrank_ad._kernels import _chunking, reference

    x, grad = torch.randn(3, 40, dtype=torch.float64), torch.randn(3, 40, dtype=torch.float64)
    whole = reference.forward(x, 2.0), reference.backward(x, grad, 2.0)
    monkeypatch.setattr(_chunking, "PAIRWISE_ELEMENT_BUDGET", 100)  # < 40², so rows are split
    blocks = list(_chunking.pairwise_blocks(3, 40))
    assert all((b[0].stop - b[0].start) * (b[1].stop - b[1].start) * 40 <= 100 for b in blocks)
    assert len(blocks) == 3 * 20
    torch.testing.assert_close(reference.forward(x, 2.0), whole[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(reference.backward(x, grad, 2.0), whole[1], rtol=0, atol=1e-12)


def test_backend_table_every_kernel_answers_the_same_questions():
    from softrank_ad.rank import AUTO_ORDER, BACKENDS, _kernel

    assert set(AUTO_ORDER) == set(BACKENDS) - {"auto"}
    x = torch.randn(3, 8)
    for name in AUTO_ORDER:
        kernel = _kernel(name)
        assert isinstance(kernel.RUNS_ON, str) and isinstance(kernel.supports(x), bool)
        assert isinstance(kernel.available(), bool) and isinstance(kernel.worthwhile(x, 1.0), bool)
        assert kernel.build_error() is None or isinstance(kernel.build_error(), str)


def test_compiled_backend_lets_bugs_through_and_falls_back_only_when_it_cannot_compile(monkeypatch):
    import warnings

    from softrank_ad._kernels import compiled

    monkeypatch.setattr(compiled, "_failures", [])
    monkeypatch.setattr(compiled, "_compiled", {"bug": lambda *a: 1 / 0, "no compiler": None})

    def cannot(*args):
        raise OSError("no C++ compiler")

    with pytest.raises(ZeroDivisionError):
        compiled.run("bug", None, lambda: torch.zeros(1))
    assert compiled.available()
    compiled._compiled["no compiler"] = cannot
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = compiled.run("no compiler", None, lambda: torch.ones(1))
    assert torch.equal(out, torch.ones(1)) and not compiled.available()
    assert "OSError: no C++ compiler" in compiled.build_error() and len(caught) == 1


def test_the_layer_picture_in_docs_matches_the_imports():
    # docs/architecture.md: each module imports only from modules listed above it.
    import ast
    from pathlib import Path

    order = ["_validate", "_modes", "_kernels", "rank", "spearman", "attribution", "attacks", "objectives"]
    package = Path(__file__).resolve().parent.parent / "softrank_ad"
    for module in order:
        path = package / f"{module}.py"
        if not path.exists():
            continue
        tree = ast.parse(path.read_text())
        imported = {
            alias.name
            if isinstance(node, ast.ImportFrom) and node.module == "softrank_ad"
            else node.module.split(".")[1]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("softrank_ad")
            for alias in node.names
        }
        later = set(order[order.index(module) :])
        assert not imported & later, f"{module} imports {imported & later}, listed at or below it"


def test_soft_rank_operator_passes_opcheck():
    from softrank_ad.rank import _soft_rank_backward_op, _soft_rank_op

    x = torch.randn(4, 9, requires_grad=True)
    torch.library.opcheck(_soft_rank_op, (x, 2.0, "native"))
    torch.library.opcheck(_soft_rank_op, (x.detach().double().requires_grad_(), 0.5, "reference"))
    torch.library.opcheck(_soft_rank_backward_op, (x.detach(), torch.randn(4, 9), 2.0, "native"))


def test_compiled_fullgraph_keeps_the_native_kernel_and_matches_eager():
    from softrank_ad import SlackMatchingLoss

    seen = []
    from softrank_ad._kernels import native

    original = native.forward

    def spy(x, gamma):
        seen.append(x.shape)
        return original(x, gamma)

    assert native.available()  # eager: builds and loads the kernels, which traced code then uses
    loss_fn = SlackMatchingLoss(gamma=2.0)
    s, t = torch.randn(8, 10, requires_grad=True), torch.randn(8, 10)
    try:
        native.forward = spy
        compiled = torch.compile(loss_fn, fullgraph=True)
        out = compiled(s, t)
    finally:
        native.forward = original
    assert seen  # the compiled graph called the native kernel, not a re-traced dense formula
    (g_compiled,) = torch.autograd.grad(out, s)
    (g_eager,) = torch.autograd.grad(loss_fn(s, t), s)
    torch.testing.assert_close(out, loss_fn(s, t))
    torch.testing.assert_close(g_compiled, g_eager, rtol=1e-5, atol=1e-6)


def test_compiled_training_step_without_graph_breaks():
    model = torch.nn.Linear(6, 5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, target = torch.randn(16, 6), torch.randn(16, 5)

    @torch.compile(fullgraph=True)
    def loss_of(inputs):
        return (1 - soft_spearman(model(inputs), target, gamma=1.0)).mean()

    first = loss_of(x)
    for _ in range(20):
        optimizer.zero_grad()
        loss = loss_of(x)
        loss.backward()
        optimizer.step()
    assert loss_of(x) < first


def test_export_round_trip_keeps_the_operator():
    class Ranks(torch.nn.Module):
        def forward(self, t):
            return soft_rank(t, gamma=2.0)

    x = torch.randn(3, 7)
    exported = torch.export.export(Ranks(), (x,))
    assert "softrank_ad.soft_rank" in str(exported.graph)
    import io

    buffer = io.BytesIO()
    torch.export.save(exported, buffer)
    buffer.seek(0)
    loaded = torch.export.load(buffer)
    torch.testing.assert_close(loaded.module()(x), soft_rank(x, gamma=2.0))
