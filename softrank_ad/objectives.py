"""Deprecated module (0.1): the engine, the methods and the registry now have modules of their
own, :mod:`softrank_ad.engine`, :mod:`softrank_ad.methods` and :mod:`softrank_ad.registry`;
every name is also at the top level (``from softrank_ad import make_objective``)."""

from softrank_ad import _deprecation
from softrank_ad.engine import Attack, DistillationObjective
from softrank_ad.methods import (
    AdaADObjective,
    ARDObjective,
    RSLADObjective,
    SmaraADObjective,
    SmaraADPlusPlusObjective,
)
from softrank_ad.registry import OBJECTIVES, make_objective

_deprecation.warn(
    "the module softrank_ad.objectives",
    "softrank_ad.engine, softrank_ad.methods, softrank_ad.registry or the top-level names",
    stacklevel=2,
)

__all__ = [
    "OBJECTIVES",
    "ARDObjective",
    "AdaADObjective",
    "Attack",
    "DistillationObjective",
    "RSLADObjective",
    "SmaraADObjective",
    "SmaraADPlusPlusObjective",
    "make_objective",
]
