"""Fused Triton backend for CUDA: pairwise sigmoids computed in registers, never stored.

Each program owns one row and a block of BLOCK_I entries of it, and sweeps the row in tiles of
BLOCK_J, so global memory traffic is O(n) per row and the (rows, n, n) matrix never exists.
The sweeps run to ROW_END, n rounded up to whole tiles, a compile-time constant (one compile per
tile count; masks handle the tail): a loop bounded by the runtime ``n`` fails in Triton 3.6's
interpreter under current NumPy, which holds runtime scalars as 1-element arrays and will not
turn them into the Python int a loop bound needs.

Forward:  r_i = 1/2 + Σ_j σ(γ (v_i − v_j))
Backward: ∂L/∂v_k = γ Σ_j σ'(γ (v_k − v_j)) (g_k − g_j)

One exponential per entry, not per pair (as in the CPU kernel): with E_k = exp(γ (v_k − c)),
σ(γ (v_i − v_j)) = E_i / (E_i + E_j) and σ' = E_i E_j / (E_i + E_j)², so a tile costs BLOCK_J
exponentials and one reciprocal per pair instead of an exponential and a division per pair.
c is the middle of the row's range, found in a first sweep; where γ times the range passes
``_RATIO_SPREAD`` some E would over- or underflow float32, and the row takes the sigmoid form.
Each unordered pair is still computed twice (once from each side): a program cannot add into
another program's entries without atomics, and a tile's lanes run in lockstep, so skipping the
lower triangle of a tile would idle half of them rather than save time.

Importing this module needs ``triton``; ``softrank_ad.rank`` imports it lazily and falls back to
the torch backends when it is missing. With ``TRITON_INTERPRET=1`` the kernels also run on CPU
tensors (slowly), which is how CI tests them.

**Trusted only once verified.** ``backend="auto"`` takes this kernel on a device only after it has
proved itself there: the first automatic call on each device runs forward and backward on a
small fixed input that covers both forms (:func:`verify`, milliseconds, once per process) and
compares them with the float64 reference. A mismatch beyond tolerance, or an exception, warns
once with the numbers and sends that device to the torch backends for the rest of the process;
a kernel that ran and returned wrong numbers never reaches a training step. The environment
variable ``SOFTRANK_AD_TRITON`` overrides this: ``0`` never picks Triton automatically, ``1``
picks it without verifying. A call that names ``backend="triton"`` runs it as asked.
"""

from __future__ import annotations

import os
import warnings
from contextlib import nullcontext
from typing import NamedTuple

import torch
import triton
import triton.language as tl

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"

# E = exp(γ (v − c)) stays within exp(±75) for rows with γ·range ≤ 150: no float32 overflow in
# E_i + E_j (≤ 2e^75 ≈ 7e32), and no E in the subnormal range.
_RATIO_SPREAD = tl.constexpr(150.0)


@triton.jit
def _row_centre(x_ptr, base, n, gamma, BLOCK_J: tl.constexpr, ROW_END: tl.constexpr):
    """The middle c of the row's range, and whether γ·range allows the ratio form."""
    lo = tl.full([BLOCK_J], float("inf"), tl.float32)
    hi = tl.full([BLOCK_J], float("-inf"), tl.float32)
    for start in range(0, ROW_END, BLOCK_J):
        offs_j = start + tl.arange(0, BLOCK_J)
        mask_j = offs_j < n
        v_j = tl.load(x_ptr + base + offs_j, mask=mask_j, other=0.0).to(tl.float32)
        lo = tl.minimum(lo, tl.where(mask_j, v_j, float("inf")))
        hi = tl.maximum(hi, tl.where(mask_j, v_j, float("-inf")))
    low = tl.min(lo, axis=0)
    high = tl.max(hi, axis=0)
    return low + (high - low) * 0.5, gamma * (high - low) <= _RATIO_SPREAD


@triton.jit
def _tile(ptr, base, start, n, BLOCK_J: tl.constexpr):
    """Entries start … start + BLOCK_J of a row, in float32, and which of them exist."""
    offs_j = start + tl.arange(0, BLOCK_J)
    mask_j = offs_j < n
    return tl.load(ptr + base + offs_j, mask=mask_j, other=0.0).to(tl.float32), mask_j


@triton.jit
def _pair_sigmoids(v_i, e_i, v_j, centre, gamma, ratio):
    """σ(γ (v_i − v_j)) for a BLOCK_I × BLOCK_J tile: E_i / (E_i + E_j) where the row allows it
    (one exponential per entry of the tile), else the sigmoid of every pair."""
    if ratio:
        e_j = tl.exp(gamma * (v_j - centre))
        s = e_i[:, None] / (e_i[:, None] + e_j[None, :])
    else:
        s = tl.sigmoid(gamma * (v_i[:, None] - v_j[None, :]))
    return s


