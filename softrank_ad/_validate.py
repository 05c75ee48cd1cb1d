"""Argument checks shared by every public function.

Each check raises a ``ValueError`` (bad value or shape) or ``TypeError`` (bad type or dtype)
whose message names the argument, what was received and what was expected, so that bad input
never surfaces as an obscure error deep inside torch.
"""

from __future__ import annotations

import math
from typing import TypeGuard

import torch

# Both modules are loaded by ``import torch`` already; imported here once, not in every is_traced.
from torch._subclasses.fake_tensor import FakeTensor
from torch._subclasses.functional_tensor import FunctionalTensor

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
REDUCTIONS = ("mean", "sum", "none")


def is_traced(x: torch.Tensor) -> bool:
    """Whether this call is being traced (``torch.compile``'s Dynamo, or ``torch.export`` and
    ``make_fx`` running on fake or functional tensors), decided from this call and its tensor.

    Data-dependent checks (``isfinite(...).all()``) force a host sync and break a
    ``torch.compile(fullgraph=True)`` graph, so they are skipped while tracing. Not
    ``torch.compiler.is_compiling()``: that is one process-wide flag, True in every thread while
    any thread compiles, which would switch checks off in eager calls running beside a compile.
    """
    if torch.compiler.is_dynamo_compiling():
        return True
    return isinstance(x, (FakeTensor, FunctionalTensor)) or torch._is_functional_tensor(x)


