"""Ranking rules: mIoU then Dice then the earlier entry, shared ranks (1, 2, 2, 4), one row per team, FPS compared
only on the same device, and an order that does not depend on the order entries were read in."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from medico.leaderboard import Entry
from medico.leaderboard.ranking import (
    best_per_team,
    competition_ranks,
    latest_per_team,
    rank_entries,
    select_view,
)

_SCORES = st.sampled_from([None, 0.5, 0.6, 0.7, 0.8])


@st.composite
def entry_lists(draw, min_size: int = 0) -> list[Entry]:
    """Entries with few distinct values, so that ties in scores, dates, teams and devices are common."""
    size = draw(st.integers(min_value=min_size, max_value=12))
    entries = []
    for row_id in range(1, size + 1):
        entries.append(
            Entry(
                team=draw(st.sampled_from(["a", "b", "c"])),
                model="unet",
                split=draw(st.sampled_from(["val", "test"])),
                task=draw(st.sampled_from(["segmentation", "efficiency"])),
                iou=draw(_SCORES),
                dice=draw(_SCORES),
                fps=draw(st.sampled_from([None, 10.0, 20.0, 30.0])),
                fps_device=draw(st.sampled_from(["cpu", "H100"])),
                fps_kind="model",
                created=draw(st.sampled_from(["2020-12-01", "2020-12-02", "2020-12-03"])),
                id=row_id,
            )
        )
    return entries


def _better(entry: Entry, other: Entry, task: str) -> bool:
    """``entry`` has a strictly better score than ``other`` (missing scores are worst)."""
    def key(e: Entry) -> tuple:
        values = (e.fps,) if task == "efficiency" else (e.iou, e.dice)
        return tuple(-1.0 if v is None else v for v in values)
    return key(entry) > key(other)


def test_equal_scores_share_a_rank_and_the_next_rank_is_skipped():
    assert competition_ranks([(0.9,), (0.8,), (0.8,), (0.7,)]) == [1, 2, 2, 4]
    entries = [
        Entry(team=t, model="m", iou=iou, dice=dice, created=c, id=i)
        for i, (t, iou, dice, c) in enumerate(
            [("late", 0.8, 0.9, "2020-12-03"), ("top", 0.9, 0.9, "2020-12-05"), ("early", 0.8, 0.9, "2020-12-01"),
             ("dice", 0.8, 0.85, "2020-12-01")], start=1
        )
    ]
    ranked = rank_entries(entries, "segmentation")
    assert [(r.rank, r.entry.team) for r in ranked] == [(1, "top"), (2, "early"), (2, "late"), (4, "dice")]


@given(entry_lists(), st.sampled_from(["segmentation", "efficiency"]))
@settings(max_examples=150, deadline=None)
def test_a_rank_is_one_plus_the_number_of_strictly_better_entries_it_is_compared_with(entries, task):
    ranked = rank_entries(entries, task)
    assert sorted(r.entry.id for r in ranked) == sorted(e.id for e in entries)
    for row in ranked:
        peers = [r.entry for r in ranked if r.group == row.group]
        if task == "efficiency":
            assert all(p.fps_device == row.entry.fps_device for p in peers), "FPS is compared on one device only"
        else:
            assert all(p.split == row.entry.split for p in peers), "a split is ranked on its own"
        primary = row.entry.fps if task == "efficiency" else row.entry.iou
        if primary is None:
            assert row.rank is None
            continue
        rankable = [p for p in peers if (p.fps if task == "efficiency" else p.iou) is not None]
        assert row.rank == 1 + sum(_better(p, row.entry, task) for p in rankable)


@given(entry_lists())
@settings(max_examples=150, deadline=None)
def test_within_a_group_better_scores_come_first_then_earlier_entries(entries):
    ranked = [r for r in rank_entries(entries, "segmentation") if r.rank is not None]
    for first, second in zip(ranked, ranked[1:]):
        if first.group != second.group:
            continue
        assert not _better(second.entry, first.entry, "segmentation")
        if not _better(first.entry, second.entry, "segmentation"):
            assert first.rank == second.rank
            assert (first.entry.created, first.entry.id) <= (second.entry.created, second.entry.id)


@given(entry_lists(), st.randoms(use_true_random=False), st.sampled_from(["best", "all", "latest"]))
@settings(max_examples=100, deadline=None)
def test_the_order_does_not_depend_on_the_order_entries_are_read_in(entries, random, view):
    shuffled = list(entries)
    random.shuffle(shuffled)
    for task in ("segmentation", "efficiency"):
        assert select_view(shuffled, task, view) == select_view(entries, task, view)


@given(entry_lists(min_size=1))
@settings(max_examples=150, deadline=None)
def test_best_per_team_keeps_each_teams_best_entry_once_per_split(entries):
    best = best_per_team(entries, "segmentation")
    slots = [(e.team, e.split) for e in best]
    assert len(slots) == len(set(slots)) == len({(e.team, e.split) for e in entries})
    for chosen in best:
        same = [e for e in entries if (e.team, e.split) == (chosen.team, chosen.split)]
        assert not any(_better(e, chosen, "segmentation") for e in same)
        ties = [e for e in same if not _better(chosen, e, "segmentation")]
        assert (chosen.created, chosen.id) == min((e.created, e.id) for e in ties)


@given(entry_lists(min_size=1))
@settings(max_examples=100, deadline=None)
def test_latest_per_team_keeps_each_teams_most_recent_entry(entries):
    latest = latest_per_team(entries, "efficiency")
    for chosen in latest:
        same = [e for e in entries if e.team == chosen.team and e.fps_device == chosen.fps_device]
        assert (chosen.created, chosen.id) == max((e.created, e.id) for e in same)
    assert len(latest) == len({(e.team, e.fps_device) for e in entries})


def test_fps_on_different_devices_is_never_compared():
    entries = [
        Entry(team="gpu", model="m", task="efficiency", fps=300.0, fps_device="H100", fps_kind="model", iou=0.5, id=1),
        Entry(team="cpu", model="m", task="efficiency", fps=12.0, fps_device="cpu", fps_kind="model", iou=0.9, id=2),
        Entry(team="cpu2", model="m", task="efficiency", fps=15.0, fps_device="cpu", fps_kind="model", iou=0.1, id=3),
    ]
    ranked = select_view(entries, "efficiency", "all")
    assert [(r.group, r.rank, r.entry.team) for r in ranked] == [
        ("H100, model FPS, precision not stated", 1, "gpu"),
        ("cpu, model FPS, precision not stated", 1, "cpu2"),
        ("cpu, model FPS, precision not stated", 2, "cpu"),
    ]


def test_an_entry_without_miou_is_listed_last_without_a_rank():
    entries = [
        Entry(team="dice only", model="m", dice=0.99, id=1),
        Entry(team="full", model="m", iou=0.1, dice=0.1, id=2),
    ]
    assert [(r.rank, r.entry.team) for r in rank_entries(entries, "segmentation")] == [(1, "full"), (None, "dice only")]


def test_results_on_other_data_are_ranked_apart() -> None:
    """A high synthetic-data score never outranks a Kvasir-SEG score: each dataset is its own group."""
    synthetic = Entry(team="a", model="attunet", iou=0.89, dice=0.94, dataset="synthetic 1a2b3c4d")
    real = Entry(team="b", model="attunet", iou=0.61, dice=0.71, dataset="kvasir-seg fefb3f19")
    ranked = rank_entries([synthetic, real], "segmentation")
    assert {(r.entry.team, r.rank, r.group) for r in ranked} == {
        ("a", 1, "val split, synthetic 1a2b3c4d"),
        ("b", 1, "val split, kvasir-seg fefb3f19"),
    }
