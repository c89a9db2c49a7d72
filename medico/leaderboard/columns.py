"""The columns people read on the leaderboard (terminal, markdown, html): header, value, text, and whether higher is
better. Scores are shown as fractions with four decimals (0.8988), FPS with one decimal, dates as YYYY-MM-DD."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from medico.leaderboard.ranking import Ranked

__all__ = ["Column", "best_values", "display_columns", "format_fps", "format_score"]


def format_score(value: float | None) -> str:
    """A score in [0, 1] as people quote it here: four decimals (``0.8988``), ``-`` when not given."""
    return "-" if value is None else f"{value:.4f}"


def format_fps(value: float | None) -> str:
    """Frames per second with one decimal, ``-`` when not given."""
    return "-" if value is None else f"{value:.1f}"


def _text(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


@dataclass(frozen=True)
class Column:
    """One displayed column: ``value`` gives the raw value of a row, ``text`` formats it; ``higher_is_better`` marks
    the columns whose best value is highlighted; ``secondary`` ones are left out where space is short."""

    header: str
    value: Callable[[Ranked], object]
    text: Callable[[object], str] = _text
    higher_is_better: bool = False
    numeric: bool = False
    secondary: bool = False


def _score(name: str, header: str, secondary: bool = False) -> Column:
    return Column(
        header,
        lambda row: getattr(row.entry, name),
        format_score,
        higher_is_better=True,
        numeric=True,
        secondary=secondary,
    )


def display_columns(task: str) -> list[Column]:
    """rank, team, run, model, the scores (FPS first for the efficiency task), device, date."""
    scores = [
        _score("iou", "mIoU"),
        _score("dice", "Dice"),
        _score("precision", "precision", secondary=True),
        _score("recall", "recall", secondary=True),
        _score("f2", "F2", secondary=True),
    ]
    fps = Column("FPS", lambda row: row.entry.fps, format_fps, higher_is_better=True, numeric=True)
    measures = [fps, *scores] if task == "efficiency" else [*scores, fps]
    return [
        Column("rank", lambda row: row.rank, numeric=True),
        Column("team", lambda row: row.entry.team),
        Column("run", lambda row: row.entry.run, numeric=True),
        Column("model", lambda row: row.entry.model),
        *measures,
        Column("device", lambda row: row.entry.fps_device),
        Column("date", lambda row: (row.entry.created or "")[:10]),
    ]


def best_values(rows: list[Ranked], columns: list[Column]) -> dict[str, object]:
    """The best (largest) value of each higher-is-better column over ``rows``; columns with no value are left out."""
    best: dict[str, object] = {}
    for column in columns:
        values = [value for row in rows if (value := column.value(row)) is not None]
        if column.higher_is_better and values:
            best[column.header] = max(values)
    return best