def check_tensor(x: object, name: str) -> torch.Tensor:
    """``x`` must be a floating-point tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in _FLOAT_DTYPES:
        raise TypeError(
            f"{name} must have a floating dtype (float16, bfloat16, float32 or float64), "
            f"got {x.dtype}; convert integer or bool input with .float() first"
        )
    return x


def check_finite(x: torch.Tensor, name: str) -> None:
    """``x`` must hold no NaN or infinity (skipped while this call is traced)."""
    if is_traced(x):
        return
    x = x.detach()  # a check, not part of the graph
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(
            f"{name} contains {bad} non-finite value(s) (NaN or inf); ranks of such values are "
            "undefined. Pass check_finite=False to skip this check."
        )


def check_all_finite(*inputs: tuple[torch.Tensor, str]) -> None:
    """:func:`check_finite` for several tensors with one device sync in all; each input is swept
    again only once the joint check has failed, to name the culprit. Skipped while traced."""
    if not inputs or is_traced(inputs[0][0]):
        return
    ok = torch.stack([torch.isfinite(x.detach()).all() for x, _ in inputs]).all()
    if bool(ok):
        return
    for x, name in inputs:
        check_finite(x, name)


def check_finite_from(result: torch.Tensor, *inputs: tuple[torch.Tensor, str]) -> None:
    """:func:`check_finite` folded into a computation whose output is NaN wherever an input is
    NaN or inf (a soft rank's is: the pair (i, i) gives σ(inf − inf)). One reduction over
    ``result`` replaces a sweep over each input; the inputs are swept only once it has failed, to
    name the culprit. Skipped while traced."""
    if is_traced(result) or not math.isnan(result.detach().sum().item()):  # .item(): one op fewer
        return
    for x, name in inputs:
        check_finite(x, name)
    raise RuntimeError("soft ranks came out NaN from finite input; please report this as a bug")


def check_images(x: object, name: str) -> torch.Tensor:
    """``x`` must be a non-empty floating (B, ...) batch with finite values in [0, 1] (one host
    sync; the value checks are skipped under ``torch.compile``)."""
    x = check_tensor(x, name)
    if x.dim() < 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty batch (B, ...), got shape {tuple(x.shape)}")
    if is_traced(x):
        return x
    detached = x.detach()
    lo, hi = torch.stack([detached.amin(), detached.amax()]).float().tolist()  # NaN propagates
    if not (math.isfinite(lo) and math.isfinite(hi)):
        bad = int((~torch.isfinite(detached)).sum())
        raise ValueError(f"{name} contains {bad} non-finite value(s) (NaN or inf); inputs must be images in [0, 1]")
    if lo < 0 or hi > 1:
        raise ValueError(
            f"{name} must lie in [0, 1] (the ε-ball and clipping are in pixel space), got values in "
            f"[{lo:.3g}, {hi:.3g}]; put any normalisation inside the model as its first layer"
        )
    return x


_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def check_labels(labels: object, batch: int, classes: int | None, name: str) -> torch.Tensor:
    """``labels`` must be a (batch,) integer tensor with values in [0, classes) (one host sync);
    returned as int64, the dtype torch's losses and indexing need."""
    if not isinstance(labels, torch.Tensor) or labels.dtype not in _INT_DTYPES:
        got = labels.dtype if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise TypeError(f"{name} must be an integer tensor of class indices, got {got}")
    if labels.shape != (batch,):
        raise ValueError(f"{name} must have shape ({batch},) to match the batch, got {tuple(labels.shape)}")
    if batch and classes is not None and not is_traced(labels):
        lo, hi = torch.stack(list(torch.aminmax(labels.detach().long()))).tolist()
        if lo < 0 or hi >= classes:
            raise ValueError(f"{name} holds classes outside [0, {classes}): min {lo}, max {hi}")
    return labels.long()


def check_int(value: object, name: str, minimum: int = 0) -> int:
    """``value`` must be an int (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_positive(value: object, name: str) -> float:
    """``value`` must be a finite real number > 0."""
    if not _is_real(value):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if not 0 < value < math.inf:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return float(value)


def check_dim(x: torch.Tensor, dim: int, name: str) -> int:
    """Normalise ``dim`` for ``x`` and return it as a non-negative index."""
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"dim must be an int, got {type(dim).__name__}")
    if x.dim() == 0:
        raise ValueError(f"{name} must have at least one dimension, got a 0-d tensor")
    if not -x.dim() <= dim < x.dim():
        raise ValueError(
            f"dim={dim} is out of range for {name} of shape {tuple(x.shape)} (expected -{x.dim()} <= dim < {x.dim()})"
        )
    return dim % x.dim()


def check_gamma(gamma: object, dtype: torch.dtype = torch.float64) -> float:
    """γ must be a positive real number that ``dtype`` (the dtype ranks are computed in) can
    hold: beyond its largest finite value γ becomes inf there and gradients become NaN."""
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)):
        raise TypeError(f"gamma must be a positive float, got {type(gamma).__name__}")
    limit = torch.finfo(dtype).max
    try:
        value = float(gamma)
    except OverflowError:  # an int beyond float64
        value = math.inf
    if not math.isfinite(value) or not 0 < value <= limit:
        shown = f"{gamma:.3g}" if isinstance(gamma, float) else f"an int of {int(gamma).bit_length()} bits"
        raise ValueError(
            f"gamma must be finite and > 0, and at most {limit:.3g} (the largest {dtype} value), got {shown}"
        )
    return value


def _is_real(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_non_negative(value: object, name: str) -> float:
    """``value`` must be a finite real number >= 0."""
    if not _is_real(value) or not 0 <= value < math.inf:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def check_unit_interval(value: object, name: str) -> float:
    """``value`` must be a real number in [0, 1]."""
    if not _is_real(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    return float(value)


def check_same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def check_logit_shapes(z_s: torch.Tensor, z_t: torch.Tensor) -> None:
    if z_s.shape != z_t.shape:
        raise ValueError(
            f"student and teacher must output logits of the same shape (the same classes), got "
            f"student {tuple(z_s.shape)} and teacher {tuple(z_t.shape)}"
        )


def check_reduction(reduction: object) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction  # type: ignore[return-value]


def check_choice(value: object, name: str, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    """Apply a torch-style ``reduction`` to per-sample ``values``."""
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    return values
