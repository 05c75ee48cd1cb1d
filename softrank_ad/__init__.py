"""softrank_ad: SmaraAD adversarial distillation as drop-in PyTorch losses.

Layers (each imports only from those above it): ``_validate`` and ``_modes`` → ``rank`` (with
``_kernels``) → ``spearman``, ``kendall``; ``divergence`` → ``dist``; ``attribution``;
``diagnostics``; ``attacks``; ``terms`` → ``objectives``. This module re-exports the public names
and defines nothing.
"""

from softrank_ad import terms
from softrank_ad.attacks import cw_margin_loss, pgd
from softrank_ad.attribution import Alignment, AttributionAlignmentLoss, attribution_alignment_loss, grad_cam
from softrank_ad.diagnostics import GammaReport, suggest_gamma
from softrank_ad.dist import DISTLoss, dist_loss
from softrank_ad.divergence import IGDMLoss, igdm_loss, kl_divergence, standardize
from softrank_ad.kendall import KendallMatchingLoss, kendall_matching_loss, soft_kendall
from softrank_ad.objectives import (
    ARDObjective,
    AdaADObjective,
    Attack,
    DistillationObjective,
    RSLADObjective,
    SmaraADObjective,
    SmaraADPlusPlusObjective,
    make_objective,
)
from softrank_ad.rank import DEFAULT_GAMMA, SoftRank, soft_rank
from softrank_ad.spearman import SlackMatchingLoss, dcg_weights, slack_matching_loss, soft_spearman

__version__ = "0.1.0"

__all__ = [
    "ARDObjective",
    "AdaADObjective",
    "Alignment",
    "Attack",
    "AttributionAlignmentLoss",
    "DEFAULT_GAMMA",
    "DISTLoss",
    "DistillationObjective",
    "GammaReport",
    "IGDMLoss",
    "KendallMatchingLoss",
    "RSLADObjective",
    "SlackMatchingLoss",
    "SmaraADObjective",
    "SmaraADPlusPlusObjective",
    "SoftRank",
    "attribution_alignment_loss",
    "cw_margin_loss",
    "dcg_weights",
    "dist_loss",
    "grad_cam",
    "igdm_loss",
    "kendall_matching_loss",
    "kl_divergence",
    "make_objective",
    "pgd",
    "slack_matching_loss",
    "soft_kendall",
    "soft_rank",
    "soft_spearman",
    "standardize",
    "suggest_gamma",
    "terms",
]
