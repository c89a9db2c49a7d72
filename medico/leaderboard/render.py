"""The leaderboard as rich tables, one per comparison group: best value per column highlighted, published rows
dimmed and marked, every user-provided text escaped (a team called ``[bold red]x`` prints literally); and the legend
of the columns shown."""

from __future__ import annotations

from itertools import groupby

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from medico.leaderboard.columns import NO_SPEED, Column, best_values, display_columns
from medico.leaderboard.ranking import Ranked

__all__ = ["FULL_WIDTH", "LEGEND_HINT", "TASK_TITLES", "leaderboard_tables", "legend_table"]

TASK_TITLES = {"segmentation": "Task 1: polyp segmentation", "efficiency": "Task 2: algorithm efficiency"}
_BEST_STYLE = "bold green"
FULL_WIDTH = 130  # below this many terminal columns, the secondary columns are left out so the rest stays legible
LEGEND_HINT = "medico leaderboard --legend says what each column means"


def _shown_columns(task: str, width: int | None, intervals: bool, paper: bool) -> list[Column]:
    """The columns shown at a terminal ``width``: under :data:`FULL_WIDTH`, the secondary ones are left out."""
    narrow = width is not None and width < FULL_WIDTH
    return [column for column in display_columns(task, intervals, paper) if not (narrow and column.secondary)]


def leaderboard_tables(
    rows: list[Ranked],
    task: str,
    width: int | None = None,
    intervals: bool = False,
    paper: bool = False,
    legend_hint: bool = True,
) -> list[Table]:
    """One table per comparison group (a split, or a device and FPS kind), in the order of ``rows``; for a terminal
    ``width`` under :data:`FULL_WIDTH` the secondary columns (precision, recall, F2, date) are left out; ``intervals``
    shows mIoU and Dice as ``0.812 [0.78, 0.84]`` (mean and 95% bootstrap interval over images); ``paper`` adds the
    measures polyp papers report (S, meanEm, wFm, MAE, HD95); ``legend_hint`` ends the last caption with
    :data:`LEGEND_HINT`."""
    narrow = width is not None and width < FULL_WIDTH
    columns = _shown_columns(task, width, intervals, paper)
    tables = []
    for group, members in groupby(rows, key=lambda row: row.group):
        members = list(members)
        best = best_values(members, columns)
        table = Table(title=f"{TASK_TITLES.get(task, task)} ({escape(group)})", title_justify="left")
        for column in columns:
            if column.numeric or column.header == "date":
                table.add_column(column.header, justify="right" if column.numeric else "left", no_wrap=True)
            else:
                table.add_column(column.header, overflow="fold", min_width=6)
        for row in members:
            cells: list[Text] = []
            for column in columns:
                value = column.value(row)
                style = _BEST_STYLE if value is not None and best.get(column.header) == value else ""
                cells.append(Text(column.cell(row), style=style))
            if row.entry.source == "published":
                cells[1].append(" (published)", style="italic")
            table.add_row(*cells, style="dim" if row.entry.source == "published" else None)
        notes = []
        if any(row.entry.source == "published" for row in members):
            notes.append("dimmed: published figures (citations in baselines/reported.csv), not measured here")
        if any(row.entry.fps is None for row in members):
            notes.append(f"FPS, at and device -: {NO_SPEED}")
        if intervals:
            notes.append(escape("[low, high]: 95% bootstrap interval of the mean over images, where recorded"))
        if narrow:
            notes.append(
                "precision, recall, F2 and the date hidden in a narrow terminal (--format markdown shows every column)"
            )
        table.caption = "; ".join(notes) or None
        tables.append(table)
    if tables and legend_hint:
        tables[-1].caption = "; ".join(filter(None, [tables[-1].caption, LEGEND_HINT]))
    return tables


def legend_table(task: str, width: int | None = None, intervals: bool = False, paper: bool = False) -> Table:
    """What each column :func:`leaderboard_tables` shows with the same arguments means, one line each."""
    table = Table(title="What the columns mean", title_justify="left", show_lines=False)
    table.add_column("column", no_wrap=True, style="bold")
    table.add_column("meaning")
    for column in _shown_columns(task, width, intervals, paper):
        table.add_row(Text(column.header), Text(column.meaning))
    return table
