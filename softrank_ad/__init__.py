"""softrank_ad: SmaraAD adversarial distillation as drop-in PyTorch losses."""

from softrank_ad.rank import DEFAULT_GAMMA, SoftRank, soft_rank
from softrank_ad.spearman import SlackMatchingLoss, slack_matching_loss, soft_spearman
from softrank_ad.attribution import AttributionAlignmentLoss, grad_cam

__version__ = "0.1.0"

__all__ = [
    "AttributionAlignmentLoss",
    "DEFAULT_GAMMA",
    "SlackMatchingLoss",
    "SoftRank",
    "grad_cam",
    "slack_matching_loss",
    "soft_rank",
    "soft_spearman",
]
