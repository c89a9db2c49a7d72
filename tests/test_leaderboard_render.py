"""The terminal table: best value per column highlighted, published rows dimmed, secondary columns dropped when the
terminal is narrow, scores shown as four-decimal fractions, and a legend of the columns shown."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from rich.console import Console

from medico.leaderboard import Entry
from medico.leaderboard.ranking import select_view
from medico.leaderboard.render import leaderboard_tables, legend_table

BOLD_GREEN = re.escape("\x1b[1;32m") + " *"


def _render(entries: list[Entry], width: int, task: str = "segmentation", legend: bool = False) -> str:
    console = Console(file=StringIO(), force_terminal=True, color_system="standard", width=width)
    for table in leaderboard_tables(select_view(entries, task, "all"), task, width=width):
        console.print(table)
    if legend:
        console.print(legend_table(task, width=width))
    return console.file.getvalue()


def _plain(output: str) -> str:
    """``output`` without colours and table borders, its words on one line."""
    return " ".join(re.sub(r"\x1b\[[0-9;]*m|[\u2500-\u257f]", " ", output).split())


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


def test_the_last_table_points_at_the_legend_and_a_table_with_no_speed_says_why_fps_reads_a_dash():
    scored = Entry(team="c", model="submission", split="test", source="submission", iou=0.6, dice=0.7)
    output = _plain(_render([*ENTRIES, scored], width=200))
    assert output.count("--legend says what each column means") == 1
    test_table = output[output.index("(test split)") : output.index("(val split)")]
    assert "FPS, at and device -: no speed measured (a scored archive holds masks only)" in test_table
    assert "no speed measured" not in output[output.index("(val split)") :], "every val row has its FPS"


@pytest.mark.parametrize("width", [200, 100])
def test_the_legend_says_in_one_line_what_each_shown_column_means(width: int):
    tables, legend = (_plain(_render(ENTRIES, width=width, legend=legend)) for legend in (False, True))
    meanings = _plain(legend[len(tables) :])
    assert "What the columns mean" in meanings
    assert "at the precision FPS was measured at (fp32, bf16 or fp16); -: no FPS" in meanings
    assert "device the device FPS was measured on" in meanings and "team who the row counts for" in meanings
    assert ("F2 F-score" in meanings) == (width == 200), "a hidden column is not explained"
