"""Deprecated module name (it read as ``torch.distributed``): use :mod:`softrank_ad.relational`."""

from softrank_ad import _deprecation
from softrank_ad.relational import DISTLoss, dist_loss, pearson

_deprecation.warn("the module softrank_ad.dist", "softrank_ad.relational", stacklevel=2)

__all__ = ["DISTLoss", "dist_loss", "pearson"]
