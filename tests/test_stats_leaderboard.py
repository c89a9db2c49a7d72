"""Bootstrap intervals on the leaderboard: stored with an entry, migrated into older files, shown with ``--ci``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medico.cli import app
from medico.leaderboard import Entry, LeaderboardError, LeaderboardStore
from medico.leaderboard.columns import format_interval
from medico.leaderboard.store import MIGRATIONS, SCHEMA_VERSION

runner = CliRunner()


def _entry(**overrides) -> Entry:
    values = dict(team="polypers", model="attunet", dice=0.86, iou=0.812, run=1)
    values.update(overrides)
    return Entry(**values)


def test_an_entry_keeps_its_intervals(workspace: Path) -> None:
    store = LeaderboardStore()
    store.add(_entry(iou_ci_low=0.781, iou_ci_high=0.839, dice_ci_low=0.83, dice_ci_high=0.88))
    [stored] = store.entries()
    assert (stored.iou_ci_low, stored.iou_ci_high, stored.dice_ci_low, stored.dice_ci_high) == (
        0.781, 0.839, 0.83, 0.88,
    )


@pytest.mark.parametrize(
    ("bounds", "message"),
    [
        (dict(iou_ci_low=0.7), "both or neither"),
        (dict(iou_ci_low=0.9, iou_ci_high=0.8), "low <= high"),
        (dict(dice_ci_low=78.0, dice_ci_high=84.0), "low <= high <= 1"),
    ],
)
def test_an_interval_that_is_half_given_reversed_or_in_percent_is_refused(
    workspace: Path, bounds: dict, message: str
) -> None:
    with pytest.raises(LeaderboardError, match=message):
        LeaderboardStore().add(_entry(**bounds))


def test_a_database_from_schema_version_2_gains_empty_intervals_and_keeps_its_entries(tmp_path: Path) -> None:
    path = tmp_path / "v2.sqlite"
    with sqlite3.connect(path) as connection:
        for script in MIGRATIONS[:2]:
            connection.executescript(script)
        connection.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        connection.execute("INSERT INTO schema_version VALUES (2)")
        connection.execute(
            "INSERT INTO entries (team, model, task, split, iou, dice, source, created) "
            "VALUES ('old', 'unet', 'segmentation', 'val', 0.6, 0.7, 'measured', '2020-10-01T00:00:00+00:00')"
        )
    store = LeaderboardStore(path)
    assert store.schema_version() == SCHEMA_VERSION
    [old] = store.entries()
    assert (old.team, old.iou, old.iou_ci_low, old.dice_ci_high) == ("old", 0.6, None, None)


def test_the_printed_interval_is_rounded_outwards_and_never_narrower_than_the_computed_one() -> None:
    assert format_interval(0.8123, 0.7849, 0.8351) == "0.812 [0.78, 0.84]"
    assert format_interval(0.5, 0.29, 0.71) == "0.500 [0.29, 0.71]"
    assert format_interval(0.8988, None, None) == "0.8988"
    assert format_interval(None, None, None) == "-"


def test_leaderboard_ci_shows_the_interval_beside_the_mean_and_only_when_asked(workspace: Path) -> None:
    store = LeaderboardStore()
    store.add(_entry(team="alice", iou_ci_low=0.7849, iou_ci_high=0.8351, dice_ci_low=0.841, dice_ci_high=0.879))
    store.add(_entry(team="bob", iou=0.7, dice=0.8, run=2))
    wide = {"COLUMNS": "200"}
    shown = runner.invoke(app, ["leaderboard", "--ci"], env=wide)
    assert shown.exit_code == 0, shown.output
    assert "0.812 [0.78, 0.84]" in shown.output and "0.860 [0.84, 0.88]" in shown.output
    assert "0.7000" in shown.output and "[low, high]: 95% bootstrap interval" in " ".join(shown.output.split())
    plain = runner.invoke(app, ["leaderboard"], env=wide)
    assert "0.8120" in plain.output and "[0.78" not in plain.output
    exported = runner.invoke(app, ["leaderboard", "--format", "csv"])
    assert "iou_ci_low" in exported.output.splitlines()[0] and "0.7849" in exported.output
    for fmt, interval in (("markdown", r"0.812 \[0.78, 0.84\]"), ("html", "0.812 [0.78, 0.84]")):
        with_ci = runner.invoke(app, ["leaderboard", "--ci", "--format", fmt])
        assert with_ci.exit_code == 0 and interval in with_ci.output, (fmt, with_ci.output)
        without = runner.invoke(app, ["leaderboard", "--format", fmt])
        assert "0.8120" in without.output and "0.78," not in without.output


def test_fps_at_different_precisions_are_shown_beside_it_and_never_ranked_together(workspace: Path) -> None:
    store = LeaderboardStore()
    device = dict(fps_device="CPU Xeon (2 threads)", fps_kind="model")
    store.add(_entry(team="fast", fps=20.0, fps_precision="bf16", **device))
    store.add(_entry(team="exact", fps=10.0, fps_precision="fp32", run=2, **device))
    shown = runner.invoke(app, ["leaderboard", "--task", "efficiency", "--format", "markdown"])
    assert shown.exit_code == 0, shown.output
    sections = shown.output.split("## ")[1:]
    assert [(s.splitlines()[0], "fast" in s, "exact" in s) for s in sections] == [
        ("CPU Xeon (2 threads), model FPS, bf16", True, False),
        ("CPU Xeon (2 threads), model FPS, fp32", False, True),
    ]
    assert all("| 1 |" in section for section in sections), "each is first among its own precision"
    assert "| at |" in shown.output and "bf16" in sections[0].split("|", 20)[-1]
