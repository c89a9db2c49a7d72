"""Statistics that make a score honest: spread and a bootstrap interval over images, and paired tests of two models.

Everything here is a pure function of per-image score vectors. Bootstrap resampling uses a seeded
:func:`numpy.random.default_rng`, so the same scores and seed give the same interval on any machine. Intervals are
percentile intervals read off order statistics chosen symmetrically (the k-th smallest and k-th largest resampled
mean), so swapping the two sides of a paired comparison negates its interval exactly.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from medico.errors import MedicoError

__all__ = [
    "CONFIDENCE",
    "RESAMPLES",
    "Interval",
    "PairedComparison",
    "ScoreSummary",
    "StatsError",
    "bootstrap_ci",
    "compare_paired",
    "describe",
    "mean",
    "order_statistic_interval",
    "resampled_means",
    "std",
    "wilcoxon_signed_rank",
]

CONFIDENCE = 0.95
RESAMPLES = 10_000
_CHUNK = 1_000  # resamples drawn at once: bounds memory at CHUNK x n indices for large image sets
_EXACT_LIMIT = 50  # the Wilcoxon p-value is exact up to this many non-zero differences (without tied magnitudes)

Alternative = Literal["two-sided", "greater", "less"]
"""What a paired test looks for: any difference, or differences that are mostly positive (greater) or negative."""


class StatsError(MedicoError):
    """Scores that cannot be summarised: none at all, not finite, unpaired, or a confidence outside (0, 1)."""


@dataclass(frozen=True)
class Interval:
    """A two-sided confidence interval ``[low, high]`` at ``confidence`` from ``resamples`` bootstrap resamples."""

    low: float
    high: float
    confidence: float
    resamples: int
    seed: int

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class ScoreSummary:
    """Mean, population standard deviation and bootstrap interval of the mean over ``n`` values."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    confidence: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


@dataclass(frozen=True)
class PairedComparison:
    """A compared with B on the same images; differences are A - B.

    ``wins``/``losses``/``ties``: images where A scores higher / lower / the same. ``wilcoxon_plus`` and
    ``wilcoxon_minus`` are the rank sums of the positive and negative differences (zeros dropped);
    ``p_value`` is two-sided, ``p_method`` says whether it is exact or the normal approximation.
    """

    n: int
    mean_a: float
    mean_b: float
    mean_difference: float
    ci_low: float
    ci_high: float
    confidence: float
    wins: int
    losses: int
    ties: int
    wilcoxon_plus: float
    wilcoxon_minus: float
    p_value: float
    p_method: str

    @property
    def share_a_better(self) -> float:
        """The fraction of images where A scores strictly higher than B."""
        return self.wins / self.n

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields, ``share_a_better`` included."""
        return {**asdict(self), "share_a_better": self.share_a_better}


def _vector(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    """``values`` as a 1-D float array, refused when empty or not finite."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise StatsError(f"{name}: expected a non-empty list of numbers, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise StatsError(f"{name}: expected finite numbers, found {int((~np.isfinite(array)).sum())} NaN or inf")
    return array


def mean(values: Sequence[float] | np.ndarray) -> float:
    """The arithmetic mean (the reported figure: the mean over images)."""
    return float(_vector(values, "values").mean())


def std(values: Sequence[float] | np.ndarray, ddof: int = 0) -> float:
    """The standard deviation; ``ddof=0`` (population) over images as everywhere in medico, 1 for a sample of runs."""
    array = _vector(values, "values")
    return float(array.std(ddof=ddof)) if array.size > ddof else 0.0


