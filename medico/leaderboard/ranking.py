"""Ranking rules, as pure functions over entries (no database, no printing).

* Task 1 (segmentation): mIoU, then Dice, then the earlier entry; equal (mIoU, Dice) share a rank (1, 2, 2, 4).
* Task 2 (efficiency): FPS, compared only among entries measured on the same device with the same kind of FPS
  (forward only or end-to-end); each such group is ranked on its own.
* Segmentation entries are compared within one split: a validation score never outranks a test score.

An entry lacking the figure its task ranks by (no mIoU, no FPS) is listed after the ranked ones, without a rank.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from medico.leaderboard.entry import Entry

__all__ = [
    "SEGMENTATION_RULE",
    "Ranked",
    "View",
    "best_per_team",
    "comparison_group",
    "competition_ranks",
    "latest_per_team",
    "rank_entries",
    "segmentation_ranks",
    "select_view",
]

View = Literal["best", "all", "latest"]

SEGMENTATION_RULE = "mIoU, then Dice, then the earlier entry; equal (mIoU, Dice) share a rank (1, 2, 2, 4)"
"""Task 1's ranking rule in words (what :func:`rank_entries` and :func:`segmentation_ranks` do), for reports."""


@dataclass(frozen=True)
class Ranked:
    """An entry with its rank (None: not rankable) within its comparison group (see :func:`comparison_group`), and
    where known the 95% bootstrap interval of that rank (``(low, high)``: a hosted challenge's private ranking)."""

    rank: int | None
    group: str
    entry: Entry
    interval: tuple[int, int] | None = None


def comparison_group(entry: Entry, task: str) -> str:
    """Which entries ``entry`` is compared with: its split and the data it was scored on (segmentation), or its
    device, FPS kind and precision (efficiency). A synthetic-data score is never ranked against a Kvasir-SEG one,
    nor a bf16 FPS against an fp32 one."""
    if task == "efficiency":
        kind = f"{entry.fps_kind} FPS" if entry.fps_kind else "FPS kind not stated"
        return f"{entry.fps_device or 'device not stated'}, {kind}, {entry.fps_precision or 'precision not stated'}"
    return f"{entry.split} split" + (f", {entry.dataset}" if entry.dataset else "")


def _descending(value: float | None) -> tuple[bool, float]:
    """Sort key putting larger values first and missing values last."""
    return (value is None, -value if value is not None else 0.0)


def _segmentation_key(iou: float | None, dice: float | None) -> tuple:
    return (_descending(iou), _descending(dice))


def _score_key(entry: Entry, task: str) -> tuple:
    if task == "efficiency":
        return (_descending(entry.fps),)
    return _segmentation_key(entry.iou, entry.dice)


def _order_key(entry: Entry, task: str) -> tuple:
    """Best first, then the earlier entry; the trailing fields only make the order total (stable across inputs)."""
    return (
        _score_key(entry, task),
        entry.created is None,
        entry.created or "",
        entry.id if entry.id is not None else math.inf,
        entry.team,
        entry.model,
        entry.run if entry.run is not None else -1,
    )


def _rankable(entry: Entry, task: str) -> bool:
    return (entry.fps if task == "efficiency" else entry.iou) is not None


def competition_ranks(keys: Sequence[object]) -> list[int]:
    """Standard competition ranks for keys sorted best first: equal keys share a rank, the next rank skips.

    Example:
        >>> competition_ranks([3, 2, 2, 1])
        [1, 2, 2, 4]
    """
    ranks: list[int] = []
    for position, key in enumerate(keys):
        ranks.append(ranks[-1] if position and key == keys[position - 1] else position + 1)
    return ranks


def segmentation_ranks(iou: Sequence[float], dice: Sequence[float]) -> list[int]:
    """The task 1 rank of each of several results given by their mIoU and Dice, in the order given: by mIoU, then
    Dice, equal pairs sharing a rank (what :func:`rank_entries` gives entries, for scores that are not entries yet:
    a bootstrap resample's means).

    Example:
        >>> segmentation_ranks([0.7, 0.8, 0.7, 0.7], [0.8, 0.9, 0.8, 0.85])
        [3, 1, 3, 2]
    """
    keys = [_segmentation_key(value, other) for value, other in zip(iou, dice)]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    ranks = [0] * len(keys)
    for index, rank in zip(order, competition_ranks([keys[index] for index in order])):
        ranks[index] = rank
    return ranks


def rank_entries(entries: Iterable[Entry], task: str) -> list[Ranked]:
    """Rank ``entries`` for ``task`` within each comparison group; groups in name order, each best first."""
    groups: dict[str, list[Entry]] = {}
    for entry in entries:
        groups.setdefault(comparison_group(entry, task), []).append(entry)
    ranked: list[Ranked] = []
    for group in sorted(groups):
        members = sorted(groups[group], key=lambda entry: _order_key(entry, task))
        rankable = [entry for entry in members if _rankable(entry, task)]
        ranks = competition_ranks([_score_key(entry, task) for entry in rankable])
        ranked += [Ranked(rank, group, entry) for rank, entry in zip(ranks, rankable)]
        ranked += [Ranked(None, group, entry) for entry in members if not _rankable(entry, task)]
    return ranked


def _per_team(
    entries: Iterable[Entry], task: str, key: Callable[[Entry], tuple], pick: Callable[[tuple, tuple], bool]
) -> list[Entry]:
    """One entry per (team, comparison group): the one ``pick`` prefers by ``key``."""
    chosen: dict[tuple[str, str], Entry] = {}
    for entry in entries:
        slot = (entry.team, comparison_group(entry, task))
        if slot not in chosen or pick(key(entry), key(chosen[slot])):
            chosen[slot] = entry
    return list(chosen.values())


def best_per_team(entries: Iterable[Entry], task: str) -> list[Entry]:
    """Each team's best entry in each comparison group (ties: the earlier entry)."""
    return _per_team(entries, task, lambda entry: _order_key(entry, task), lambda new, old: new < old)


def _age_key(entry: Entry) -> tuple:
    return (entry.created or "", entry.id if entry.id is not None else -1)


def latest_per_team(entries: Iterable[Entry], task: str) -> list[Entry]:
    """Each team's most recent entry in each comparison group (by creation time, then row id)."""
    return _per_team(entries, task, _age_key, lambda new, old: new > old)


def select_view(entries: Iterable[Entry], task: str, view: View = "best") -> list[Ranked]:
    """The ranked rows of a view: each team's ``best`` (default), ``all`` runs, or each team's ``latest``."""
    if view == "best":
        entries = best_per_team(entries, task)
    elif view == "latest":
        entries = latest_per_team(entries, task)
    elif view != "all":
        raise ValueError(f"view: expected 'best', 'all' or 'latest', got {view!r}")
    return rank_entries(entries, task)
