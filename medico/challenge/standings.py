"""A hosted challenge's leaderboard: ranked by the leaderboard's own rules (mIoU, then Dice, then the earlier
submission), on the public part until close and on the private part after.

Before close each team is shown with its best public submission. After close each team is ranked by the private
scores of the submission it selected, or of its best public one when it selected none (as Kaggle does). Private
scores are read from the database only after close.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medico.challenge.folder import Challenge
from medico.challenge.partition import Part
from medico.challenge.phase import Phase
from medico.challenge.settings import ChallengeError
from medico.leaderboard.entry import SCORES, Entry, check_entry
from medico.leaderboard.errors import LeaderboardError
from medico.leaderboard.export import export_text
from medico.leaderboard.ranking import Ranked, best_per_team, rank_entries, select_view

__all__ = ["Standings", "standings"]

_SCORED = (
    "SELECT s.id, s.received, t.name AS team, sc.*, sel.submission_id AS selected, "
    "ROW_NUMBER() OVER (PARTITION BY s.team_id ORDER BY s.id) AS ordinal "
    "FROM submissions s JOIN teams t ON t.id = s.team_id "
    "JOIN scores sc ON sc.submission_id = s.id AND sc.round = s.round "
    "LEFT JOIN selections sel ON sel.team_id = s.team_id "
    "WHERE s.state = 'scored' AND sc.part = ?"
)


@dataclass(frozen=True)
class Standings:
    """The ranked rows of one part of the test set, and the challenge they belong to."""

    name: str
    part: Part
    phase: Phase
    rows: list[Ranked]

    def records(self) -> dict[str, Any]:
        """The leaderboard as JSON-ready data: the part shown, and per row the rank, team, submission number (the
        team's n-th upload), time received and scores."""
        return {
            "challenge": self.name,
            "phase": self.phase,
            "part": self.part,
            "rows": [
                {
                    "rank": row.rank,
                    "team": row.entry.team,
                    "submission": row.entry.run,
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
            model="submission",
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


def standings(challenge: Challenge, phase: Phase) -> Standings:
    """The leaderboard for ``phase``: public before close, private (selected or best public submission) after."""
    with challenge.database.read() as connection:
        public = _entries(connection, "public", challenge.database.path)
        if phase != "closed":
            rows = select_view([entry for entry, _ in public], "segmentation", "best")
            return Standings(challenge.settings.name, "public", phase, rows)
        private = {entry.id: entry for entry, _ in _entries(connection, "private", challenge.database.path)}
    selections = {row["team"]: row["selected"] for _, row in public if row["selected"] is not None}
    best = {entry.team: entry.id for entry in best_per_team([entry for entry, _ in public], "segmentation")}
    chosen = [selections[team] if selections.get(team) in private else choice for team, choice in best.items()]
    rows = rank_entries([private[i] for i in chosen if i in private], "segmentation")
    return Standings(challenge.settings.name, "private", phase, rows)
