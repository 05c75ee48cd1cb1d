"""Soft-rank backends behind one signature.

Every backend module exposes ``forward(x, gamma) -> ranks`` and
``backward(x, grad_ranks, gamma) -> grad_x`` on a contiguous 2-D tensor of shape (rows, n),
ranking along the last axis in ascending order with the 1/2 offset of ``soft_rank``. Only
``softrank_ad.rank`` imports them; it picks one per call.
"""