@triton.jit
def _forward_kernel(x_ptr, out_ptr, n, gamma, BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr, ROW_END: tl.constexpr):
    row = tl.program_id(0)
    offs_i = tl.program_id(1) * BLOCK_I + tl.arange(0, BLOCK_I)
    mask_i = offs_i < n
    base = row.to(tl.int64) * n
    v_i = tl.load(x_ptr + base + offs_i, mask=mask_i, other=0.0).to(tl.float32)
    centre, ratio = _row_centre(x_ptr, base, n, gamma, BLOCK_J, ROW_END)
    e_i = tl.exp(gamma * (v_i - centre))  # used only where ratio holds, and finite there
    acc = tl.zeros([BLOCK_I], dtype=tl.float32)
    for start in range(0, ROW_END, BLOCK_J):
        v_j, mask_j = _tile(x_ptr, base, start, n, BLOCK_J)
        s = _pair_sigmoids(v_i, e_i, v_j, centre, gamma, ratio)
        acc += tl.sum(tl.where(mask_j[None, :], s, 0.0), axis=1)
    tl.store(out_ptr + base + offs_i, acc + 0.5, mask=mask_i)


@triton.jit
def _backward_kernel(
    x_ptr, g_ptr, out_ptr, n, gamma, BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr, ROW_END: tl.constexpr
):
    row = tl.program_id(0)
    offs_i = tl.program_id(1) * BLOCK_I + tl.arange(0, BLOCK_I)
    mask_i = offs_i < n
    base = row.to(tl.int64) * n
    v_i = tl.load(x_ptr + base + offs_i, mask=mask_i, other=0.0).to(tl.float32)
    g_i = tl.load(g_ptr + base + offs_i, mask=mask_i, other=0.0).to(tl.float32)
    centre, ratio = _row_centre(x_ptr, base, n, gamma, BLOCK_J, ROW_END)
    e_i = tl.exp(gamma * (v_i - centre))
    acc = tl.zeros([BLOCK_I], dtype=tl.float32)
    for start in range(0, ROW_END, BLOCK_J):
        v_j, mask_j = _tile(x_ptr, base, start, n, BLOCK_J)
        g_j, _ = _tile(g_ptr, base, start, n, BLOCK_J)
        s = _pair_sigmoids(v_i, e_i, v_j, centre, gamma, ratio)
        term = s * (1.0 - s) * (g_i[:, None] - g_j[None, :])  # σ' = σ (1 − σ) in either form
        acc += tl.sum(tl.where(mask_j[None, :], term, 0.0), axis=1)
    tl.store(out_ptr + base + offs_i, gamma * acc, mask=mask_i)


def _shape(rows: int, n: int) -> tuple[tuple[int, int], dict[str, int]]:
    """The launch grid and the tile constants for ``rows`` rows of ``n``. Small rows fit one
    tile; long rows use 64×128 tiles (a few KB of registers per program)."""
    width = triton.next_power_of_2(max(n, 16))
    block_i, block_j = min(width, 64), min(width, 128)
    grid = (rows, triton.cdiv(n, block_i))
    return grid, {"BLOCK_I": block_i, "BLOCK_J": block_j, "ROW_END": triton.cdiv(n, block_j) * block_j}


# Two warps per program, not Triton's default four: on an H200 (benchmarks/triton_tiles.py,
# 2026-12-04) two were fastest or level at every size of the GPU grid, forward 1.4-1.8x and
# backward 1.5-1.9x faster than four at n = 100 and 1,000 with B = 128 to 65,536.
_WARPS = 2


RUNS_ON = "CUDA float32 tensors"


def supports(x: torch.Tensor) -> bool:
    """CUDA float32 tensors (float64 stays on the torch backends); CPU too when interpreting."""
    return x.dtype == torch.float32 and (x.is_cuda or INTERPRET)


class KernelFailure(RuntimeError):
    """The kernel failed to compile or launch here (an unsupported GPU, a broken toolchain)."""


_failure: str | None = None  # set by the first failed compile or launch; the kernel is then unavailable


def available() -> bool:
    # Importing this module needed triton; the kernels compile on first launch, and a failure
    # there switches them off for the rest of the process.
    return _failure is None


def build_error() -> str | None:
    return _failure


class Verdict(NamedTuple):
    """The outcome of :func:`verify` on one device."""

    ok: bool
    message: str


#: Forced on or off by SOFTRANK_AD_TRITON ("1" / "0"); unset: verify each device first.
FORCE_ENV = "SOFTRANK_AD_TRITON"
#: Float32 kernels against the float64 reference, on inputs whose ranks reach 301.
RANK_TOLERANCE = 2e-3
GRAD_TOLERANCE = 2e-3

_verdicts: dict[str, Verdict] = {}


