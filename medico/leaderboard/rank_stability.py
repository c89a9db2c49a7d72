"""How firmly a ranking stands: the test images resampled with replacement, the teams ranked again by the task 1 rule
on each resample (:func:`~medico.leaderboard.ranking.segmentation_ranks`), and each team's rank distribution, median
and 95% interval, with Kendall's tau between the ranking and each resample's (Wiesenfarth et al. 2021, challengeR).

The resampling is seeded and paired (:func:`~medico.stats.per_image.resampled_means`: every team on the same images),
so the same scores and seed give the same intervals; numpy only (scipy is loaded for Kendall's tau alone), so a
hosted challenge's standings compute the intervals on every rebuild.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medico.leaderboard.ranking import segmentation_ranks
from medico.stats.per_image import CONFIDENCE, StatsError, order_statistic_interval, resampled_means

__all__ = ["RANK_RESAMPLES", "RankStability", "bootstrap_ranks", "kendall_taus"]

RANK_RESAMPLES = 1_000
"""Bootstrap resamples of a ranking, as challengeR draws them."""


@dataclass(frozen=True)
class RankStability:
    """The ranks of k teams on each of ``resamples`` bootstrap resamples of the images: ``ranks[b, t]`` is team t's
    rank on resample b."""

    ranks: np.ndarray
    confidence: float
    seed: int

    @property
    def resamples(self) -> int:
        return self.ranks.shape[0]

    def frequencies(self) -> np.ndarray:
        """``(k, k)``: the share of resamples in which team t took rank r + 1 (each row sums to 1)."""
        teams = self.ranks.shape[1]
        counts = np.stack([np.bincount(self.ranks[:, t] - 1, minlength=teams) for t in range(teams)])
        return counts / self.resamples

    def medians(self) -> list[float]:
        """Each team's median rank over the resamples."""
        return [float(value) for value in np.median(self.ranks, axis=0)]

    def intervals(self) -> list[tuple[int, int]]:
        """Each team's ``confidence`` rank interval: the percentile interval of its resampled ranks."""
        bounds = [order_statistic_interval(self.ranks[:, t], self.confidence) for t in range(self.ranks.shape[1])]
        return [(int(low), int(high)) for low, high in bounds]


def bootstrap_ranks(
    iou: np.ndarray,
    dice: np.ndarray,
    *,
    resamples: int = RANK_RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> RankStability:
    """Rank k teams on ``resamples`` bootstrap resamples of their n images by the task 1 rule (mean IoU, then mean
    Dice, equal pairs sharing a rank).

    Args:
        iou: per-image IoU, shape ``(k, n)``; ``dice``: per-image Dice, the same shape and order.
        resamples: bootstrap resamples; ``seed`` seeds them; ``confidence``: coverage of :meth:`intervals`.
    """
    iou, dice = np.asarray(iou, dtype=np.float64), np.asarray(dice, dtype=np.float64)
    if iou.ndim != 2 or iou.shape != dice.shape or iou.size == 0:
        raise StatsError(f"per-image scores: expected IoU and Dice of one shape (teams, images), got {iou.shape} and "
                         f"{dice.shape}")
    if resamples < 1:
        raise StatsError(f"resamples: expected a positive integer, got {resamples}")
    if not 0.0 < confidence < 1.0:
        raise StatsError(f"confidence: expected a fraction strictly between 0 and 1, got {confidence}")
    means = resampled_means(np.concatenate([iou, dice]), resamples, seed)
    teams = iou.shape[0]
    ranks = np.array([segmentation_ranks(row[:teams], row[teams:]) for row in means.tolist()], dtype=np.int64)
    return RankStability(ranks.reshape(resamples, teams), confidence, seed)


def kendall_taus(ranking: Sequence[int], resampled: np.ndarray) -> np.ndarray:
    """Kendall's tau (tau-b, ties allowed: :func:`scipy.stats.kendalltau`) between ``ranking`` and each row of
    ``resampled`` (shape ``(resamples, k)``); 1 where a resample ranks exactly as ``ranking``, NaN where either
    ranking puts every team on one rank (tau is undefined there)."""
    from scipy.stats import kendalltau

    return np.array([kendalltau(ranking, row).statistic for row in np.asarray(resampled)], dtype=np.float64)
