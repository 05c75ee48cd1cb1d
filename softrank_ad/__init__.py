"""softrank_ad: SmaraAD adversarial distillation as drop-in PyTorch losses.

Layers (each imports only from those above it): ``_validate`` and ``_modes`` → ``rank`` (with
``_kernels``) → ``spearman``; ``attribution``; ``attacks``; ``objectives``. This module
re-exports the public names and defines nothing.
"""

from softrank_ad.attacks import cw_margin_loss, pgd
from softrank_ad.attribution import Alignment, AttributionAlignmentLoss, attribution_alignment_loss, grad_cam
from softrank_ad.objectives import (
    ARDObjective,
    AdaADObjective,
    DistillationObjective,
    RSLADObjective,
    SmaraADObjective,
    SmaraADPlusPlusObjective,
    kl_divergence,
    make_objective,
)
from softrank_ad.rank import DEFAULT_GAMMA, SoftRank, soft_rank
from softrank_ad.spearman import SlackMatchingLoss, dcg_weights, slack_matching_loss, soft_spearman

__version__ = "0.1.0"

__all__ = [
    "ARDObjective",
    "Alignment",
    "AdaADObjective",
    "AttributionAlignmentLoss",
    "DEFAULT_GAMMA",
    "DistillationObjective",
    "RSLADObjective",
    "SlackMatchingLoss",
    "SmaraADObjective",
    "SmaraADPlusPlusObjective",
    "SoftRank",
    "attribution_alignment_loss",
    "cw_margin_loss",
    "dcg_weights",
    "grad_cam",
    "kl_divergence",
    "make_objective",
    "pgd",
    "slack_matching_loss",
    "soft_rank",
    "soft_spearman",
]
