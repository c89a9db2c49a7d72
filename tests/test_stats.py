"""Spread, bootstrap intervals and paired tests: properties over random scores, and small cases done by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medico.stats.multiple_testing import holm
from medico.stats.pairwise import pairwise_wilcoxon
from medico.stats.per_image import (
    StatsError,
    bootstrap_ci,
    compare_paired,
    describe,
    mean,
    order_statistic_interval,
    resampled_means,
    std,
    wilcoxon_signed_rank,
)

# per-image scores are ratios of pixel counts: fractions with a denominator of at most a few million
score = st.integers(0, 10_000).map(lambda count: count / 10_000)
scores = st.lists(score, min_size=2, max_size=40)
non_degenerate = scores.filter(lambda values: max(values) > min(values))
seeds = st.integers(0, 2**32 - 1)
FAST = dict(resamples=2_000)


@settings(max_examples=40, deadline=None)
@given(non_degenerate, seeds)
def test_the_interval_contains_the_mean_of_the_scores(values: list[float], seed: int) -> None:
    interval = bootstrap_ci(values, seed=seed, **FAST)
    assert interval.low < interval.high
    assert interval.low - 1e-12 <= mean(values) <= interval.high + 1e-12


@settings(max_examples=30, deadline=None)
@given(non_degenerate, seeds)
def test_four_times_as_many_images_give_a_narrower_interval(values: list[float], seed: int) -> None:
    few = bootstrap_ci(values, seed=seed, **FAST)
    many = bootstrap_ci(values * 4, seed=seed, **FAST)
    assert many.high - many.low < few.high - few.low


@settings(max_examples=20, deadline=None)
@given(scores, seeds)
def test_the_same_scores_and_seed_give_the_same_interval(values: list[float], seed: int) -> None:
    assert bootstrap_ci(values, seed=seed, **FAST) == bootstrap_ci(list(values), seed=seed, **FAST)


def test_different_seeds_resample_differently() -> None:
    values = np.random.default_rng(0).random(50)
    assert bootstrap_ci(values, seed=1, **FAST) != bootstrap_ci(values, seed=2, **FAST)


def test_identical_scores_and_a_single_image_have_a_zero_width_interval() -> None:
    assert (bootstrap_ci([0.7] * 5).low, bootstrap_ci([0.7] * 5).high) == (0.7, 0.7)
    assert (bootstrap_ci([0.3]).low, bootstrap_ci([0.3]).high) == (0.3, 0.3)


def test_the_interval_of_a_large_sample_is_close_to_the_normal_one() -> None:
    values = np.random.default_rng(3).random(400)
    interval = bootstrap_ci(values, seed=0)
    half_width = 1.96 * values.std() / math.sqrt(values.size)
    assert interval.low == pytest.approx(values.mean() - half_width, abs=0.006)
    assert interval.high == pytest.approx(values.mean() + half_width, abs=0.006)


def test_describe_gives_mean_population_std_and_interval() -> None:
    summary = describe([0.0, 0.5, 1.0], **FAST)
    assert (summary.n, summary.mean, summary.std) == (3, 0.5, pytest.approx(math.sqrt(1 / 6)))
    assert summary.ci_low <= 0.5 <= summary.ci_high and summary.confidence == 0.95
    assert std([1.0, 3.0], ddof=1) == pytest.approx(math.sqrt(2.0)) and std([1.0], ddof=1) == 0.0


@pytest.mark.parametrize(
    ("values", "message"),
    [([], "non-empty"), ([0.5, float("nan")], "NaN"), ([[0.1, 0.2]], "shape")],
)
def test_scores_that_cannot_be_summarised_are_refused(values: list, message: str) -> None:
    with pytest.raises(StatsError, match=message):
        bootstrap_ci(values)


def test_a_confidence_outside_zero_and_one_is_refused() -> None:
    with pytest.raises(StatsError, match="confidence"):
        bootstrap_ci([0.1, 0.2], confidence=95)


@pytest.mark.parametrize(
    ("differences", "expected"),
    [
        # all five positive: W- = 0, P(W <= 0) = 1/32, two-sided 2/32
        ([0.1, 0.2, 0.3, 0.4, 0.5], (15.0, 0.0, 0.0625, "exact")),
        # rank 2 negative: subsets of 1..5 summing to <= 2 are {}, {1}, {2}: 3/32, two-sided 6/32
        ([0.1, -0.2, 0.3, 0.4, 0.5], (13.0, 2.0, 0.1875, "exact")),
        # zeros dropped; ranks of |d| 1, 2, 3 with rank 1 negative: P(W <= 1) = 2/8, two-sided 0.5
        ([0.0, -1.0, 2.0, 0.0, 3.0], (5.0, 1.0, 0.5, "exact")),
        # nothing but zeros: no evidence either way
        ([0.0, 0.0], (0.0, 0.0, 1.0, "none")),
    ],
)
def test_wilcoxon_matches_small_cases_counted_by_hand(differences: list[float], expected: tuple) -> None:
    assert wilcoxon_signed_rank(differences) == pytest.approx(expected)


def test_wilcoxon_with_tied_magnitudes_uses_average_ranks_and_the_corrected_normal_approximation() -> None:
    # |d| = 1, 1, 1, 2 -> ranks 2, 2, 2, 4; W+ = 2 + 2 + 4 = 8, W- = 2; n = 4: mean 5,
    # variance 4*5*9/24 - (3^3 - 3)/48 = 7; z = (|8 - 5| - 0.5) / sqrt(7)
    w_plus, w_minus, p_value, method = wilcoxon_signed_rank([1.0, 1.0, -1.0, 2.0])
    assert (w_plus, w_minus, method) == (8.0, 2.0, "normal")
    assert p_value == pytest.approx(math.erfc(2.5 / math.sqrt(7) / math.sqrt(2)))


def test_wilcoxon_agrees_with_scipy_where_it_is_installed() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(7)
    for size in (12, 30, 200):
        differences = rng.normal(0.03, 0.1, size)
        w_plus, w_minus, p_value, _ = wilcoxon_signed_rank(differences)
        reference = scipy_stats.wilcoxon(differences, correction=True)
        assert min(w_plus, w_minus) == pytest.approx(reference.statistic)
        assert p_value == pytest.approx(reference.pvalue, rel=1e-6)


pairs = st.integers(1, 30).flatmap(
    lambda n: st.tuples(
        st.lists(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0, 0.1, 0.9]), min_size=n, max_size=n),
        st.lists(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0, 0.2, 0.8]), min_size=n, max_size=n),
    )
)


@settings(max_examples=40, deadline=None)
@given(pairs, seeds)
def test_comparing_b_with_a_is_comparing_a_with_b_reversed(pair: tuple[list, list], seed: int) -> None:
    a, b = pair
    ab = compare_paired(a, b, seed=seed, **FAST)
    ba = compare_paired(b, a, seed=seed, **FAST)
    assert ba.mean_difference == -ab.mean_difference
    assert (ba.ci_low, ba.ci_high) == (-ab.ci_high, -ab.ci_low)
    assert (ba.wins, ba.losses, ba.ties) == (ab.losses, ab.wins, ab.ties)
    assert (ba.wilcoxon_plus, ba.wilcoxon_minus) == (ab.wilcoxon_minus, ab.wilcoxon_plus)
    assert ba.p_value == pytest.approx(ab.p_value)
    assert ab.wins + ab.losses + ab.ties == len(a)


def test_a_clearly_better_model_wins_on_most_images_with_an_interval_above_zero() -> None:
    rng = np.random.default_rng(1)
    b = rng.random(120) * 0.8
    a = np.clip(b + rng.normal(0.05, 0.03, 120), 0, 1)
    result = compare_paired(a, b)
    assert result.ci_low > 0 and result.p_value < 1e-6
    assert result.share_a_better > 0.9
    assert result.as_dict()["share_a_better"] == result.share_a_better


def test_unpaired_scores_are_refused() -> None:
    with pytest.raises(StatsError, match="as many scores"):
        compare_paired([0.1, 0.2], [0.1])


@pytest.mark.parametrize(
    ("differences", "alternative", "p_value"),
    [
        # |d| ranks 4, 1, 2, 3; W+ = 8, W- = 2: P(W+ >= 8) = P(W <= 2) = #{{}, {1}, {2}} / 16
        ([0.4, 0.1, -0.2, 0.3], "greater", 3 / 16),
        # the other side: P(W+ <= 8) = 1 - P(W+ >= 9) = 1 - P(W <= 1) = 1 - 2/16
        ([0.4, 0.1, -0.2, 0.3], "less", 14 / 16),
        # all positive: only the all-plus pattern reaches W+ = 10
        ([0.1, 0.2, 0.3, 0.4], "greater", 1 / 16),
        ([0.1, 0.2, 0.3, 0.4], "less", 1.0),
    ],
)
def test_one_sided_wilcoxon_matches_small_cases_counted_by_hand(
    differences: list[float], alternative: str, p_value: float
) -> None:
    assert wilcoxon_signed_rank(differences, alternative)[2] == pytest.approx(p_value)  # type: ignore[arg-type]


@pytest.mark.parametrize("alternative", ["greater", "less"])
def test_one_sided_wilcoxon_agrees_with_scipy_exact_and_approximate_with_ties_and_zeros(alternative: str) -> None:
    from scipy import stats as scipy_stats

    rng = np.random.default_rng(11)
    cases = [rng.normal(0.02, 0.1, size) for size in (9, 40, 80, 200)]
    tied = np.round(rng.normal(0.02, 0.1, 60), 2)  # many tied magnitudes
    tied[:5] = 0.0  # and zeros, dropped
    for differences in [*cases, tied]:
        _, _, p_value, _ = wilcoxon_signed_rank(differences, alternative)  # type: ignore[arg-type]
        reference = scipy_stats.wilcoxon(differences, alternative=alternative, correction=True)
        assert p_value == pytest.approx(reference.pvalue, rel=1e-9, abs=1e-15)


def test_an_unknown_alternative_is_refused_naming_the_choices() -> None:
    with pytest.raises(StatsError, match="alternative: expected 'two-sided', 'greater' or 'less', got 'bigger'"):
        wilcoxon_signed_rank([0.1, 0.2], "bigger")  # type: ignore[arg-type]


def test_holm_adjusts_a_family_as_computed_by_hand() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04 -> made non-decreasing: 0.06 for the last
    assert holm([0.01, 0.04, 0.03, 0.005]).tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]).tolist() == [1.0, 1.0]  # capped at 1
    adjusted = holm(np.array([[np.nan, 0.01], [0.02, np.nan]]))  # NaN (a diagonal) is no test: a family of two
    assert np.isnan(adjusted[0, 0]) and adjusted[0, 1] == pytest.approx(0.02) and adjusted[1, 0] == pytest.approx(0.02)


def test_three_teams_on_four_images_are_tested_pair_by_pair_as_computed_by_hand() -> None:
    a = [0.9, 0.6, 0.5, 0.8]
    b = [0.5, 0.5, 0.7, 0.5]  # a - b: 0.4, 0.1, -0.2, 0.3 -> W+ 8 of 10
    c = [0.8, 0.4, 0.2, 0.45]  # a - c all positive (W+ 10); b - c: -0.3, 0.1, 0.5, 0.05 -> ranks 3, 2, 4, 1: W+ 7
    tests = pairwise_wilcoxon(np.array([a, b, c]))
    raw = {(0, 1): 3 / 16, (1, 0): 14 / 16, (0, 2): 1 / 16, (2, 0): 1.0, (1, 2): 5 / 16, (2, 1): 13 / 16}
    for (i, j), p_value in raw.items():
        assert tests.p_values[i, j] == pytest.approx(p_value)
    # Holm over the six: 1/16 x 6 = 0.375, 3/16 x 5 = 0.9375, the rest reach 1
    assert tests.adjusted[0, 2] == pytest.approx(0.375) and tests.adjusted[0, 1] == pytest.approx(0.9375)
    assert all(tests.adjusted[i, j] == 1.0 for i, j in raw if (i, j) not in {(0, 2), (0, 1)})
    assert not tests.significant.any()  # four images can never reach p < 0.05 after adjustment
    assert tests.test_then_rank() == [1, 1, 1]


def test_a_team_far_better_on_many_images_is_significantly_better_and_ranks_alone_after_testing() -> None:
    rng = np.random.default_rng(5)
    base = rng.uniform(0.3, 0.7, 80)
    scores = np.array([base + 0.2, base + rng.normal(0, 0.01, 80), base + rng.normal(0, 0.01, 80)])
    tests = pairwise_wilcoxon(scores)
    assert tests.significant[0, 1] and tests.significant[0, 2] and not tests.significant[1:, 0].any()
    assert tests.test_then_rank() == [1, 2, 2]


def test_resampled_rows_stay_paired_image_by_image() -> None:
    values = np.random.default_rng(2).uniform(0, 1, 30)
    means = resampled_means(np.array([values, values + 1.0]), 500, seed=4)
    assert means.shape == (500, 2)
    assert np.allclose(means[:, 1] - means[:, 0], 1.0)  # the same images in every resample for both rows


def test_a_rows_resampled_means_give_its_bootstrap_interval() -> None:
    values = np.random.default_rng(2).uniform(0, 1, 30)
    interval = bootstrap_ci(values, resamples=700, seed=9)
    column = resampled_means(np.array([np.zeros(30), values]), 700, seed=9)[:, 1]
    assert (interval.low, interval.high) == pytest.approx(order_statistic_interval(column, 0.95), rel=1e-12)
