"""Shared rich consoles and progress bars for the command line (library code never prints).

Whatever the consoles print, a control or format character in its text is shown as its escape (``\\x1b``), as the
leaderboard shows participant text (:func:`medico.leaderboard.participant.plain_text`): run folder names, image
names, a plugin's messages and a copied run's files reach the terminal, and an escape sequence in them must never
move the cursor, retitle the window or set the clipboard. The consoles' own colours and cursor moves are unchanged.

Written to a file or a pipe (``medico run ... > log``, ``| cat``), a line of text stays one line however long, and
tables are laid out :data:`PIPED_WIDTH` wide, or ``$COLUMNS`` wide where set, rather than rich's 80 columns.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

from rich.console import Console, ConsoleDimensions
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.segment import Segment
from rich.text import Text

from medico.leaderboard.participant import plain_text

__all__ = ["PIPED_WIDTH", "console", "err_console", "download_progress", "task_progress"]

PIPED_WIDTH = 160
"""The width tables are laid out to in a file or pipe without ``$COLUMNS``: every leaderboard column fits."""


class _PlainConsole(Console):
    """A console writing every unshown character of the text it prints as its escape, its own styles untouched; in a
    file or pipe, its text is never wrapped and its width is ``$COLUMNS`` or :data:`PIPED_WIDTH`."""

    @property
    def soft_wrap(self) -> bool:
        """Whether text is left unwrapped: when asked, and always where no terminal wraps it for the eye."""
        return self._soft_wrap or not self.is_terminal

    @soft_wrap.setter
    def soft_wrap(self, value: bool) -> None:
        self._soft_wrap = value

    @property
    def size(self) -> ConsoleDimensions:
        """The terminal's size; in a file or pipe, ``$COLUMNS`` (where set) or :data:`PIPED_WIDTH` columns wide."""
        size = super().size
        if self.is_terminal or self._width is not None or os.environ.get("COLUMNS", "").isdigit():
            return size
        return ConsoleDimensions(PIPED_WIDTH, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:  # every print, log and live refresh ends here
        return super()._render_buffer(
            segment if segment.control else Segment(_visible(segment.text), segment.style) for segment in buffer
        )


def _visible(text: str) -> str:
    """``text`` with unshown characters escaped, line breaks kept (rich lays lines out with them)."""
    return "\n".join(plain_text(line, limit=sys.maxsize) for line in text.split("\n"))


console = _PlainConsole()
# Errors, notes and messages on stderr stay one line however long (a file's path, a log grepped for it), wrapped by
# the terminal for the eye rather than by rich; tables and progress bars are laid out to the width as before.
err_console = _PlainConsole(stderr=True, soft_wrap=True)


def download_progress() -> Progress:
    """A progress bar for byte transfers (size, speed, ETA), drawn on stderr."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )


class _OwnText(ProgressColumn):
    """What ``column`` shows, or the task's own text in its field ``name`` where it has one (the whole run's bar of a
    training brings its measured ``count``, ``elapsed`` and ``left``)."""

    def __init__(self, column: ProgressColumn, name: str, style: str) -> None:
        super().__init__()
        self.column, self.name, self.style = column, name, style

    def render(self, task: Task) -> Text:
        own = task.fields.get(self.name)
        return Text(own, style=self.style) if own is not None else self.column.render(task)


def task_progress() -> Progress:
    """A progress bar for counted items (images, batches), drawn on stderr; a task may bring its own ``count``,
    ``elapsed`` and ``left`` texts."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        _OwnText(MofNCompleteColumn(), "count", "progress.download"),
        _OwnText(TimeElapsedColumn(), "elapsed", "progress.elapsed"),
        _OwnText(TimeRemainingColumn(), "left", "progress.remaining"),
        TextColumn("{task.fields[status]}"),
        console=err_console,
        transient=True,
    )
