"""The same scores ranked by other methods than the challenge's: a ranking that changes with the aggregation (mean or
median, metric-based or case-based) is a ranking to quote with care (Maier-Hein et al., Nat Commun 2018)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medico.leaderboard.ranking import segmentation_ranks

__all__ = ["METHODS", "ranks_by_method"]

METHODS = {
    "mean mIoU": "the challenge's rule: mean IoU over the images, then mean Dice",
    "median mIoU": "median IoU over the images, then median Dice",
    "rank then mean": "the teams ranked on each image by its IoU (ties share the better rank), then by mean rank",
    "mean Dice": "mean Dice over the images, then mean IoU",
    "test then rank": "1 + the number of teams significantly better (one-sided Wilcoxon on IoU, Holm-adjusted)",
}
"""Each ranking method, by the name the report shows, and what it does."""


def ranks_by_method(
    iou: np.ndarray, dice: np.ndarray, final: Sequence[int], test_then_rank: Sequence[int]
) -> dict[str, list[int]]:
    """Each team's rank under each of :data:`METHODS`, from per-image ``iou`` and ``dice`` (shape ``(teams,
    images)``), the ``final`` ranks (the challenge's rule, as the standings rank the stored means) and the ranks the
    pairwise tests imply (:meth:`~medico.stats.pairwise.PairwiseTests.test_then_rank`)."""
    from scipy.stats import rankdata

    per_image = rankdata(-iou, axis=0, method="min")  # rank 1: the best IoU on that image
    mean_rank = per_image.mean(axis=1)
    return {
        "mean mIoU": list(final),
        "median mIoU": segmentation_ranks(np.median(iou, axis=1).tolist(), np.median(dice, axis=1).tolist()),
        "rank then mean": [int(rank) for rank in rankdata(mean_rank, method="min")],
        "mean Dice": segmentation_ranks(dice.mean(axis=1).tolist(), iou.mean(axis=1).tolist()),
        "test then rank": list(test_then_rank),
    }
