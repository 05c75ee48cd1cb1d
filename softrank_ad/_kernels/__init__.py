"""Soft-rank backends behind one signature.

Every backend module exposes ``forward(x, gamma) -> ranks`` and
``backward(x, grad_ranks, gamma) -> grad_x`` on a contiguous 2-D tensor of shape (rows, n),
ranking along the last axis in ascending order with the 1/2 offset of ``soft_rank``. A backend
may also expose ``forward_saving(x, gamma) -> (ranks, saved)``, whose ``saved`` tensor (or None)
its ``backward(..., saved=saved)`` reuses (``native``: the order of each row it sorted). Only
``softrank_ad.rank`` imports them; it picks one per call.

Each also answers the dispatch table's questions (see ``softrank_ad.rank.AUTO_ORDER``):
``supports(x)`` (can it run on this tensor), ``available()`` (is it built and usable here),
``build_error()`` (why not, or None), ``worthwhile(x, gamma)`` (should ``auto`` pick it for this
input) and ``RUNS_ON`` (what ``supports`` accepts, in words).
"""


def always(*_args) -> bool:
    """For the questions a pure-torch backend always answers yes."""
    return True


def no_error() -> None:
    return None
