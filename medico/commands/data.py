"""``medico data check``, ``fetch`` and ``cache``: validate a dataset, download the public archive, see or clear
the decoded cache."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from medico.console import console, download_progress, task_progress
from medico.data.cache import DecodedCache
from medico.data.checks import DatasetReport, check_dataset
from medico.data.fetch import ARCHIVES, fetch_dataset

__all__ = ["app"]

app = typer.Typer(
    name="data", help="Check a dataset folder or zip; download Kvasir-SEG; see or clear the decoded cache.",
    no_args_is_help=True,
)


def _summary(report: DatasetReport) -> Table:
    """The statistics a user checks before training: counts, sizes, foreground, splits."""
    table = Table(title=escape(report.description), show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    sizes = report.sizes
    table.add_row("image/mask pairs", f"{len(report.pairs):,} ({len(sizes):,} readable)")
    if sizes:
        smallest = min(sizes, key=lambda s: (s[0] * s[1], s))
        largest = max(sizes, key=lambda s: (s[0] * s[1], s))
        table.add_row(
            "resolution",
            f"{smallest[1]}x{smallest[0]} to {largest[1]}x{largest[0]} ({len(set(sizes))} different sizes)",
        )
    foregrounds = np.array(report.foregrounds)
    if foregrounds.size:
        table.add_row(
            "polyp fraction",
            f"mean {foregrounds.mean():.1%}, min {foregrounds.min():.1%}, max {foregrounds.max():.1%}",
        )
    empty = report.empty_masks
    shown = escape(", ".join(empty[:5]) + (", ..." if len(empty) > 5 else ""))
    table.add_row("empty masks", f"{len(empty)} ({shown})" if empty else "0")
    for name, sizes_text in report.splits.items():
        table.add_row(f"split {name}", escape(sizes_text))
    table.add_row("bounding boxes", "absent" if report.bboxes is None else f"{report.bboxes:,} entries")
    return table


def check(
    path: Annotated[Path, typer.Argument(help="A Kvasir-SEG-style folder (images/, masks/) or its zip.")],
) -> None:
    """Check a dataset: counts, resolutions, polyp fraction, empty masks, split sizes, and every problem by file.

    Exits 0 when the dataset is usable, 1 when it has problems.
    """
    with task_progress() as progress:
        task = progress.add_task("decoding pairs", total=None, status="")
        report = check_dataset(path, progress=lambda done, total: progress.update(task, completed=done, total=total))
    console.print(_summary(report))
    for problem in report.problems:
        console.print(f"[red]problem[/] {escape(problem.file)}: {escape(problem.message)}")
    if report.usable:
        console.print(f"[bold green]usable:[/] {len(report.pairs):,} pairs, no problems")
        return
    console.print(f"[bold red]not usable:[/] {len(report.problems)} problems (listed above)")
    raise typer.Exit(1)


def fetch(
    name: Annotated[str, typer.Argument(help=f"Which dataset: {', '.join(ARCHIVES)}.")],
    to: Annotated[Path, typer.Option("--to", help="Folder that receives the dataset folder.")] = Path("data"),
    url: Annotated[str | None, typer.Option("--url", help="A mirror of the same archive.")] = None,
    sha256: Annotated[
        str | None, typer.Option("--sha256", help="Expected SHA-256 of the archive (instead of counting its pairs).")
    ] = None,
) -> None:
    """Download a public dataset archive, verify it, and unpack it safely into TO/<name>."""
    with download_progress() as progress:
        task = progress.add_task(f"downloading {name}", total=None)
        result = fetch_dataset(
            name,
            to,
            url=url,
            sha256=sha256,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    verb = "downloaded" if result.downloaded else "already present:"
    console.print(f"[bold green]{verb}[/] {escape(str(result.path))} ({result.pairs:,} image/mask pairs)")
    console.print(f"use it with [bold]--data {escape(str(result.path))}[/]")
    if not (result.path / "splits" / "medico2020").is_dir():
        console.print(
            "the organisers' medico2020 lists are not in the archive: put train.txt and val.txt in "
            f"{escape(str(result.path / 'splits' / 'medico2020'))}/ or train with --split random"
        )


def cache(
    clear: Annotated[bool, typer.Option("--clear", help="Delete the entries (they are rebuilt on next use).")] = False,
    size: Annotated[int | None, typer.Option(min=1, help="Only the entries of this input size.")] = None,
) -> None:
    """Show the decoded cache (resized image/mask pairs kept for training), per input size; --clear deletes it."""
    decoded = DecodedCache()
    if clear:
        removed = decoded.clear(size)
        which = f" of input size {size}" if size is not None else ""
        console.print(f"deleted {removed:,} decoded entries{which} from {escape(str(decoded.root))}")
        return
    usage = {k: v for k, v in decoded.usage().items() if size is None or k == size}
    if not usage:
        console.print(f"the decoded cache {escape(str(decoded.root))} is empty")
        return
    table = Table(title=f"decoded cache {escape(str(decoded.root))}")
    for column in ("input size", "entries", "MB"):
        table.add_column(column, justify="right")
    for side, (entries, size_bytes) in usage.items():
        table.add_row(f"{side}x{side}", f"{entries:,}", f"{size_bytes / 1e6:,.1f}")
    console.print(table)


app.command("check")(check)
app.command("fetch")(fetch)
app.command("cache")(cache)
