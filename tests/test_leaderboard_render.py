"""The terminal table: best value per column highlighted, published rows dimmed, secondary columns dropped when the
terminal is narrow, scores shown as four-decimal fractions."""

from __future__ import annotations

import re
from io import StringIO

from rich.console import Console

from medico.leaderboard import Entry
from medico.leaderboard.ranking import select_view
from medico.leaderboard.render import leaderboard_tables

BOLD_GREEN = re.escape("\x1b[1;32m") + " *"


def _render(entries: list[Entry], width: int, task: str = "segmentation") -> str:
    console = Console(file=StringIO(), force_terminal=True, color_system="standard", width=width)
    for table in leaderboard_tables(select_view(entries, task, "all"), task, width=width):
        console.print(table)
    return console.file.getvalue()


ENTRIES = [
    Entry(team="a", model="m", iou=0.7123, dice=0.81, precision=0.95, fps=10.0, created="2020-12-01"),
    Entry(team="b", model="m", iou=0.65, dice=0.83, precision=0.90, fps=99.0, created="2020-12-02"),
]


def test_the_best_value_of_each_column_is_highlighted():
    output = _render(ENTRIES, width=200)
    for best in ("0.7123", "0.8300", "0.9500", "99.0"):
        assert re.search(BOLD_GREEN + re.escape(best), output), best
    for other in ("0.6500", "0.8100", "0.9000", "10.0"):
        assert not re.search(BOLD_GREEN + re.escape(other), output) and other in output


def test_published_rows_are_dimmed_and_marked():
    published = Entry(team="paper", model="p", iou=0.5, dice=0.6, source="published", citation="a paper")
    output = _render([*ENTRIES, published], width=200)
    line = next(line for line in output.splitlines() if "paper" in line)
    assert "\x1b[2" in line and "(published)" in line
    assert "not measured here" in output


def test_a_narrow_terminal_drops_precision_recall_f2_and_the_date_and_says_so():
    wide, narrow = (re.sub(r"\x1b\[[0-9;]*m", "", _render(ENTRIES, width=w)) for w in (200, 100))
    assert "precision" in wide and "F2" in wide and "┃ date" in wide
    assert "hidden in a narrow terminal" in narrow and "┃ F2" not in narrow and "┃ date" not in narrow
    plain = narrow
    assert max(len(line) for line in plain.splitlines()) <= 100