def _order_statistic_index(resamples: int, confidence: float) -> int:
    """k such that the k-th smallest and k-th largest of ``resamples`` sorted means bound the central ``confidence``."""
    return min(int(math.floor((1.0 - confidence) / 2.0 * resamples)), (resamples - 1) // 2)


def order_statistic_interval(
    resampled: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """The percentile interval of bootstrap values: their k-th smallest and k-th largest, chosen symmetrically so that
    it covers the central ``confidence`` (the rule of every interval here, of means and of ranks alike).

    >>> order_statistic_interval([3, 1, 2, 5, 4], confidence=0.6)
    (2, 4)
    """
    ordered = sorted(resampled)
    k = _order_statistic_index(len(ordered), confidence)
    return ordered[k], ordered[len(ordered) - 1 - k]


def resampled_means(matrix: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Means of each row of ``matrix`` over ``resamples`` bootstrap resamples of its columns (images, drawn with
    replacement, same size), in draw order; every row is resampled with the same images, so rows stay paired.

    Args:
        matrix: scores of shape ``(k, n)``: k models (or one) on the same n images.
        resamples: bootstrap resamples.
        seed: seeds the draws, which depend only on the seed, ``resamples`` and n: a row's means do not depend on the
            other rows (up to the last bit of rounding).

    Returns:
        Shape ``(resamples, k)``.
    """
    rng = np.random.default_rng(seed)
    n = matrix.shape[1]
    means = np.empty((resamples, matrix.shape[0]))
    for start in range(0, resamples, _CHUNK):
        count = min(_CHUNK, resamples - start)
        means[start : start + count] = matrix[:, rng.integers(0, n, size=(count, n))].mean(axis=2).T
    return means


def _check_settings(confidence: float, resamples: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise StatsError(f"confidence: expected a fraction strictly between 0 and 1, got {confidence}")
    if resamples < 1:
        raise StatsError(f"resamples: expected a positive integer, got {resamples}")


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval of the mean of ``values`` (resampling images with replacement).

    Args:
        values: one score per image, shape ``(n,)``.
        confidence: coverage of the two-sided interval.
        resamples: bootstrap resamples.
        seed: seeds the resampling; the same values and seed give the same interval.

    Returns:
        The interval; ``low == high`` for a single image or identical values.

    >>> bootstrap_ci([0.5, 0.5, 0.5]).low
    0.5
    """
    array = _vector(values, "values")
    _check_settings(confidence, resamples)
    if np.all(array == array[0]):
        return Interval(float(array[0]), float(array[0]), confidence, resamples, seed)
    low, high = order_statistic_interval(resampled_means(array[np.newaxis], resamples, seed)[:, 0], confidence)
    return Interval(float(low), float(high), confidence, resamples, seed)


def describe(
    values: Sequence[float] | np.ndarray,
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> ScoreSummary:
    """Mean, population std and the bootstrap interval of the mean, over per-image ``values``."""
    array = _vector(values, "values")
    interval = bootstrap_ci(array, confidence=confidence, resamples=resamples, seed=seed)
    return ScoreSummary(array.size, mean(array), std(array), interval.low, interval.high, confidence)


def _average_ranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ranks 1..n of ``values`` (tied values share their average rank), and the sizes of the tied groups."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    last_rank = np.cumsum(counts)
    return (last_rank - (counts - 1) / 2.0)[inverse], counts


@functools.cache
def _null_counts(n: int) -> tuple[int, ...]:
    """How many of the 2**n sign patterns of n untied ranks give each signed-rank sum 0..n(n+1)/2 (kept per n: a
    challenge's report tests every pair of teams on the same images)."""
    top = n * (n + 1) // 2
    counts = [1] + [0] * top  # counts[s]: subsets of {1..k} with rank sum s
    for rank in range(1, n + 1):
        for total in range(top, rank - 1, -1):
            counts[total] += counts[total - rank]
    return tuple(counts)


def _exact_lower_tail(n: int, statistic: float) -> float:
    """P(W <= statistic) for the signed-rank sum of n untied ranks under the null (each sign equally likely)."""
    return sum(_null_counts(n)[: int(math.floor(statistic)) + 1]) / 2.0**n


def wilcoxon_signed_rank(
    differences: Sequence[float] | np.ndarray, alternative: Alternative = "two-sided"
) -> tuple[float, float, float, str]:
    """Wilcoxon signed-rank test of paired differences against a median of zero.

    Zero differences are dropped (Wilcoxon's convention); tied magnitudes share their average rank. The p-value is
    exact for up to 50 non-zero, untied differences, otherwise the normal approximation with tie and continuity
    corrections (as :func:`scipy.stats.wilcoxon` with ``correction=True`` computes it).

    Args:
        differences: one paired difference per image, A - B.
        alternative: ``two-sided``; ``greater``: A tends to score higher than B; ``less``: lower.

    Returns:
        ``(w_plus, w_minus, p_value, method)`` where ``method`` is ``"exact"``, ``"normal"`` or ``"none"`` (every
        difference is zero: p = 1).
    """
    if alternative not in ("two-sided", "greater", "less"):
        raise StatsError(f"alternative: expected 'two-sided', 'greater' or 'less', got {alternative!r}")
    array = _vector(differences, "differences")
    nonzero = array[array != 0.0]
    n = nonzero.size
    if n == 0:
        return 0.0, 0.0, 1.0, "none"
    ranks, groups = _average_ranks(np.abs(nonzero))
    w_plus = float(ranks[nonzero > 0].sum())
    w_minus = float(ranks[nonzero < 0].sum())
    if n <= _EXACT_LIMIT and bool(np.all(groups == 1)):
        # the null distribution is symmetric: P(W+ >= w+) = P(W+ <= w-)
        tail = {"greater": w_minus, "less": w_plus}.get(alternative, min(w_plus, w_minus))
        p_value = _exact_lower_tail(n, tail) * (2.0 if alternative == "two-sided" else 1.0)
        return w_plus, w_minus, min(1.0, p_value), "exact"
    expected = n * (n + 1) / 4.0
    variance = n * (n + 1) * (2 * n + 1) / 24.0 - float((groups**3 - groups).sum()) / 48.0
    if variance <= 0.0:
        return w_plus, w_minus, 1.0, "normal"
    if alternative == "two-sided":
        z = max(abs(w_plus - expected) - 0.5, 0.0) / math.sqrt(variance)
        return w_plus, w_minus, min(1.0, math.erfc(z / math.sqrt(2.0))), "normal"
    shift = w_plus - expected if alternative == "greater" else expected - w_plus
    z = (shift - 0.5) / math.sqrt(variance)
    return w_plus, w_minus, min(1.0, 0.5 * math.erfc(z / math.sqrt(2.0))), "normal"


def compare_paired(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> PairedComparison:
    """Compare per-image scores ``a`` and ``b`` of two models on the same images, in the same order.

    The interval is a paired bootstrap of the mean difference (images resampled, each keeping both its scores);
    the test is Wilcoxon's signed-rank test. Swapping ``a`` and ``b`` negates the difference and its interval and
    swaps wins with losses; the p-value stays the same.
    """
    first, second = _vector(a, "a"), _vector(b, "b")
    if first.shape != second.shape:
        raise StatsError(f"paired scores: expected as many scores in b as in a ({first.size}), got {second.size}")
    differences = first - second
    interval = bootstrap_ci(differences, confidence=confidence, resamples=resamples, seed=seed)
    w_plus, w_minus, p_value, method = wilcoxon_signed_rank(differences)
    return PairedComparison(
        n=first.size,
        mean_a=float(first.mean()),
        mean_b=float(second.mean()),
        mean_difference=float(differences.mean()),
        ci_low=interval.low,
        ci_high=interval.high,
        confidence=confidence,
        wins=int((differences > 0).sum()),
        losses=int((differences < 0).sum()),
        ties=int((differences == 0).sum()),
        wilcoxon_plus=w_plus,
        wilcoxon_minus=w_minus,
        p_value=p_value,
        p_method=method,
    )