def _verification_inputs(device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
    # Fixed, not random: the same check everywhere. Short rows in the exponential-ratio form,
    # a long row with γ·range beyond 150 in the sigmoid form, and a tail that is not a whole tile.
    k = torch.arange(4 * 37, dtype=torch.float64)
    short = (torch.sin(k * 0.731) * 3).reshape(4, 37)
    j = torch.arange(301, dtype=torch.float64)
    long = (torch.cos(j * 1.37) * 4 + j / 301).reshape(1, 301)
    grads = [torch.cos(t * 0.5 + 1) for t in (short, long)]
    return [
        (x.float().to(device), g.float().to(device), gamma)
        for x, g, gamma in ((short, grads[0], 1.5), (long, grads[1], 40.0))
    ]


def verify(device: torch.device | str) -> Verdict:
    """Run the kernels on a small fixed input on ``device`` and compare forward and backward
    with the float64 reference (both forms of the kernel, one row that is not a whole tile).
    The verdict is cached per device; a failed one warns once."""
    from softrank_ad._kernels import reference

    key = str(torch.device(device))
    if key in _verdicts:
        return _verdicts[key]
    worst = {"ranks": 0.0, "gradients": 0.0}
    try:
        with warnings.catch_warnings():
            # The interpreter's NumPy warns of exp overflow in the saturated sigmoid form: expected.
            warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
            for x, g, gamma in _verification_inputs(torch.device(device)):
                ranks, grad = forward(x, gamma), backward(x, g, gamma)
                exact_ranks = reference.forward(x.double(), gamma)
                exact_grad = reference.backward(x.double(), g.double(), gamma)
                worst["ranks"] = max(worst["ranks"], (ranks.double() - exact_ranks).abs().max().item())
                worst["gradients"] = max(worst["gradients"], (grad.double() - exact_grad).abs().max().item())
    except Exception as err:  # noqa: BLE001 - any failure here means: do not trust it on this device
        verdict = Verdict(False, f"the Triton kernel failed its check on {key}: {type(err).__name__}: {err}")
    else:
        bad = worst["ranks"] > RANK_TOLERANCE or worst["gradients"] > GRAD_TOLERANCE  # NaN is bad too
        bad = bad or not all(v == v for v in worst.values())
        summary = (
            f"max abs error against the float64 reference: ranks {worst['ranks']:.3g} (tolerance "
            f"{RANK_TOLERANCE:g}), gradients {worst['gradients']:.3g} (tolerance {GRAD_TOLERANCE:g})"
        )
        verdict = Verdict(
            not bad, f"the Triton kernel {'returned wrong numbers' if bad else 'checked out'} on {key}: {summary}"
        )
    _verdicts[key] = verdict
    if not verdict.ok:
        warnings.warn(
            f"{verdict.message}; soft_rank uses the torch backends instead on {key} (set "
            f"{FORCE_ENV}=1 to use Triton anyway)",
            RuntimeWarning,
            stacklevel=2,
        )
    return verdict


def trusted(device: torch.device) -> bool:
    """Whether ``auto`` may pick the kernel on ``device`` without running anything: verified
    there already, or forced on."""
    force = os.environ.get(FORCE_ENV)
    if force in ("0", "1"):
        return force == "1"
    verdict = _verdicts.get(str(device))
    return verdict is not None and verdict.ok


def worthwhile(x: torch.Tensor, gamma: float) -> bool:
    """``auto`` takes the kernel on a device that it has been verified on (the first call there
    verifies it), unless ``SOFTRANK_AD_TRITON`` says otherwise."""
    if not supports(x):
        return False  # nothing to verify on a device it cannot run on
    force = os.environ.get(FORCE_ENV)
    if force in ("0", "1"):
        return force == "1"
    return verify(x.device).ok


def _launch(kernel, inputs: tuple[torch.Tensor, ...], gamma: float) -> torch.Tensor:
    """``kernel`` over the rows of ``inputs[0]``: out = kernel(*inputs, out, n, γ)."""
    global _failure
    # The kernels index rows as base = row · n: they need contiguous rows.
    inputs = tuple(t.contiguous() for t in inputs)
    x = inputs[0]
    rows, n = x.shape
    out = torch.empty_like(x)
    if not x.numel():
        return out
    grid, tiles = _shape(rows, n)
    try:
        # Launches go to the current CUDA device unless told otherwise: make it x's.
        with torch.cuda.device(x.device) if x.is_cuda else nullcontext():
            kernel[grid](*inputs, out, n, gamma, **tiles, num_warps=_WARPS)
    except Exception as err:  # noqa: BLE001 - any compile or launch error means: not here
        _failure = f"the Triton kernel failed to compile or launch on {x.device}: {type(err).__name__}: {err}"
        raise KernelFailure(_failure) from err
    return out


def forward(x: torch.Tensor, gamma: float) -> torch.Tensor:
    return _launch(_forward_kernel, (x,), gamma)


def backward(x: torch.Tensor, grad: torch.Tensor, gamma: float) -> torch.Tensor:
    return _launch(_backward_kernel, (x, grad), gamma)
