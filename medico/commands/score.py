"""``medico score``: the organiser's side: validate an archive, score it against the truth, record it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from medico.commands.validate import print_report
from medico.console import console
from medico.metrics import METRIC_NAMES
from medico.submission import InvalidSubmissionError, score_archive


def score(
    archive: Annotated[Path, typer.Argument(help="The task 1 zip to score.")],
    truth: Annotated[Path, typer.Option("--truth", help="Folder of ground-truth masks named by image stem.")],
    team: Annotated[str, typer.Option("--team", help="The team the result is recorded for.")],
    run: Annotated[int | None, typer.Option(help="Run number (default: N from a name ending in _task1_runN).")] = None,
    db: Annotated[
        Path | None, typer.Option(help="Leaderboard database (default: $MEDICO_DB or ./leaderboard).")
    ] = None,
) -> None:
    """Validate a task 1 archive, score every mask against the ground truth, add a test entry to the leaderboard.

    Exits 0 when scored, 1 when the archive is invalid (with the report), 2 on a usage error.
    """
    try:
        result = score_archive(archive, truth, team, run=run, db=db)
    except InvalidSubmissionError as error:
        print_report(error.report)
        raise
    summary = result.evaluation.summary
    run_label = result.run if result.run is not None else "-"
    title = f"{escape(result.archive.name)}: team {escape(team)}, run {run_label}, {summary['n_images']} images"
    table = Table(title=title)
    for name in METRIC_NAMES:
        table.add_column(name, justify="right")
    table.add_row(*(f"{summary[name]:.4f} ± {summary[f'{name}_std']:.4f}" for name in METRIC_NAMES))
    console.print(table)
    console.print(f"per image: {escape(str(result.scores_csv))}\nsummary:   {escape(str(result.summary_json))}")
    if result.entry_id is None:
        console.print(f"[yellow]already on the leaderboard[/] (archive sha256 {result.sha256}): no entry added")
    else:
        console.print(f"[green]leaderboard entry {result.entry_id} added[/] (test split, source submission)")
