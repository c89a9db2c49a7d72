"""How firmly a ranking stands: bootstrap ranks by the task 1 rule, their intervals, and Kendall's tau against the
final ranking."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medico.leaderboard import Entry
from medico.leaderboard.rank_stability import bootstrap_ranks, kendall_taus
from medico.leaderboard.ranking import rank_entries, segmentation_ranks

_SCORES = st.sampled_from([0.5, 0.6, 0.7, 0.8])


def _teams(count: int, images: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-image IoU and Dice of ``count`` teams of decreasing skill."""
    rng = np.random.default_rng(seed)
    iou = np.clip(np.linspace(0.75, 0.55, count)[:, None] + rng.normal(0, 0.15, (count, images)), 0, 1)
    return iou, 2 * iou / (1 + iou)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(_SCORES, _SCORES), min_size=1, max_size=8))
def test_scores_are_ranked_as_the_leaderboard_ranks_entries_of_those_scores(scores: list[tuple[float, float]]) -> None:
    entries = [Entry(team=f"t{index}", model="unet", split="test", iou=iou, dice=dice, id=index + 1)
               for index, (iou, dice) in enumerate(scores)]
    by_entries = {row.entry.id: row.rank for row in rank_entries(entries, "segmentation")}
    assert segmentation_ranks(*zip(*scores)) == [by_entries[index + 1] for index in range(len(scores))]


def test_a_team_that_wins_on_every_image_ranks_first_in_every_resample() -> None:
    iou, dice = _teams(5, 40, seed=1)
    iou[2] = iou.max(axis=0) + 0.01  # team 2 beats every other team on every image
    stability = bootstrap_ranks(iou, dice, resamples=500, seed=3)
    assert (stability.ranks[:, 2] == 1).all()
    assert stability.frequencies()[2].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert stability.intervals()[2] == (1, 1) and stability.medians()[2] == 1.0


def test_rank_frequencies_are_shares_and_the_interval_holds_the_median() -> None:
    iou, dice = _teams(6, 30, seed=2)
    stability = bootstrap_ranks(iou, dice, resamples=400, seed=0)
    assert np.allclose(stability.frequencies().sum(axis=1), 1.0)
    assert np.allclose(stability.frequencies().sum(axis=0), 1.0)  # each resample gives each rank once (no ties here)
    for (low, high), median in zip(stability.intervals(), stability.medians()):
        assert low <= median <= high


def test_the_same_scores_and_seed_give_the_same_ranks_and_another_seed_other_ones() -> None:
    iou, dice = _teams(8, 30, seed=4)
    first = bootstrap_ranks(iou, dice, resamples=300, seed=7)
    assert np.array_equal(first.ranks, bootstrap_ranks(iou, dice, resamples=300, seed=7).ranks)
    assert not np.array_equal(first.ranks, bootstrap_ranks(iou, dice, resamples=300, seed=8).ranks)


def test_teams_with_the_same_scores_share_their_rank_in_every_resample() -> None:
    iou, dice = _teams(3, 20, seed=5)
    iou[1], dice[1] = iou[0], dice[0]
    ranks = bootstrap_ranks(iou, dice, resamples=200, seed=0).ranks
    assert np.array_equal(ranks[:, 0], ranks[:, 1])


def test_kendalls_tau_matches_cases_counted_by_hand() -> None:
    # one swapped pair of four: 5 concordant, 1 discordant of 6 pairs -> (5 - 1) / 6
    # a tie in the ranking (tau-b): pairs (1,2) tied, (1,3) and (2,3) concordant -> 2 / sqrt(2 * 3)
    taus = kendall_taus([1, 2, 3, 4], np.array([[1, 2, 3, 4], [2, 1, 3, 4], [4, 3, 2, 1]]))
    assert taus.tolist() == pytest.approx([1.0, 4 / 6, -1.0])
    assert kendall_taus([1, 1, 3], np.array([[1, 2, 3]]))[0] == pytest.approx(2 / np.sqrt(6))
