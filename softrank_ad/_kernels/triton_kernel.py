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
"""

from __future__ import annotations

import os
from contextlib import nullcontext

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


def _blocks(n: int) -> tuple[int, int]:
    # Small rows fit one tile; long rows use 64×128 tiles (a few KB of registers per program).
    width = triton.next_power_of_2(max(n, 16))
    return min(width, 64), min(width, 128)


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


def worthwhile(x: torch.Tensor, gamma: float) -> bool:
    return True


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
    block_i, block_j = _blocks(n)
    try:
        # Launches go to the current CUDA device unless told otherwise: make it x's.
        with torch.cuda.device(x.device) if x.is_cuda else nullcontext():
            kernel[(rows, triton.cdiv(n, block_i))](
                *inputs, out, n, gamma, BLOCK_I=block_i, BLOCK_J=block_j, ROW_END=triton.cdiv(n, block_j) * block_j
            )
    except Exception as err:  # noqa: BLE001 - any compile or launch error means: not here
        _failure = f"the Triton kernel failed to compile or launch on {x.device}: {type(err).__name__}: {err}"
        raise KernelFailure(_failure) from err
    return out


def forward(x: torch.Tensor, gamma: float) -> torch.Tensor:
    return _launch(_forward_kernel, (x,), gamma)


def backward(x: torch.Tensor, grad: torch.Tensor, gamma: float) -> torch.Tensor:
    return _launch(_backward_kernel, (x, grad), gamma)
