"""What ``medico leaderboard`` shows: the stored entries of one task, filtered, with published figures when asked,
ranked."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from medico.leaderboard.entry import SPLITS, TASKS, Entry
from medico.leaderboard.errors import LeaderboardError
from medico.leaderboard.published import load_published
from medico.leaderboard.ranking import Ranked, View, select_view
from medico.leaderboard.store import LeaderboardStore

__all__ = ["entries_for_task", "filter_entries", "leaderboard_rows"]


def filter_entries(
    entries: Iterable[Entry], *, split: str | None = None, model: str | None = None, device: str | None = None
) -> list[Entry]:
    """The entries matching every filter given (``device`` matches ``fps_device``)."""
    return [
        entry
        for entry in entries
        if (split is None or entry.split == split)
        and (model is None or entry.model == model)
        and (device is None or entry.fps_device == device)
    ]


def entries_for_task(entries: Iterable[Entry], task: str) -> list[Entry]:
    """The entries that belong in ``task``'s view.

    Segmentation: segmentation entries with Dice or IoU. Efficiency: every entry with an FPS, since a measured run
    or a paper reports accuracy and speed together (``medico run`` records its validation scores and its model
    FPS in one entry); a task 2 entry's mIoU is shown beside its FPS but never ranked in task 1.
    """
    if task == "efficiency":
        return [entry for entry in entries if entry.fps is not None]
    return [e for e in entries if e.task == "segmentation" and (e.dice is not None or e.iou is not None)]


def leaderboard_rows(
    store: LeaderboardStore,
    *,
    task: str = "segmentation",
    split: str | None = None,
    model: str | None = None,
    device: str | None = None,
    view: View = "best",
    with_published: bool = False,
    published_csv: Path | None = None,
) -> list[Ranked]:
    """The ranked rows for ``task``; published figures (from ``published_csv``, default the shipped file) are
    ranked with the measured ones only when ``with_published``, so they never change a measured rank otherwise."""
    for name, value, allowed in (("task", task, TASKS), ("split", split, SPLITS)):
        if value is not None and value not in allowed:
            raise LeaderboardError(f"{name}: expected one of {', '.join(allowed)}, got {value!r}")
    entries = store.entries(split=split, model=model, device=device)
    if with_published:
        entries += filter_entries(load_published(published_csv), split=split, model=model, device=device)
    return select_view(entries_for_task(entries, task), task, view)
