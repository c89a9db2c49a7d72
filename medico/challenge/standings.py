"""A hosted challenge's leaderboard: ranked by the leaderboard's own rules (mIoU, then Dice, then the earlier
submission), on the public part until close and on the private part after.

Before close each team is shown with its best public submission. After close each team is ranked by the private
scores of the submission it selected, or of its best public one when it selected none (as Kaggle does), and each rank
shows its 95% bootstrap interval over the private images (:mod:`medico.leaderboard.rank_stability`, seeded by the
challenge's seed: the organiser's report gives the same). Private scores are read from the database only after close.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from medico.challenge.database import ChangeWatch
from medico.challenge.folder import Challenge
from medico.challenge.image_scores import PartScores, part_scores
from medico.challenge.partition import Part
from medico.challenge.phase import Phase, closed_at, phase_at
from medico.challenge.settings import ChallengeError
from medico.leaderboard.entry import SCORES, Entry, check_entry
from medico.leaderboard.errors import LeaderboardError
from medico.leaderboard.export import export_text
from medico.leaderboard.published import load_published
from medico.leaderboard.rank_stability import RANK_RESAMPLES, RankStability, bootstrap_ranks
from medico.leaderboard.ranking import Ranked, best_per_team, rank_entries, select_view
from medico.stats.per_image import CONFIDENCE

__all__ = [
    "RANKED_SUBMISSION",
    "FinalRanking",
    "LiveStandings",
    "Rendered",
    "Standings",
    "final_ranking",
    "ranked_submissions",
    "standings",
]

RANKED_SUBMISSION = "the submission the team selected, else its best public one (as Kaggle does)"
"""Which submission ranks a team after close, in words (what :func:`ranked_submissions` chooses), for reports."""

_SCORED = (
    "SELECT s.id, s.received, s.model, t.name AS team, sc.*, sel.submission_id AS selected, "
    "ROW_NUMBER() OVER (PARTITION BY s.team_id ORDER BY s.id) AS ordinal "
    "FROM submissions s JOIN teams t ON t.id = s.team_id "
    "JOIN scores sc ON sc.submission_id = s.id AND sc.round = s.round "
    "LEFT JOIN selections sel ON sel.team_id = s.team_id "
    "WHERE s.state = 'scored' AND sc.part = ?"
)


@dataclass(frozen=True)
class Standings:
    """The ranked rows of one part of the test set, and the challenge they belong to; ``seed`` drew the rows' rank
    intervals (None: no intervals, before close)."""

    name: str
    part: Part
    phase: Phase
    rows: list[Ranked]
    seed: int | None = None

    def records(self) -> dict[str, Any]:
        """The leaderboard as JSON-ready data: the part shown, how the rank intervals were drawn (None before close),
        and per row the rank and its interval (``[low, high]``, None where there is none), team, submission number
        (the team's n-th upload), the model its team named (``submission`` where none), time received and scores."""
        return {
            "challenge": self.name,
            "phase": self.phase,
            "part": self.part,
            "rank_intervals": None if self.seed is None else {
                "confidence": CONFIDENCE, "resamples": RANK_RESAMPLES, "seed": self.seed, "images": "private part",
            },
            "rows": [
                {
                    "rank": row.rank,
                    "rank_interval": None if row.interval is None else list(row.interval),
                    "team": row.entry.team,
                    "source": row.entry.source,
                    "submission": row.entry.run,
                    "model": row.entry.model,
                    "received": row.entry.created,
                    "n_images": row.entry.n_images,
                    **{name: getattr(row.entry, name) for name in SCORES},
                }
                for row in self.rows
            ],
        }

    def html(self) -> str:
        """The leaderboard page: the renderer of ``medico leaderboard --format html``, every text escaped."""
        state = "final ranking, private part" if self.part == "private" else "public part, until the challenge closes"
        return export_text(self.rows, "html", "segmentation", title=f"{self.name}: {state}")


def _entry(row: sqlite3.Row, part: Part, path: Path) -> Entry:
    """A scored submission's row for the leaderboard's ranking and renderer; the id marks it as read back from a
    store, so a name shows neutralised whatever it holds (the team gate ran when the team was added). Its scores pass
    the leaderboard's gate: a hand-edited value (text, infinite, outside [0, 1]) is refused, naming the database."""
    try:
        entry = Entry(
            team=row["team"],
            model=row["model"] or "submission",
            split="test",
            source="submission",
            run=row["ordinal"],
            n_images=row["n_images"],
            dataset=f"{part} part of the test set",
            created=row["received"],
            id=row["id"],
            **{name: row[name] for name in SCORES},
        )
        check_entry(entry)
    except (LeaderboardError, TypeError) as error:
        raise ChallengeError(f"challenge database {path}: submission {row['id']} ({part} part): {error}") from None
    return entry


def _entries(connection: sqlite3.Connection, part: Part, path: Path) -> list[tuple[Entry, sqlite3.Row]]:
    return [(_entry(row, part, path), row) for row in connection.execute(_SCORED, (part,))]


def _published(challenge: Challenge) -> list[Entry]:
    """The published figures when the challenge shows them; each ranks in its own group (its dataset), never
    among the teams."""
    try:
        return load_published() if challenge.settings.published else []
    except LeaderboardError as error:
        raise ChallengeError(str(error)) from None


def _ranked_after_close(challenge: Challenge, connection: sqlite3.Connection | None = None) -> list[Entry]:
    """The private entry each team is ranked by after close: of the submission it selected when that one has private
    scores, else of its best public one (as Kaggle does). Private scores are read here, so only once closed (in
    ``connection``'s transaction when given)."""
    if connection is None:
        with challenge.database.read() as reading:
            return _ranked_after_close(challenge, reading)
    public = _entries(connection, "public", challenge.database.path)
    private = {entry.id: entry for entry, _ in _entries(connection, "private", challenge.database.path)}
    selections = {row["team"]: row["selected"] for _, row in public if row["selected"] is not None}
    best = {entry.team: entry.id for entry in best_per_team([entry for entry, _ in public], "segmentation")}
    chosen = [selections[team] if selections.get(team) in private else choice for team, choice in best.items()]
    return [private[i] for i in chosen if i in private]


def ranked_submissions(challenge: Challenge) -> set[int]:
    """The ids of the submissions the teams are ranked by once the challenge is closed (call it only then: it reads
    private scores)."""
    return {entry.id for entry in _ranked_after_close(challenge) if entry.id is not None}


@dataclass(frozen=True)
class FinalRanking:
    """The teams' ranking after close (each team's ranked submission on the private part, best first) and those
    submissions' per-image private scores, in the same order."""

    rows: list[Ranked]
    scores: PartScores

    def rank_stability(self, seed: int, resamples: int = RANK_RESAMPLES) -> RankStability:
        """The teams' ranks on ``resamples`` bootstrap resamples of the private images, seeded by ``seed``."""
        return bootstrap_ranks(self.scores.scores["iou"], self.scores.scores["dice"], resamples=resamples, seed=seed)


def final_ranking(challenge: Challenge) -> FinalRanking:
    """The ranking after close and its per-image scores, read in one transaction (call it only once closed, or for
    the organiser's preview: it reads private scores)."""
    with challenge.database.read() as connection:
        rows = rank_entries(_ranked_after_close(challenge, connection), "segmentation")
        ids = [row.entry.id for row in rows]
        return FinalRanking(rows, part_scores(connection, ids, "private", challenge.database.path))  # type: ignore[arg-type]


def standings(challenge: Challenge, phase: Phase) -> Standings:
    """The leaderboard for ``phase``: public before close, private (selected or best public submission) after, each
    team's rank with its 95% bootstrap interval (:data:`RANK_RESAMPLES` resamples seeded by the challenge's seed, as
    the organiser's report draws them by default)."""
    published = _published(challenge)
    if phase == "closed":
        final = final_ranking(challenge)
        intervals = final.rank_stability(challenge.settings.seed).intervals() if final.rows else []
        teams = [dataclasses.replace(row, interval=interval) for row, interval in zip(final.rows, intervals)]
        rows = sorted(teams + rank_entries(published, "segmentation"), key=lambda row: row.group)
        return Standings(challenge.settings.name, "private", phase, rows, challenge.settings.seed)
    with challenge.database.read() as connection:
        public = _entries(connection, "public", challenge.database.path)
    rows = select_view([entry for entry, _ in public] + published, "segmentation", "best")
    return Standings(challenge.settings.name, "public", phase, rows)


@dataclass(frozen=True)
class Rendered:
    """One phase's standings as served: the HTML page and the JSON document, encoded."""

    html: bytes
    json: bytes

    @classmethod
    def of(cls, board: Standings) -> Rendered:
        """``board`` rendered: the page, and the JSON as Starlette's ``JSONResponse`` writes it (compact, UTF-8)."""
        records = json.dumps(board.records(), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return cls(board.html().encode("utf-8"), records.encode("utf-8"))


@dataclass(frozen=True)
class _Snapshot:
    """What was read at one database version: the hand-closing time, and the standings rendered so far per phase."""

    version: tuple[int, int, int]
    closed: datetime | None
    boards: dict[Phase, Rendered] = field(default_factory=dict)


class LiveStandings:
    """The challenge's standings, rendered, kept until the database changes (:class:`ChangeWatch`).

    The phase is worked out from the clock on every request, never kept: the first request after the closing time
    gets the private ranking, whatever was rendered before. :meth:`cached` is the fast path (no read of the tables,
    safe on an event loop); :meth:`current` reads and renders when nothing up to date is kept (in a worker thread).
    """

    def __init__(self, challenge: Challenge) -> None:
        self._challenge = challenge
        self._watch = ChangeWatch(challenge.database)
        self._rebuilding = threading.Lock()
        self._snapshot: _Snapshot | None = None

    def cached(self, now: datetime) -> Rendered | None:
        """The standings at ``now`` if up to date ones are kept, else None."""
        version = self._watch.version()
        snapshot = self._snapshot
        if snapshot is None or snapshot.version != version:
            return None
        return snapshot.boards.get(phase_at(self._challenge.settings, snapshot.closed, now))

    def current(self, now: datetime) -> Rendered:
        """The standings at ``now``: kept ones while the database is unchanged, else read and rendered afresh."""
        with self._rebuilding:
            version = self._watch.version()  # before the reads: a change after it is noticed by the next request
            snapshot = self._snapshot
            if snapshot is None or snapshot.version != version:
                snapshot = _Snapshot(version, closed_at(self._challenge))
            phase = phase_at(self._challenge.settings, snapshot.closed, now)
            board = snapshot.boards.get(phase)
            if board is None:
                board = Rendered.of(standings(self._challenge, phase))
                snapshot = _Snapshot(snapshot.version, snapshot.closed, {**snapshot.boards, phase: board})
            self._snapshot = snapshot
            return board
