"""Per-image scores of scored submissions on one part of the test set, as matrices (submissions x images): what the
rank intervals of the standings and the organiser's report resample and test."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medico.challenge.partition import Part
from medico.challenge.settings import ChallengeError
from medico.errors import some
from medico.leaderboard.entry import SCORES

__all__ = ["RANKING_SCORES", "PartScores", "part_scores"]

RANKING_SCORES = ("iou", "dice")
"""The scores the task 1 ranking reads (mIoU, then Dice): what is read unless others are asked for."""


@dataclass(frozen=True)
class PartScores:
    """Scores of submissions on the images of one part: ``scores[name][s, i]`` is submission s's score ``name`` (a
    :data:`~medico.leaderboard.entry.SCORES` name) on image ``images[i]``, submissions in the order asked for."""

    part: Part
    images: list[str]
    scores: dict[str, np.ndarray]


def part_scores(
    connection: sqlite3.Connection,
    submissions: Sequence[int],
    part: Part,
    path: Path,
    names: Sequence[str] = RANKING_SCORES,
) -> PartScores:
    """The per-image scores ``names`` of ``submissions`` (scored, each in its current round) on every image of
    ``part``, read in ``connection``'s transaction (so they match the scores the ranking was read from).

    Raises:
        ChallengeError: a submission lacks a score on some image of the part, or holds one that is not a number in
            [0, 1] (a hand-edited database, named by ``path``).
    """
    unknown = sorted(set(names) - set(SCORES))
    if unknown:
        raise ValueError(f"names: expected some of {', '.join(SCORES)}, got {', '.join(unknown)}")
    images = [row[0] for row in connection.execute("SELECT name FROM images WHERE part = ? ORDER BY name", (part,))]
    column = {name: index for index, name in enumerate(images)}
    place = {submission: index for index, submission in enumerate(submissions)}
    rows = connection.execute(
        f"SELECT i.submission_id, i.name, {', '.join(f'i.{name}' for name in names)} FROM image_scores i "
        "JOIN submissions s ON s.id = i.submission_id AND s.round = i.round JOIN images USING (name) "
        f"WHERE s.state = 'scored' AND images.part = ? AND i.submission_id IN ({', '.join('?' * len(submissions))})",
        (part, *submissions),
    ).fetchall()
    where = (np.array([place[row[0]] for row in rows], dtype=np.intp),
             np.array([column[row[1]] for row in rows], dtype=np.intp))
    scores = {}
    for offset, name in enumerate(names, start=2):
        scores[name] = np.full((len(submissions), len(images)), np.nan)
        scores[name][where] = _fractions([row[offset] for row in rows], [row[0] for row in rows], path)
    for index, submission in enumerate(submissions):
        missing = [images[i] for i in np.flatnonzero(np.isnan(scores[names[0]][index]))] if names else []
        if missing:
            raise ChallengeError(f"challenge database {path}: submission {submission} has no score on {len(missing)} "
                                 f"{part} images ({some(missing)}); medico challenge rescore scores it again")
    return PartScores(part, images, scores)


def _fractions(values: list[object], submissions: list[int], path: Path) -> np.ndarray:
    """Stored per-image scores as floats, refused unless each is a number in [0, 1] (naming the first that is not)."""
    numeric = [type(value) in (int, float) for value in values]
    array = np.array([value if ok else np.nan for value, ok in zip(values, numeric)], dtype=np.float64)
    wrong = np.flatnonzero(~((array >= 0.0) & (array <= 1.0)))
    if wrong.size:
        first = int(wrong[0])
        raise ChallengeError(f"challenge database {path}: submission {submissions[first]}: a per-image score "
                             f"{values[first]!r} is not a fraction in [0, 1]")
    return array
