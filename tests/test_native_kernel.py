"""The native C backend: agreement with float64 on every path through the kernel, threads,
NaN rows, the build cache, and the fallback when no compiler works."""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from softrank_ad import soft_rank
from softrank_ad._kernels import native


def exact(x: torch.Tensor, gamma: float, grad: torch.Tensor):
    """Float64 dense ranks and their vector-Jacobian product with ``grad``."""
    x64 = x.detach().double().requires_grad_()
    r = soft_rank(x64, gamma=gamma, backend="reference")
    (g,) = torch.autograd.grad(r, x64, grad.double())
    return r.detach(), g


def native_with_grad(x: torch.Tensor, gamma: float, grad: torch.Tensor):
    x = x.detach().clone().requires_grad_()
    r = soft_rank(x, gamma=gamma, backend="native")
    (g,) = torch.autograd.grad(r, x, grad)
    return r.detach(), g


def test_build_reports_no_error():
    assert native.build_error() is None


# Each case takes a different path: dense short rows; short rows too spread for one shift
# (sorted despite n < 64); rows sorted and windowed, with blocks cut by count (64) and by spread;
# windows rounded up past the row end; ties and constant rows; a single entry.
CASES = [
    ("dense short", torch.randn(50, 10), 1.0),
    ("short, wide spread", torch.randn(20, 30) * 50, 10.0),
    ("windowed, narrow", torch.randn(16, 1000), 100.0),
    ("windowed, sparse tails", torch.randn(8, 300) ** 3, 30.0),
    ("dense long", torch.randn(4, 700), 1.0),
    ("ties", torch.randint(-3, 4, (32, 200)).float(), 50.0),
    ("constant rows", torch.full((3, 130), 2.5), 7.0),
    ("far from zero", torch.randn(8, 100) + 3e4, 3.0),
    ("one entry", torch.randn(5, 1), 3.0),
    ("dense rows in lanes", torch.randn(37, 200), 1.0),  # two full vectors of rows and a part-filled one
    # γ·spread just under float32's dense limit (40): E reaches exp(±20), and the products of two
    # denominators that pairs2 and lanes divide by reach exp(±40)
    ("dense at the spread limit, lanes", torch.linspace(-19.9, 19.9, 60)[torch.randperm(60)].repeat(20, 1), 1.0),
    ("dense at the spread limit, rows", torch.linspace(-19.9, 19.9, 60)[torch.randperm(60)].repeat(3, 1), 1.0),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name,x,gamma", CASES, ids=[case[0] for case in CASES])
def test_matches_float64_dense_formula(name, x, gamma, dtype):
    grad = torch.randn_like(x)
    r_exact, g_exact = exact(x, gamma, grad)
    r, g = native_with_grad(x.to(dtype), gamma, grad.to(dtype))
    assert r.dtype == g.dtype == dtype
    if dtype == torch.float64:
        torch.testing.assert_close(r, r_exact, rtol=1e-12, atol=1e-10)
        torch.testing.assert_close(g, g_exact, rtol=1e-10, atol=1e-10 * gamma)
    else:  # the float32 dense formula in torch is off from float64 by as much
        torch.testing.assert_close(r.double(), r_exact, rtol=1e-6, atol=1e-3)
        torch.testing.assert_close(g.double(), g_exact, rtol=1e-4, atol=1e-4 * gamma)


@given(  # from 8 rows, dense rows go a vector of rows at a time (lanes), the others one by one
    v=arrays(np.float64, st.tuples(st.integers(1, 20), st.integers(1, 150)), elements=st.floats(-1e3, 1e3)),
    gamma=st.floats(1e-3, 1e3),
)
def test_float64_matches_dense_formula_everywhere(v, gamma):
    x = torch.from_numpy(v)
    grad = torch.linspace(-1, 1, x.numel(), dtype=torch.float64).reshape(x.shape)
    r_exact, g_exact = exact(x, gamma, grad)
    r, g = native_with_grad(x, gamma, grad)
    torch.testing.assert_close(r, r_exact, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(g, g_exact, rtol=1e-9, atol=1e-9 * max(gamma, 1.0))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "name,x,gamma",
    [
        *CASES,
        ("far field", torch.randn(2, 4096), 1.0),
        ("mixed rows", torch.cat([torch.randn(3, 500), torch.randn(3, 500) * 0.01]), 100.0),
    ],
    ids=[case[0] for case in CASES] + ["far field", "mixed rows"],
)
def test_the_backward_reusing_the_forwards_order_equals_the_one_that_sorts(name, x, gamma, dtype):
    x, grad = x.to(dtype), torch.randn(x.shape, dtype=dtype)
    ranks, order = native.forward_saving(x, gamma)
    assert torch.equal(ranks, native.forward(x, gamma))
    assert torch.equal(native.backward(x, grad, gamma, saved=order), native.backward(x, grad, gamma))
    sorted_rows = [native.method(row, gamma, rows=x.shape[0]) == "window" for row in x]
    if order is None:  # nothing kept when no row was sorted
        assert not any(sorted_rows)
        return
    for row, kept, was_sorted in zip(x, order, sorted_rows):
        if was_sorted:
            assert torch.equal(row[kept.long()], row.sort().values)
        else:
            assert kept[0] == -1


def test_a_wrong_kept_order_is_used_not_ignored():
    # What makes the kept order count: the backward reads it instead of sorting (a reversed order
    # gives another gradient), so the test above compares two different computations.
    x, grad = torch.randn(2, 1000), torch.randn(2, 1000)
    _, order = native.forward_saving(x, 100.0)
    wrong = order.flip(-1).contiguous()
    assert not torch.allclose(native.backward(x, grad, 100.0, saved=wrong), native.backward(x, grad, 100.0))


def test_soft_rank_keeps_the_order_only_for_a_backward():
    x = torch.randn(4, 1000)
    with torch.no_grad():
        r = soft_rank(x.requires_grad_(), gamma=100.0, backend="native")
    assert r.grad_fn is None
    r = soft_rank(x, gamma=100.0, backend="native")
    saved = [t for t in r.grad_fn.saved_tensors if t is not None]
    assert [t.dtype for t in saved] == [torch.float32, torch.int32]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_dense_rows_result_does_not_depend_on_the_rows_beside_it(dtype):
    # Dense short rows in calls on many rows go a vector of rows at a time, one row per lane; each
    # lane's arithmetic is its own, whatever shares the vector (other rows, a filler, a row sent
    # elsewhere because it is sorted or holds a NaN).
    torch.manual_seed(5)
    row, grad = torch.randn(1, 150, dtype=dtype), torch.randn(1, 150, dtype=dtype)
    others = torch.randn(40, 150, dtype=dtype)
    others[3] *= 100  # sorted, not in a lane
    others[7, 2] = float("nan")
    results = []
    for at, count in [(0, 40), (13, 40), (39, 40), (5, 20)]:
        batch = torch.cat([others[:at], row, others[at:count]])
        grads = torch.cat([torch.randn(at, 150, dtype=dtype), grad, torch.randn(count - at, 150, dtype=dtype)])
        r = native.forward(batch, 2.0)
        g = native.backward(batch, grads, 2.0)
        results.append((r[at], g[at]))
    for r, g in results[1:]:
        assert torch.equal(r, results[0][0]) and torch.equal(g, results[0][1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_threads_split_dense_rows_in_lanes_without_changing_results(dtype):
    x, grad = torch.randn(300, 100, dtype=dtype), torch.randn(300, 100, dtype=dtype)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = native_with_grad(x, 0.5, grad)
        torch.set_num_threads(3)  # thread blocks of 100 rows: groups of lanes start elsewhere
        several = native_with_grad(x, 0.5, grad)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one[0], several[0]) and torch.equal(one[1], several[1])


def test_threads_split_rows_without_changing_results():
    x, grad = torch.randn(300, 257), torch.randn(300, 257)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = native_with_grad(x, 20.0, grad)
        torch.set_num_threads(4)  # more threads than cores still splits the rows
        several = native_with_grad(x, 20.0, grad)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one[0], several[0]) and torch.equal(one[1], several[1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("gamma", [0.1, 1.0, 30.0])  # dense rows, and sorted windows at 30
def test_one_long_row_split_over_threads_matches_one_thread(dtype, gamma):
    x, grad = torch.randn(1, 6000, dtype=dtype), torch.randn(1, 6000, dtype=dtype)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = native_with_grad(x, gamma, grad)
        torch.set_num_threads(3)  # blocks interleaved over 3 threads, totals added at the end
        several = native_with_grad(x, gamma, grad)
    finally:
        torch.set_num_threads(threads)
    # Only the order of the double-precision additions differs.
    torch.testing.assert_close(several[0], one[0], rtol=1e-6 if dtype == torch.float32 else 1e-13, atol=0)
    torch.testing.assert_close(several[1], one[1], rtol=1e-5 if dtype == torch.float32 else 1e-12, atol=1e-12)


TORCH_GOMP = Path(torch.__file__).parent / "lib" / "libgomp.so.1"


@pytest.mark.skipif(not TORCH_GOMP.exists(), reason="torch's Linux wheels ship libgomp; this torch does not")
def test_threads_are_torchs_own_openmp_workers():
    import ctypes

    soft_rank(torch.randn(256, 256), backend="native")
    assert native.uses_openmp() == native._torch_openmp()
    if native._torch_openmp():
        # The kernels' OpenMP calls bind to the runtime torch loaded (libgomp.so.1 by soname), so
        # no second pool of threads competes with torch's for the cores; other packages (e.g.
        # scikit-learn) may have mapped runtimes of their own beside it.
        torch_gomp = ctypes.CDLL(str(TORCH_GOMP))
        ours = native._load().softrank_openmp_symbol()
        assert ours == ctypes.cast(torch_gomp.omp_get_thread_num, ctypes.c_void_p).value


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nonfinite_row_comes_back_nan_and_leaves_other_rows_alone(bad):
    x = torch.randn(4, 100)
    x[1, 17] = bad
    r = soft_rank(x, gamma=50.0, backend="native", check_finite=False)
    assert torch.isnan(r[1]).all()
    torch.testing.assert_close(r[[0, 2, 3]], soft_rank(x[[0, 2, 3]], gamma=50.0, backend="native"))


def test_auto_picks_native_for_cpu_float32_and_float64():
    from softrank_ad.rank import _pick_backend

    assert _pick_backend(torch.randn(2, 5), 1.0, "auto") == "native"
    assert _pick_backend(torch.randn(2, 5, dtype=torch.float64), 1.0, "auto") == "native"


def test_refuses_what_it_cannot_run_by_name():
    from softrank_ad.rank import _pick_backend

    # soft_rank itself hands half precision over as float32; the kernel boundary still checks.
    with pytest.raises(ValueError, match="backend='native' runs on CPU float32/float64 tensors, got a torch.float16"):
        _pick_backend(torch.randn(2, 5).half(), 1.0, "native")


def _rank_in_child(queue):
    x = torch.randn(64, 512)
    queue.put(torch.equal(soft_rank(x, gamma=5.0, backend="native"), soft_rank(x, gamma=5.0, backend="native")))


@pytest.mark.skipif(sys.platform == "win32", reason="fork start method")
def test_threads_work_in_a_forked_child():
    soft_rank(torch.randn(64, 512), gamma=5.0, backend="native")  # the parent's pool exists now
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_rank_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0 and queue.get(timeout=5) is True


CHILD = textwrap.dedent(
    """
    import json, warnings, torch
    from softrank_ad import soft_rank
    from softrank_ad._kernels import native
    x = torch.randn(4, 100)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        auto = soft_rank(x, gamma=3.0)
        soft_rank(x, gamma=3.0)
    same = torch.allclose(auto, soft_rank(x, gamma=3.0, backend="reference"), atol=1e-4)
    try:
        soft_rank(x, gamma=3.0, backend="native")
        refusal = ""
    except ValueError as err:
        refusal = str(err)
    print(json.dumps({"available": native.available(), "error": native.build_error(),
                      "auto_matches_reference": same, "refusal": refusal,
                      "warnings": sum("native CPU kernels" in str(w.message) for w in caught),
                      "scales": native.exact_cost_scales() if native.available() else None}))
    """
)


def _child(env_updates: dict) -> dict:
    import json

    env = {**os.environ, **env_updates}
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_without_a_compiler_auto_falls_back_and_native_says_why(tmp_path):
    report = _child({"CC": str(tmp_path / "no-such-cc"), "SOFTRANK_AD_CACHE": str(tmp_path)})
    assert report["available"] is False
    assert "no-such-cc" in report["error"]
    assert report["auto_matches_reference"] is True
    assert report["refusal"].startswith("backend='native' could not be built here")
    assert report["warnings"] == 1


def test_build_is_cached_and_reused(tmp_path):
    env = {"SOFTRANK_AD_CACHE": str(tmp_path)}
    assert _child(env)["available"] is True
    (built,) = list(tmp_path.glob("softrank_native-*.so"))
    stamp = built.stat().st_mtime_ns
    assert _child(env)["available"] is True
    costs = built.with_name(built.stem + ".costs.json")
    assert sorted(tmp_path.glob("softrank_native-*")) == [costs, built, built.with_name(built.name + ".sha256")]
    assert built.stat().st_mtime_ns == stamp


def test_the_cost_model_is_measured_once_per_cpu_and_cached_beside_the_build(tmp_path):
    env = {"SOFTRANK_AD_CACHE": str(tmp_path)}
    first = _child(env)["scales"]
    (costs,) = list(tmp_path.glob("softrank_native-*.costs.json"))
    saved = json.loads(costs.read_text())
    assert {k: saved[k] for k in first} == first and saved["cpu"]
    assert all(0.1 <= value <= 10 for value in first.values())
    stamp = costs.stat().st_mtime_ns
    assert _child(env)["scales"] == first  # read back, not measured again
    assert costs.stat().st_mtime_ns == stamp
    for damaged in ("", "{", '{"forward": "x", "backward": 1}', '{"forward": 1e9, "backward": 1}'):
        costs.write_text(damaged)
        scales = _child(env)["scales"]
        assert all(0.1 <= value <= 10 for value in scales.values())
        assert json.loads(costs.read_text())["forward"] == scales["forward"]  # measured and rewritten


def test_calibration_can_be_switched_off(tmp_path):
    report = _child({"SOFTRANK_AD_CACHE": str(tmp_path), "SOFTRANK_AD_CALIBRATE": "0"})
    assert report["scales"] == {"forward": 1.0, "backward": 1.0}
    assert not list(tmp_path.glob("*.costs.json"))


def test_the_measured_scales_steer_the_choice_of_path():
    row = torch.rand(1024, generator=torch.Generator().manual_seed(0))  # γ = 1: every pair live
    measured = (native.method(row, 1.0), native.method(row, 1.0, backward=True))
    with native.exact_cost(forward=0.1, backward=0.1):  # a CPU where the exact sweep is cheap
        assert native.method(row, 1.0) == "dense" and native.method(row, 1.0, backward=True) == "dense"
    with native.exact_cost(forward=10.0, backward=10.0):  # one where it is dear
        assert native.method(row, 1.0) == "far-field" and native.method(row, 1.0, backward=True) == "far-field"
    assert (native.method(row, 1.0), native.method(row, 1.0, backward=True)) == measured  # restored


def test_a_damaged_cached_library_is_rebuilt_not_loaded(tmp_path):
    env = {"SOFTRANK_AD_CACHE": str(tmp_path)}
    assert _child(env)["available"] is True
    (built,) = list(tmp_path.glob("softrank_native-*.so"))
    whole = built.read_bytes()
    for damaged in (whole[:24_000], b"", b"\x7fELF garbage"):  # truncated (valid header), empty, garbage
        built.write_bytes(damaged)
        assert _child(env)["available"] is True  # loading the truncated file would SIGBUS
        assert built.read_bytes() == whole
    assert oct(built.stat().st_mode & 0o777) == "0o755"


def fake_compiler(tmp_path, body: str):
    script = tmp_path / "cc"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    return str(script)


def test_a_compiler_that_writes_nothing_is_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", fake_compiler(tmp_path, "exit 0"))
    monkeypatch.setenv("SOFTRANK_AD_CACHE", str(tmp_path / "cache"))
    library, error = native._build_and_open()
    assert library is None and "empty library" in error
    assert list((tmp_path / "cache").iterdir()) == []


@pytest.mark.parametrize("hang", ["version", "compile"])
def test_a_hanging_compiler_is_given_up_on_and_leaves_no_files(tmp_path, monkeypatch, hang):
    import time

    body = "sleep 30" if hang == "version" else 'case "$1" in --version) echo fake;; *) sleep 30;; esac'
    monkeypatch.setenv("CC", fake_compiler(tmp_path, body))
    monkeypatch.setenv("SOFTRANK_AD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(native, "_VERSION_TIMEOUT", 1)
    monkeypatch.setattr(native, "_COMPILE_TIMEOUT", 1)
    started = time.monotonic()
    library, error = native._build_and_open()
    assert library is None and "did not finish within 1 s" in error
    assert time.monotonic() - started < 10  # one timeout, no second attempt
    cache = tmp_path / "cache"
    assert not cache.exists() or list(cache.iterdir()) == []


@pytest.mark.skipif(shutil.which("gcc") is None, reason="reads gcc's vectorisation report")
@pytest.mark.parametrize("target", ["x86-64-v3", "x86-64"] if platform.machine() in ("x86_64", "AMD64") else ["native"])
def test_gcc_vectorises_the_loops_over_lanes_for_every_vector_width(tmp_path, target):
    # With a few lanes (8 floats on AVX2) gcc 12 unrolled a lane loop whole and then vectorised
    # the loop around it across entries: the AVX2 build's forward of rows of 100 ran 2.3x slower
    # than the AVX-512 one. The loops over the lanes of each pair (forward and backward), where
    # the time goes, must themselves be vectorised, on any target.
    source = Path(native.__file__).with_name("native.c")
    rows = source.with_name("native_rows.h").read_text().splitlines()
    start = next(i for i, line in enumerate(rows) if "static void NAME(lanes)" in line)
    end = next(i for i in range(start, len(rows)) if rows[i] == "}")
    lane_loops = {
        i + 1
        for i in range(start, end)
        if "for (int l = 0; l < LANES; ++l)" in rows[i] and "ea[l] + ej[l]" in rows[i + 1]
    }
    assert len(lane_loops) == 2, "the lanes function changed shape; update this test"
    report = subprocess.run(
        [
            "gcc",
            *native._FLAGS,
            f"-march={target}",
            "-c",
            str(source),
            "-o",
            str(tmp_path / "k.o"),
            "-fopt-info-vec-optimized",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    vectorised = {
        int(line.split("native_rows.h:")[1].split(":")[0])
        for line in report.splitlines()
        if "native_rows.h:" in line and "loop vectorized" in line
    }
    assert lane_loops <= vectorised, f"lane loops left scalar on {target}: lines {sorted(lane_loops - vectorised)}"
