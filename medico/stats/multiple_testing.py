"""Multiple testing: p-values adjusted so that a family of tests keeps its error rate (Holm's step-down method).

scipy has no Holm adjustment (``scipy.stats.false_discovery_control`` controls the false discovery rate, a weaker
promise): it is written here, and checked by hand in the tests.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["holm"]


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values (Holm 1979): the i-th smallest of m is multiplied by m - i + 1, made non-decreasing
    in that order and capped at 1; rejecting those below alpha keeps the family-wise error rate at alpha.

    Args:
        p_values: the family's raw p-values, any shape; NaN values are left out of the family and stay NaN.

    Returns:
        The adjusted p-values, in the same shape and places.

    >>> holm([0.01, 0.04, 0.03, 0.005]).tolist()
    [0.03, 0.06, 0.06, 0.02]
    """
    raw = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(raw.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(raw))
    ordered = tested[np.argsort(raw.flat[tested], kind="stable")]
    factors = len(ordered) - np.arange(len(ordered))
    adjusted.flat[ordered] = np.minimum(np.maximum.accumulate(raw.flat[ordered] * factors), 1.0)
    return adjusted
