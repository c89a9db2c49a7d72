"""The scoring queue: queued submissions are claimed one at a time by a worker, scored, and their outcome recorded
under the scoring round they were claimed in (rounds start when the truth changes: ``medico challenge rescore``).

A claim, a record and a rescore are each one write transaction, so several workers (the server's, a rescore
command's) never score the same submission for the same round twice, and a submission re-queued while it was being
scored keeps its new place in the queue (its older outcome is kept as history).

A submission whose worker, or the worker's child scoring it, died while scoring it (killed for memory, a crash in a
native decoder) is queued again, and marked invalid once that happened :data:`MAX_CRASHES` times in one round, so
that it cannot stop scoring for everyone; the count is kept in the database, as the worker that could count it may
be the one that died.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from medico.challenge.database import timestamp
from medico.challenge.folder import Challenge
from medico.challenge.partition import Part
from medico.leaderboard.entry import SCORES

__all__ = [
    "MAX_CRASHES",
    "SERVER_FAULT",
    "Abandoned",
    "Claim",
    "Fault",
    "Outcome",
    "claim_next",
    "current_round",
    "partition",
    "record_crash",
    "record_outcome",
    "release",
    "release_worker",
    "requeue_abandoned",
    "retry_server_fault",
    "start_round",
]

SERVER_FAULT = (
    "the server could not score this archive (its fault, not the archive's); the organiser has been told, and it does "
    "not count against your team's limits"
)
MAX_CRASHES = 2
"""Times a worker may die scoring one submission in a round before the submission is marked invalid."""


@dataclass(frozen=True)
class Claim:
    """A submission a worker took from the queue, and the round (and truth fingerprint) it is scored for."""

    submission: int
    round: int
    truth_fingerprint: str


Fault = Literal["archive", "server"]
"""Whose fault an invalid submission is: the archive's (it broke a rule or a limit) or the server's."""


@dataclass(frozen=True)
class Outcome:
    """A scored submission (``parts``: each part's mean scores and image count; ``images``: per-image scores) or an
    invalid one (``messages``: the validator's findings, or what went wrong; ``fault``: whose fault it is)."""

    parts: Mapping[Part, Mapping[str, float]] | None = None
    images: Mapping[str, Mapping[str, float]] | None = None
    messages: tuple[str, ...] = ()
    fault: Fault = "archive"


def partition(challenge: Challenge) -> dict[str, Part]:
    """The recorded ``{image name: part}``."""
    with challenge.database.read() as connection:
        return {row["name"]: row["part"] for row in connection.execute("SELECT name, part FROM images")}


def current_round(challenge: Challenge) -> tuple[int, str]:
    """The current scoring round and the truth fingerprint it scores against."""
    with challenge.database.read() as connection:
        row = connection.execute("SELECT round, truth_fingerprint FROM rounds ORDER BY round DESC LIMIT 1").fetchone()
    return row["round"], row["truth_fingerprint"]


def claim_next(challenge: Challenge, worker: int | None = None) -> Claim | None:
    """Take the oldest queued submission for scoring, for process ``worker`` (default this one); None when the queue
    is empty."""
    worker = os.getpid() if worker is None else worker
    with challenge.database.read() as connection:  # an idle worker asks often: only a read, no write lock
        if connection.execute("SELECT 1 FROM submissions WHERE state = 'queued' LIMIT 1").fetchone() is None:
            return None
    with challenge.database.write() as connection:
        row = connection.execute("SELECT id FROM submissions WHERE state = 'queued' ORDER BY id LIMIT 1").fetchone()
        if row is None:
            return None
        number, fingerprint = connection.execute(
            "SELECT round, truth_fingerprint FROM rounds ORDER BY round DESC LIMIT 1"
        ).fetchone()
        connection.execute(
            "UPDATE submissions SET state = 'scoring', round = ?, worker = ? WHERE id = ?", (number, worker, row["id"])
        )
    return Claim(row["id"], number, fingerprint)


def record_outcome(challenge: Challenge, claim: Claim, outcome: Outcome, now: datetime) -> None:
    """Store ``outcome`` under ``claim``'s round; the submission's state changes only if it was not re-queued since."""
    columns = ", ".join(SCORES)
    marks = ", ".join("?" * len(SCORES))
    with challenge.database.write() as connection:
        for part, scores in (outcome.parts or {}).items():
            connection.execute(
                f"INSERT OR REPLACE INTO scores (submission_id, round, part, n_images, {columns}, scored) "
                f"VALUES (?, ?, ?, ?, {marks}, ?)",
                (claim.submission, claim.round, part, int(scores["n_images"]), *(scores[n] for n in SCORES),
                 timestamp(now)),
            )
        connection.executemany(
            f"INSERT OR REPLACE INTO image_scores (submission_id, round, name, {columns}) VALUES (?, ?, ?, {marks})",
            [
                (claim.submission, claim.round, name, *(scores[n] for n in SCORES))
                for name, scores in (outcome.images or {}).items()
            ],
        )
        scored = outcome.parts is not None
        connection.execute(
            "UPDATE submissions SET state = ?, messages = ?, fault = ?, worker = NULL "
            "WHERE id = ? AND state = 'scoring' AND round = ?",
            ("scored" if scored else "invalid", json.dumps(list(outcome.messages)), None if scored else outcome.fault,
             claim.submission, claim.round),
        )


@dataclass(frozen=True)
class Abandoned:
    """Submissions left ``scoring`` by a worker that died: ``queued`` again, or ``given_up`` (marked invalid, as
    their scoring stopped a worker :data:`MAX_CRASHES` times this round)."""

    queued: tuple[int, ...] = ()
    given_up: tuple[int, ...] = ()


def requeue_abandoned(challenge: Challenge, alive: Callable[[int], bool]) -> Abandoned:
    """Queue again the submissions whose worker process ``alive(pid)`` says is gone, counting the crash; those whose
    scoring a dead worker left :data:`MAX_CRASHES` times this round become invalid (:data:`SERVER_FAULT`)."""
    with challenge.database.read() as connection:  # asked often by an idle worker: a write only when one is gone
        rows = connection.execute("SELECT worker FROM submissions WHERE state = 'scoring'").fetchall()
    if all(row["worker"] is not None and alive(row["worker"]) for row in rows):
        return Abandoned()
    queued, given_up = [], []
    with challenge.database.write() as connection:
        rows = connection.execute("SELECT id, worker, crashes FROM submissions WHERE state = 'scoring'").fetchall()
        for row in rows:
            if row["worker"] is not None and alive(row["worker"]):
                continue
            (given_up if _count_crash(connection, row["id"], row["crashes"]) else queued).append(row["id"])
    return Abandoned(tuple(queued), tuple(given_up))


def record_crash(challenge: Challenge, claim: Claim) -> bool:
    """Queue ``claim``'s submission again after the process scoring it died (the worker's child per archive),
    counting the crash as a dead worker's is; True when that made it invalid (:data:`MAX_CRASHES`). Nothing changes
    when it was queued again since (a rescore)."""
    with challenge.database.write() as connection:
        row = connection.execute(
            "SELECT crashes FROM submissions WHERE id = ? AND state = 'scoring' AND round = ?",
            (claim.submission, claim.round),
        ).fetchone()
        return row is not None and _count_crash(connection, claim.submission, row["crashes"])


def _count_crash(connection: sqlite3.Connection, submission: int, crashes: int) -> bool:
    """Queue ``submission`` again with one more crash (``crashes`` so far), or, at :data:`MAX_CRASHES`, make it invalid
    by the server's fault (never counted against its team: a crash is no proof of the archive's); True then."""
    crashes += 1
    connection.execute("UPDATE submissions SET state = 'queued', worker = NULL, crashes = ? WHERE id = ?",
                       (crashes, submission))
    if crashes < MAX_CRASHES:
        return False
    connection.execute("UPDATE submissions SET state = 'invalid', messages = ?, fault = 'server' WHERE id = ?",
                       (json.dumps([SERVER_FAULT]), submission))
    return True


def release_worker(challenge: Challenge, worker: int) -> int:
    """Queue again the submissions process ``worker`` claimed and did not record, without counting a crash: it says
    so itself, or the server stopped it (not the archive); returns how many."""
    with challenge.database.write() as connection:
        return connection.execute(
            "UPDATE submissions SET state = 'queued', worker = NULL WHERE state = 'scoring' AND worker = ?",
            (worker,),
        ).rowcount


def retry_server_fault(connection: sqlite3.Connection, submission: int) -> bool:
    """Queue ``submission`` again, in ``connection``'s transaction, when the server failed to score it (its team sent
    the same archive again: the archive was never at fault); True when it was such a submission."""
    return connection.execute(
        "UPDATE submissions SET state = 'queued', worker = NULL, crashes = 0, fault = NULL, messages = '[]' "
        "WHERE id = ? AND state = 'invalid' AND fault = 'server'",
        (submission,),
    ).rowcount == 1


def start_round(challenge: Challenge, truth_fingerprint: str, now: datetime) -> tuple[int, int]:
    """Start a new scoring round against the truth of ``truth_fingerprint`` and queue every submission again (the
    earlier rounds' scores stay); returns the new round and how many submissions were queued."""
    with challenge.database.write() as connection:
        number = connection.execute("SELECT MAX(round) FROM rounds").fetchone()[0] + 1
        connection.execute(
            "INSERT INTO rounds (round, truth_fingerprint, started) VALUES (?, ?, ?)",
            (number, truth_fingerprint, timestamp(now)),
        )
        queued = connection.execute(
            "UPDATE submissions SET state = 'queued', worker = NULL, crashes = 0, fault = NULL"
        ).rowcount
    return number, queued


def release(challenge: Challenge, claim: Claim) -> None:
    """Put a claimed submission back in the queue unscored (its worker cannot score it now)."""
    with challenge.database.write() as connection:
        connection.execute(
            "UPDATE submissions SET state = 'queued', worker = NULL WHERE id = ? AND state = 'scoring' AND round = ?",
            (claim.submission, claim.round),
        )
