"""A team's submissions: adding a received archive under the limits, and what a team may read of its own.

What is shown depends on the phase: before close only public scores exist for any reader (:func:`visible_parts`), and
per-image ones only where the challenge's ``per_image_before_close`` says so; private ones are read from the database
only after close.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from medico.challenge.database import timestamp
from medico.challenge.folder import Challenge
from medico.challenge.limits import Allowance, allowance
from medico.challenge.partition import PARTS, Part
from medico.challenge.phase import Phase, closed_at, upload_refusal
from medico.challenge.queue import retry_server_fault
from medico.challenge.settings import ChallengeError
from medico.challenge.standings import ranked_submissions
from medico.challenge.teams import Team, token_current
from medico.leaderboard.entry import SCORES
from medico.leaderboard.participant import plain_text

__all__ = [
    "LimitReachedError",
    "Received",
    "UploadRefusedError",
    "add_submission",
    "select_submission",
    "team_allowance",
    "team_submission",
    "team_submissions",
    "visible_parts",
]


class LimitReachedError(ChallengeError):
    """The team has no upload left now; ``allowance`` says until when."""

    def __init__(self, left: Allowance) -> None:
        super().__init__(left.reason())
        self.allowance = left


class UploadRefusedError(ChallengeError):
    """An upload finished arriving when its team could no longer submit (the challenge closed, or its token was
    revoked or replaced, while it arrived); nothing of it was kept."""


@dataclass(frozen=True)
class Received:
    """A stored upload: its submission id, and whether the team had sent the same archive before."""

    id: int
    duplicate: bool


def visible_parts(phase: Phase) -> tuple[Part, ...]:
    """The parts whose scores anyone may see: the public one until the challenge closes, then both."""
    return PARTS if phase == "closed" else ("public",)


def add_submission(
    challenge: Challenge, team: Team, upload: Path, sha256: str, now: datetime, model: str | None = None
) -> Received:
    """Add the archive received in ``upload`` (a temporary in the uploads folder) as ``team``'s submission, queued,
    received at ``now`` (when its last byte arrived), with the ``model`` its team named (participant text, stored as
    :func:`~medico.leaderboard.participant.plain_text` makes it: capped, control and bidi characters as escapes; None
    or blank: not named).

    In one transaction, everything checked when the request started is checked again, as the body may have taken
    minutes: a team whose token was revoked or replaced meanwhile, or an upload finished outside the submission period,
    is refused; the same archive as one of the team's earlier ones is answered with that one (queued again when the
server failed to score it); a team without uploads
    left is refused; else the row is added and ``upload`` renamed to the submission's archive. A refused or duplicate
    ``upload`` is deleted.

    Raises:
        UploadRefusedError: the token is no longer the team's valid one, or the challenge is not open at ``now``.
        LimitReachedError: the team's daily or total limit is reached.
    """
    named = plain_text(model.strip()) if model is not None else ""
    try:
        with challenge.database.write() as connection:
            finished = f"your upload finished arriving at {now.isoformat()} and was not stored"
            if not token_current(challenge, team, connection):
                raise UploadRefusedError(f"your team's token was revoked or replaced meanwhile: {finished}")
            closed = upload_refusal(challenge.settings, closed_at(challenge, connection), now)
            if closed is not None:
                raise UploadRefusedError(f"{closed}: {finished}")
            row = connection.execute(
                "SELECT id FROM submissions WHERE team_id = ? AND sha256 = ?", (team.id, sha256)
            ).fetchone()
            if row is not None:  # the same archive again: its first submission (scored anew if the server failed it)
                if retry_server_fault(connection, row["id"]) and not challenge.archive(row["id"]).is_file():
                    os.replace(upload, challenge.archive(row["id"]))
                return Received(row["id"], True)
            left = allowance(connection, challenge.settings, team.id, now)
            if not left.allowed:
                raise LimitReachedError(left)
            cursor = connection.execute(
                "INSERT INTO submissions (team_id, sha256, size, received, state, model) "
                "VALUES (?, ?, ?, ?, 'queued', ?)",
                (team.id, sha256, upload.stat().st_size, timestamp(now), named or None),
            )
            submission = int(cursor.lastrowid)
            os.replace(upload, challenge.archive(submission))
            return Received(submission, False)
    finally:
        upload.unlink(missing_ok=True)


def team_allowance(challenge: Challenge, team: Team, now: datetime) -> Allowance:
    """``team``'s remaining uploads at ``now``."""
    with challenge.database.read() as connection:
        return allowance(connection, challenge.settings, team.id, now)


