"""The leaderboard as rich tables, one per comparison group: best value per column highlighted, published rows
dimmed and marked, every user-provided text escaped (a team called ``[bold red]x`` prints literally)."""

from __future__ import annotations

from itertools import groupby

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from medico.leaderboard.columns import best_values, display_columns
from medico.leaderboard.ranking import Ranked

__all__ = ["FULL_WIDTH", "TASK_TITLES", "leaderboard_tables"]

TASK_TITLES = {"segmentation": "Task 1: polyp segmentation", "efficiency": "Task 2: algorithm efficiency"}
_BEST_STYLE = "bold green"
FULL_WIDTH = 130  # below this many terminal columns, the secondary columns are left out so the rest stays legible


def leaderboard_tables(
    rows: list[Ranked], task: str, width: int | None = None, intervals: bool = False, paper: bool = False
) -> list[Table]:
    """One table per comparison group (a split, or a device and FPS kind), in the order of ``rows``; for a terminal
    ``width`` under :data:`FULL_WIDTH` the secondary columns (precision, recall, F2, date) are left out; ``intervals``
    shows mIoU and Dice as ``0.812 [0.78, 0.84]`` (mean and 95% bootstrap interval over images); ``paper`` adds the
    measures polyp papers report (S, meanEm, wFm, MAE, HD95)."""
    narrow = width is not None and width < FULL_WIDTH
    columns = [column for column in display_columns(task, intervals, paper) if not (narrow and column.secondary)]
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
        if intervals:
            notes.append(escape("[low, high]: 95% bootstrap interval of the mean over images, where recorded"))
        if narrow:
            notes.append(
                "precision, recall, F2 and the date hidden in a narrow terminal (--format markdown shows every column)"
            )
        table.caption = "; ".join(notes) or None
        tables.append(table)
    return tables
