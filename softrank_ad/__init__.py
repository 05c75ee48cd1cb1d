"""softrank_ad: SmaraAD adversarial distillation as drop-in PyTorch losses."""

from softrank_ad.rank import DEFAULT_GAMMA, SoftRank, soft_rank
from softrank_ad.spearman import SlackMatchingLoss, slack_matching_loss, soft_spearman

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_GAMMA",
    "SlackMatchingLoss",
    "SoftRank",
    "slack_matching_loss",
    "soft_rank",
    "soft_spearman",
]
