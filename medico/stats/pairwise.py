"""Every model against every other on the same images: one-sided Wilcoxon signed-rank tests for each ordered pair,
Holm-adjusted as one family, and the ranking they imply (test, then rank: a model's rank is one more than the number
of models significantly better than it), as challengeR's significance maps draw it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medico.stats.multiple_testing import holm
from medico.stats.per_image import StatsError, wilcoxon_signed_rank

__all__ = ["ALPHA", "PairwiseTests", "pairwise_wilcoxon"]

ALPHA = 0.05
"""The family-wise error rate of the pairwise tests."""


@dataclass(frozen=True)
class PairwiseTests:
    """One-sided tests of row model > column model on paired per-image scores (diagonals are NaN / False).

    ``p_values``: raw, ``adjusted``: Holm-adjusted over all ordered pairs, ``significant``: adjusted below ``alpha``;
    each a ``(k, k)`` array, row i column j testing whether model i scores higher than model j.
    """

    p_values: np.ndarray
    adjusted: np.ndarray
    significant: np.ndarray
    alpha: float

    def test_then_rank(self) -> list[int]:
        """Each model's rank: 1 + the number of models significantly better than it (several may share rank 1)."""
        return [1 + int(count) for count in self.significant.sum(axis=0)]


def pairwise_wilcoxon(scores: np.ndarray, alpha: float = ALPHA) -> PairwiseTests:
    """Test every ordered pair of rows of ``scores`` (shape ``(k, n)``: k models on the same n images) with a
    one-sided Wilcoxon signed-rank test (zero differences dropped:
    :func:`~medico.stats.per_image.wilcoxon_signed_rank`), then adjust the k(k-1) p-values together by Holm's method."""
    matrix = np.asarray(scores, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise StatsError(f"scores: expected shape (models, images) with at least one image, got {matrix.shape}")
    if not 0.0 < alpha < 1.0:
        raise StatsError(f"alpha: expected a fraction strictly between 0 and 1, got {alpha}")
    k = matrix.shape[0]
    p_values = np.full((k, k), np.nan)
    for i in range(k):
        for j in range(k):
            if i != j:
                p_values[i, j] = wilcoxon_signed_rank(matrix[i] - matrix[j], "greater")[2]
    adjusted = holm(p_values)
    return PairwiseTests(p_values, adjusted, np.nan_to_num(adjusted, nan=1.0) < alpha, alpha)
