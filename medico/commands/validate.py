"""``medico validate``: check a task 1 archive against the test images and print a report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from medico.console import console
from medico.submission import RULES, InvalidSubmissionError, ValidationReport, image_sizes, validate_archive

_SHOWN_PER_RULE = 20


def print_report(report: ValidationReport) -> None:
    """Print the report: a one-line verdict, then each broken rule with its offending entries."""
    name = escape(str(report.archive))
    if report.ok:
        console.print(f"[bold green]valid:[/] {name}: {len(report.masks)} masks for {report.expected} images")
    else:
        table = Table(title=f"{name}: {len(report.problems)} problems", show_lines=False)
        for column in ("rule", "entry", "found"):
            table.add_column(column, overflow="fold")
        for rule, problems in report.by_rule().items():
            for index, problem in enumerate(problems[:_SHOWN_PER_RULE]):
                label = f"[red]{escape(RULES[rule])}[/] ({len(problems)})" if index == 0 else ""
                table.add_row(label, escape(problem.entry), escape(problem.detail))
            if len(problems) > _SHOWN_PER_RULE:
                table.add_row("", f"... and {len(problems) - _SHOWN_PER_RULE} more", "")
        console.print(table)
        console.print(f"[bold red]invalid:[/] {name}: {len(report.masks)} of {report.expected} masks passed")
    if report.ignored:
        console.print(f"ignored {len(report.ignored)} system files: {escape(', '.join(report.ignored[:5]))}")


def validate(
    archive: Annotated[Path, typer.Argument(help="The task 1 zip to check.")],
    images: Annotated[Path, typer.Option("--images", help="Folder of the test images the masks belong to.")],
) -> None:
    """Check a task 1 archive: names, sizes, grey binary masks, no missing or extra files, safe paths.

    Exits 0 when valid, 1 when invalid (the report lists each offending entry), 2 on a usage error.
    """
    report = validate_archive(archive, image_sizes(images))
    print_report(report)
    if not report.ok:
        raise InvalidSubmissionError(report)
