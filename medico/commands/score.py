"""``medico score``: the organiser's side: validate an archive, score it against the truth, record it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from medico.commands.validate import print_report
from medico.console import console
from medico.data.io import list_images
from medico.data.splits import read_split_list
from medico.errors import MedicoError
from medico.metrics import METRIC_NAMES
from medico.polyp_metrics import PAPER_METRICS
from medico.submission import InvalidSubmissionError, score_archive


def score(
    archive: Annotated[Path, typer.Argument(help="The task 1 zip to score.")],
    truth: Annotated[Path, typer.Option("--truth", help="Folder of ground-truth masks named by image stem.")],
    team: Annotated[str, typer.Option("--team", help="The team the result is recorded for.")],
    run: Annotated[int | None, typer.Option(help="Run number (default: N from a name ending in _task1_runN).")] = None,
    db: Annotated[
        Path | None, typer.Option(help="Leaderboard database (default: $MEDICO_DB or ./leaderboard).")
    ] = None,
    images: Annotated[
        Path | None,
        typer.Option(help="When --truth holds more masks than the test set: the folder of test images to score."),
    ] = None,
    names: Annotated[
        Path | None,
        typer.Option(help="When --truth holds more masks: a file of the image names to score, one a line (val.txt)."),
    ] = None,
    paper_metrics: Annotated[
        bool,
        typer.Option(
            "--paper-metrics",
            help="Also score what polyp papers report (S-measure, E-measure, weighted F-measure, MAE, HD95), from the "
            "archive's binary masks.",
        ),
    ] = False,
) -> None:
    """Validate a task 1 archive, score every mask against the ground truth, add a test entry to the leaderboard.

    The archive must cover every image to score: every mask in --truth, or those --images or --names name.
    Exits 0 when scored, 1 when the archive is invalid (with the report), 2 on a usage error.
    """
    if images is not None and names is not None:
        raise MedicoError("--images and --names both say which images to score: give one of them")
    scored = (
        [p.stem for p in list_images(images)] if images is not None
        else read_split_list(names) if names is not None
        else None
    )
    try:
        result = score_archive(archive, truth, team, run=run, db=db, names=scored, paper=paper_metrics)
    except InvalidSubmissionError as error:
        print_report(error.report)
        if scored is None and error.report.by_rule().get("missing"):
            console.print(
                "[yellow]hint:[/] if --truth holds masks of more images than the archive answers for (a whole "
                "dataset for a validation archive), say which to score with --images TEST_IMAGES or --names FILE"
            )
        raise
    summary = result.evaluation.summary
    run_label = result.run if result.run is not None else "-"
    title = f"{escape(result.archive.name)}: team {escape(team)}, run {run_label}, {summary['n_images']} images"
    table = Table(title=title)
    shown = (*METRIC_NAMES, *(PAPER_METRICS if paper_metrics else ()))
    for name in shown:
        table.add_column(name, justify="right")
    table.add_row(*(f"{summary[name]:.4f} ± {summary[f'{name}_std']:.4f}" for name in shown))
    console.print(table)
    console.print(f"per image: {escape(str(result.scores_csv))}\nsummary:   {escape(str(result.summary_json))}")
    if result.entry_id is None:
        console.print(f"[yellow]already on the leaderboard[/] (archive sha256 {result.sha256}): no entry added")
    else:
        console.print(f"[green]leaderboard entry {result.entry_id} added[/] (test split, source submission)")
