"""``medico leaderboard``: the ranked results as a rich table or an export file."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from medico.console import console, err_console
from medico.leaderboard import (
    LeaderboardError,
    LeaderboardStore,
    Ranked,
    export_text,
    leaderboard_rows,
    leaderboard_tables,
    write_export,
)
from medico.leaderboard.render import legend_table
from medico.submission.names import SUBMISSIONS


class TaskChoice(str, Enum):
    segmentation = "segmentation"
    efficiency = "efficiency"


class SplitChoice(str, Enum):
    val = "val"
    test = "test"


class FormatChoice(str, Enum):
    table = "table"
    csv = "csv"
    markdown = "markdown"
    json = "json"
    html = "html"


_SUFFIX_FORMATS = {
    ".csv": "csv",
    ".md": "markdown",
    ".markdown": "markdown",
    ".json": "json",
    ".html": "html",
    ".htm": "html",
}


def _output_format(fmt: FormatChoice, output: Path | None) -> str:
    """The export format: the one asked for, or for ``--output`` with the table format, the one its suffix names."""
    if output is None or fmt is not FormatChoice.table:
        return fmt.value
    try:
        return _SUFFIX_FORMATS[output.suffix.lower()]
    except KeyError:
        raise LeaderboardError(
            f"--output {output}: expected --format csv, markdown, json or html, or a file ending in "
            f"{', '.join(_SUFFIX_FORMATS)}; got the table format and suffix {output.suffix or '(none)'!r}"
        ) from None


def _no_scored_test_archive(rows: list[Ranked], task: str, split: str | None) -> str | None:
    """Why the segmentation leaderboard shows no test-set row of a team when ``medico submit`` wrote a task 1 archive
    here (a newcomer expects to see it ranked), and where the validation scores are; None when one shows, or none is
    expected."""
    if (
        task != "segmentation"
        or split == "val"
        or any(r.entry.split == "test" and r.entry.source != "published" for r in rows)
        or not any(SUBMISSIONS.glob("*/*_task1_run*.zip"))
    ):
        return None
    validation = "; validation scores show with --split val (or without --split)" if split == "test" else ""
    return (
        "No test-set archive is scored here: the test images have no public ground truth, so an archive from "
        "`medico submit` gets a row only once whoever holds the truth scores it with "
        f"`medico score ARCHIVE --truth DIR --team TEAM`{validation}."
    )


def leaderboard(
    task: Annotated[
        TaskChoice, typer.Option(help="Task 1 (segmentation: mIoU) or task 2 (efficiency: FPS per device).")
    ] = TaskChoice.segmentation,
    split: Annotated[
        SplitChoice | None, typer.Option(help="Only this split (default: each split ranked on its own).")
    ] = None,
    all_runs: Annotated[bool, typer.Option("--all-runs", help="Every run, not only each team's best.")] = False,
    latest: Annotated[bool, typer.Option("--latest", help="Each team's latest run instead of its best.")] = False,
    with_published: Annotated[
        bool, typer.Option("--with-published", help="Rank the published figures of baselines/reported.csv too.")
    ] = False,
    ci: Annotated[
        bool,
        typer.Option(
            "--ci",
            help="Show mIoU and Dice with their 95% bootstrap interval over images, e.g. 0.812 [0.78, 0.84] "
            "(table, markdown and html; CSV and JSON always hold the bounds).",
        ),
    ] = False,
    paper_metrics: Annotated[
        bool,
        typer.Option(
            "--paper-metrics",
            help="Show the measures polyp papers report: S-measure, mean E-measure, weighted F-measure, MAE, HD95 "
            "(pixels), where an entry has them (table, markdown and html; CSV and JSON always hold them).",
        ),
    ] = False,
    legend: Annotated[
        bool,
        typer.Option("--legend", help="Say under the table what each column means (markdown and html always do)."),
    ] = False,
    model: Annotated[str | None, typer.Option(help="Only entries of this model.")] = None,
    device: Annotated[str | None, typer.Option(help="Only entries whose FPS was measured on this device.")] = None,
    fmt: Annotated[
        FormatChoice, typer.Option("--format", help="table (terminal), csv, markdown, json or html.")
    ] = FormatChoice.table,
    output: Annotated[
        Path | None, typer.Option(help="Write the export to this file (atomically) instead of stdout.")
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing --output file.")] = False,
    db: Annotated[
        Path | None, typer.Option(help="Leaderboard database (default: $MEDICO_DB or ./leaderboard/medico.sqlite).")
    ] = None,
) -> None:
    """Show the leaderboard: each team's best run, ranked by mIoU then Dice (task 1) or by FPS per device (task 2).

    Published figures appear only with --with-published, dimmed and marked.
    """
    if all_runs and latest:
        raise LeaderboardError("--all-runs and --latest: expected at most one of them, got both")
    store = LeaderboardStore(db, read_only=True)
    rows = leaderboard_rows(
        store,
        task=task.value,
        split=split.value if split else None,
        model=model,
        device=device,
        view="all" if all_runs else "latest" if latest else "best",
        with_published=with_published,
    )
    if output is not None:
        written = write_export(
            rows, _output_format(fmt, output), task.value, output, intervals=ci, paper=paper_metrics, replace=force
        )
        err_console.print(f"wrote {len(rows)} rows to [bold]{escape(str(written))}[/]")
        return
    if fmt is not FormatChoice.table:
        text = export_text(rows, fmt.value, task.value, intervals=ci, paper=paper_metrics)
        console.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True, end="")
        return
    if rows:
        for table in leaderboard_tables(rows, task.value, console.width, ci, paper_metrics, legend_hint=not legend):
            console.print(table)
    else:
        chosen = (("split", split.value if split else None), ("model", model), ("device", device))
        filters = ", ".join(f"{name} {value}" for name, value in chosen if value)
        where = f"in {store.path}" if store.path.exists() else f"(no leaderboard database at {store.path})"
        err_console.print(
            f"No {task.value} entries{' for ' + escape(filters) if filters else ''} {escape(where)} yet: "
            "`medico run` and `medico score` add them; --with-published shows the published figures."
        )
    if (why := _no_scored_test_archive(rows, task.value, split.value if split else None)) is not None:
        err_console.print(escape(why))
    if legend:
        console.print(legend_table(task.value, console.width, ci, paper_metrics))
