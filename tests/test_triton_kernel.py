"""The fused Triton kernel, run by Triton's interpreter on CPU tensors (TRITON_INTERPRET=1).

The interpreter must be switched on before triton is imported, so the checks run in a fresh
Python process; on a CUDA machine the same checks also run on the GPU.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

CHECKS = textwrap.dedent(
    """
    import sys, torch
    from softrank_ad import soft_rank, soft_spearman
    from softrank_ad._kernels import reference
    device = sys.argv[1]
    torch.manual_seed(0)
    # γ·range decides the form: ratio of exponentials up to 150, sigmoids beyond (2, 300, 20.0),
    # and (3, 64, 7.0) sits just under the switch (γ·range = 140), where E spans exp(±70).
    ramp = torch.linspace(-10, 10, 64)[torch.randperm(64)].repeat(3, 1)
    for rows, n, gamma, given in [(3, 1, 1.0, None), (5, 7, 0.5, None), (4, 100, 1.0, None),
                                  (2, 300, 20.0, None), (0, 9, 1.0, None), (3, 64, 7.0, ramp)]:
        x = (torch.randn(rows, n) * 3 if given is None else given).to(device).requires_grad_()
        g = torch.randn(rows, n, device=device)
        r = soft_rank(x, gamma=gamma, backend="triton")
        (grad,) = torch.autograd.grad(r, x, g)
        x64 = x.detach().double().requires_grad_()
        exact = soft_rank(x64, gamma=gamma, backend="reference")
        (exact_grad,) = torch.autograd.grad(exact, x64, g.double())
        torch.testing.assert_close(r.double(), exact, rtol=1e-6, atol=1e-4)
        torch.testing.assert_close(grad.double(), exact_grad, rtol=1e-4, atol=1e-4)
    # Any leading dims and dim=, half precision in float32, through the public API.
    x = torch.randn(2, 6, 3, device=device, dtype=torch.bfloat16)
    out = soft_rank(x, gamma=2.0, dim=1, backend="triton")
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), soft_rank(x.float(), gamma=2.0, dim=1, backend="reference"), atol=0.05, rtol=0.01)
    a, b = torch.randn(2, 8, 10, device=device)
    torch.testing.assert_close(soft_spearman(a, b, backend="triton"), soft_spearman(a, b, backend="reference"))
    # A NaN or inf entry turns ranks NaN in either form, which is what check_finite reads.
    for bad, gamma in [(float("nan"), 1.0), (float("inf"), 1.0), (float("nan"), 50.0)]:
        x = torch.randn(2, 40, device=device)
        x[1, 3] = bad
        r = soft_rank(x, gamma=gamma, backend="triton", check_finite=False)
        assert torch.isnan(r[1]).any() and torch.isfinite(r[0]).all()
    print("triton checks passed on", device)
    """
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_triton_kernel_matches_float64_reference(device):
    env = dict(os.environ)
    if device == "cpu":
        env["TRITON_INTERPRET"] = "1"
    done = subprocess.run([sys.executable, "-c", CHECKS, device], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert f"triton checks passed on {device}" in done.stdout


# The GPU machine the project borrows has Triton 3.6 (beside torch 2.11), while the pinned torch
# brings 3.8; 3.6's interpreter once rejected a kernel loop that 3.8 accepts.
GPU_MACHINE_TRITON = "3.6.0"


@pytest.mark.slow
def test_triton_kernel_matches_float64_reference_under_the_gpu_machines_triton(tmp_path):
    target = tmp_path / "triton"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            f"triton=={GPU_MACHINE_TRITON}",
        ],
        check=True,
        timeout=600,
    )
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(target)}
    code = "import triton; print('triton', triton.__version__)\n" + CHECKS
    done = subprocess.run([sys.executable, "-c", code, "cpu"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert f"triton {GPU_MACHINE_TRITON}" in done.stdout and "triton checks passed on cpu" in done.stdout


def test_triton_backend_refuses_what_it_cannot_run():
    from softrank_ad import soft_rank

    with pytest.raises(ValueError, match="backend='triton' runs on CUDA float32 tensors, got a torch.float64"):
        soft_rank(torch.randn(3, 4, dtype=torch.float64), backend="triton")
    if not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
        with pytest.raises(ValueError, match="on cpu"):
            soft_rank(torch.randn(3, 4), backend="triton")


FAILURES = textwrap.dedent(
    """
    import sys, warnings, torch
    from softrank_ad import soft_rank
    from softrank_ad._kernels import triton_kernel

    class Broken:  # stands in for a kernel that does not compile on this GPU
        def __getitem__(self, grid):
            def launch(*args, **meta):
                raise RuntimeError("injected: PTX not supported by this device")
            return launch

    side = sys.argv[1]
    setattr(triton_kernel, "_forward_kernel" if side == "forward" else "_backward_kernel", Broken())
    x = torch.randn(4, 30, requires_grad=True)
    g = torch.randn(4, 30)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = soft_rank(x, gamma=2.0)                      # auto: triton first, under the interpreter
        (grad,) = torch.autograd.grad(r, x, g)
        r2 = soft_rank(x, gamma=2.0)                     # triton is off now: no second warning
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "injected: PTX" in messages[0] and "instead" in messages[0], messages
    x64 = x.detach().double().requires_grad_()
    exact = soft_rank(x64, gamma=2.0, backend="reference")
    (exact_grad,) = torch.autograd.grad(exact, x64, g.double())
    torch.testing.assert_close(r.double(), exact, rtol=1e-6, atol=1e-4)
    torch.testing.assert_close(grad.double(), exact_grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(r2, r)
    try:
        soft_rank(x, backend="triton")                   # named explicitly: a clear error
    except ValueError as err:
        assert "could not be built here" in str(err) and "injected" in str(err), err
    else:
        raise AssertionError("backend='triton' should raise once the kernel failed")
    print("fallback ok", side)
    """
)


@pytest.mark.parametrize("side", ["forward", "backward"])
def test_a_failing_triton_kernel_warns_once_and_falls_back(side):
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, "-c", FAILURES, side], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert f"fallback ok {side}" in done.stdout


VERIFICATION = textwrap.dedent(
    """
    import os, sys, warnings, torch
    from softrank_ad import soft_rank
    from softrank_ad import rank
    from softrank_ad._kernels import reference, triton_kernel

    case = sys.argv[1]
    x = torch.randn(4, 30)
    if case == "correct":
        assert rank._pick_backend(x, 2.0, "auto") == "triton"
        verdict = triton_kernel.verify("cpu")
        assert verdict.ok and "checked out on cpu" in verdict.message, verdict
        print("verified:", verdict.message)
    elif case in ("wrong", "forced-on"):
        right = triton_kernel.forward
        triton_kernel.forward = lambda v, gamma: right(v, gamma) + 1.0   # runs, returns wrong ranks
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            r = soft_rank(x, gamma=2.0)
            r2 = soft_rank(x, gamma=2.0)
        # (The interpreter's NumPy also warns of exp overflow in the saturated sigmoid form.)
        messages = [str(w.message) for w in caught if "Triton kernel" in str(w.message)]
        if case == "wrong":
            assert len(messages) == 1, messages
            assert "returned wrong numbers on cpu" in messages[0] and "ranks 1" in messages[0], messages
            assert "torch backends instead" in messages[0], messages
            assert rank._pick_backend(x, 2.0, "auto") != "triton"
            torch.testing.assert_close(r, reference.forward(x, 2.0))      # the wrong kernel never ran
            torch.testing.assert_close(r2, r)
            # Named explicitly, it runs as asked.
            assert (soft_rank(x, gamma=2.0, backend="triton") - r).abs().min() > 0.5
        else:  # SOFTRANK_AD_TRITON=1: no check, the kernel is used as it is
            assert not messages, messages
            assert rank._pick_backend(x, 2.0, "auto") == "triton"
            torch.testing.assert_close(r, reference.forward(x, 2.0) + 1.0)
    elif case == "forced-off":
        assert rank._pick_backend(x, 2.0, "auto") != "triton" and "cpu" not in triton_kernel._verdicts
    print("verification ok", case)
    """
)


@pytest.mark.parametrize(
    ("case", "force"), [("correct", None), ("wrong", None), ("forced-on", "1"), ("forced-off", "0")]
)
def test_the_kernel_proves_itself_before_auto_trusts_it(case, force):
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    env.pop("SOFTRANK_AD_TRITON", None)
    if force is not None:
        env["SOFTRANK_AD_TRITON"] = force
    done = subprocess.run(
        [sys.executable, "-c", VERIFICATION, case], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert f"verification ok {case}" in done.stdout
