"""softrank_ad: differentiable soft-rank losses and adversarial-distillation objectives.

Layers (each imports only from those below it; docs/architecture.md draws them): ``_validate``,
``_deprecation``, ``_modes`` → ``_kernels`` → ``rank`` → the losses (``spearman``, ``kendall``,
``divergence``, ``relational``, ``attribution``) → ``diagnostics``, ``attacks`` → ``terms`` →
``engine`` → ``methods`` → ``registry``. This module re-exports the public names and defines
nothing but the deprecated aliases.
"""

from softrank_ad import _deprecation, terms
from softrank_ad._version import __version__
from softrank_ad.attacks import CWMarginLoss, cw_margin_loss, pgd
from softrank_ad.attribution import (
    AlignmentResult,
    AttributionAlignmentLoss,
    GradCAM,
    attribution_alignment_loss,
    grad_cam,
)
from softrank_ad.diagnostics import GammaReport, suggest_gamma
from softrank_ad.divergence import IGDMLoss, KLDivergenceLoss, igdm_loss, kl_divergence, standardize
from softrank_ad.engine import Attack, DistillationObjective
from softrank_ad.kendall import KendallMatchingLoss, SoftKendall, kendall_matching_loss, soft_kendall
from softrank_ad.methods import (
    AdaADObjective,
    AdaIADObjective,
    ARDObjective,
    IADObjective,
    Method,
    RSLADObjective,
    SAADObjective,
    SmaraADObjective,
    SmaraADPlusPlusObjective,
)
from softrank_ad.rank import DEFAULT_GAMMA, SoftRank, soft_rank
from softrank_ad.registry import OBJECTIVES, make_objective, official_options
from softrank_ad.relational import DISTLoss, dist_loss
from softrank_ad.spearman import SlackMatchingLoss, SoftSpearman, dcg_weights, slack_matching_loss, soft_spearman

__getattr__ = _deprecation.module_getattr(
    "softrank_ad",
    {
        "Alignment": ("softrank_ad.AlignmentResult (softrank_ad.terms.Alignment is the term)", lambda: AlignmentResult),
    },
)

__all__ = [
    "DEFAULT_GAMMA",
    "OBJECTIVES",
    "ARDObjective",
    "AdaADObjective",
    "AdaIADObjective",
    "AlignmentResult",
    "Attack",
    "AttributionAlignmentLoss",
    "CWMarginLoss",
    "DISTLoss",
    "DistillationObjective",
    "GammaReport",
    "GradCAM",
    "IADObjective",
    "IGDMLoss",
    "KLDivergenceLoss",
    "KendallMatchingLoss",
    "Method",
    "RSLADObjective",
    "SAADObjective",
    "SlackMatchingLoss",
    "SmaraADObjective",
    "SmaraADPlusPlusObjective",
    "SoftKendall",
    "SoftRank",
    "SoftSpearman",
    "__version__",
    "attribution_alignment_loss",
    "cw_margin_loss",
    "dcg_weights",
    "dist_loss",
    "grad_cam",
    "igdm_loss",
    "kendall_matching_loss",
    "kl_divergence",
    "make_objective",
    "official_options",
    "pgd",
    "slack_matching_loss",
    "soft_kendall",
    "soft_rank",
    "soft_spearman",
    "standardize",
    "suggest_gamma",
    "terms",
]