def _scores(row: sqlite3.Row) -> dict[str, float]:
    return {name: row[name] for name in SCORES}


def _view(
    connection: sqlite3.Connection, row: sqlite3.Row, parts: tuple[Part, ...], detail: bool, ranked: set[int]
) -> dict[str, Any]:
    """A submission as its team reads it: state, whether the team selected it and whether it is ranked by it (among
    ``ranked``), validator messages, and the scores of ``parts`` only."""
    view: dict[str, Any] = {
        "id": row["id"],
        "state": row["state"],
        "received": row["received"],
        "sha256": row["sha256"],
        "size": row["size"],
        "selected": bool(row["selected"]),
        "ranked": row["id"] in ranked,
        "messages": json.loads(row["messages"]),
        "scores": {},
    }
    if row["state"] != "scored":
        return view
    marks = ", ".join("?" * len(parts))
    for score in connection.execute(
        f"SELECT * FROM scores WHERE submission_id = ? AND round = ? AND part IN ({marks}) ORDER BY part",
        (row["id"], row["round"], *parts),
    ):
        view["scores"][score["part"]] = {"n_images": score["n_images"], **_scores(score)}
    if detail:
        view["per_image"] = [
            {"name": image["name"], "part": image["part"], **_scores(image)}
            for image in connection.execute(
                "SELECT i.*, images.part FROM image_scores i JOIN images USING (name) "
                f"WHERE i.submission_id = ? AND i.round = ? AND images.part IN ({marks}) ORDER BY i.name",
                (row["id"], row["round"], *parts),
            )
        ]
    return view


_OWN = (
    "SELECT s.*, (sel.submission_id IS NOT NULL) AS selected FROM submissions s "
    "LEFT JOIN selections sel ON sel.team_id = s.team_id AND sel.submission_id = s.id WHERE s.team_id = ?"
)


def _ranked(challenge: Challenge, phase: Phase) -> set[int]:
    """The submissions the teams are ranked by, once closed (the standings' rule); none before."""
    return ranked_submissions(challenge) if phase == "closed" else set()


def team_submissions(challenge: Challenge, team: Team, phase: Phase) -> list[dict[str, Any]]:
    """``team``'s submissions, oldest first, with the scores ``phase`` lets anyone see and, after close, which one the
    team is ranked by."""
    ranked = _ranked(challenge, phase)
    with challenge.database.read() as connection:
        rows = connection.execute(f"{_OWN} ORDER BY s.id", (team.id,)).fetchall()
        return [_view(connection, row, visible_parts(phase), detail=False, ranked=ranked) for row in rows]


def team_submission(challenge: Challenge, team: Team, submission: int, phase: Phase) -> dict[str, Any] | None:
    """Submission ``submission``, if it is ``team``'s, with its per-image scores after close (before, only when the
    challenge's ``per_image_before_close`` says so: public images only); None otherwise (another team's submission and
    a missing one look the same)."""
    ranked = _ranked(challenge, phase)
    detail = phase == "closed" or challenge.settings.per_image_before_close
    with challenge.database.read() as connection:
        row = connection.execute(f"{_OWN} AND s.id = ?", (team.id, submission)).fetchone()
        return None if row is None else _view(connection, row, visible_parts(phase), detail=detail, ranked=ranked)


def select_submission(challenge: Challenge, team: Team, submission: int) -> bool:
    """Make ``submission`` the one ``team`` is ranked by after close; False when it is not the team's scored one."""
    with challenge.database.write() as connection:
        row = connection.execute(
            "SELECT 1 FROM submissions WHERE id = ? AND team_id = ? AND state = 'scored'", (submission, team.id)
        ).fetchone()
        if row is None:
            return False
        connection.execute(
            "INSERT OR REPLACE INTO selections (team_id, submission_id) VALUES (?, ?)", (team.id, submission)
        )
    return True
