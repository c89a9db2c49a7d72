"""Whether a challenge takes submissions yet, still, or no more: the one place that decides, for every command and
request. After close the leaderboard switches to the private part."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Literal

from medico.challenge.database import timestamp
from medico.challenge.folder import Challenge
from medico.challenge.settings import ChallengeError, Settings
from medico.leaderboard.participant import plain_text

__all__ = ["Phase", "close_challenge", "closed_at", "closing_time", "current_phase", "phase_at", "upload_refusal"]

Phase = Literal["before", "open", "closed"]


def closed_at(challenge: Challenge, connection: sqlite3.Connection | None = None) -> datetime | None:
    """When ``medico challenge close`` closed the challenge (None: not closed by hand); read in ``connection``'s
    transaction when given, so a decision taken under its write lock cannot miss a close."""
    if connection is None:
        with challenge.database.read() as reading:
            return closed_at(challenge, reading)
    row = connection.execute("SELECT value FROM meta WHERE key = 'closed'").fetchone()
    return None if row is None else _closing_time(challenge, row["value"])


def _closing_time(challenge: Challenge, value: object) -> datetime:
    """The stored closing time as an aware datetime; a hand-edited value that is not one is refused, naming the file."""
    try:
        moment = datetime.fromisoformat(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ChallengeError(
            f"challenge database {challenge.database.path}: the closing time {plain_text(repr(value), 60)} is not a "
            "date and time with a zone (medico challenge close writes one)"
        )
    return moment


def current_phase(challenge: Challenge, now: datetime) -> Phase:
    """``before`` the opening time, ``closed`` once closed by hand or past the closing time, else ``open``."""
    return phase_at(challenge.settings, closed_at(challenge), now)


def closing_time(settings: Settings, closed: datetime | None) -> datetime | None:
    """When the challenge closes, or closed: the earlier of its closing time and ``closed``, when it was closed by hand
    (:func:`closed_at`); None when neither is set."""
    return min((moment for moment in (closed, settings.closes) if moment is not None), default=None)


def phase_at(settings: Settings, closed: datetime | None, now: datetime) -> Phase:
    """What :func:`current_phase` decides, for a caller that already read :func:`closed_at` (``closed``, None when
    not closed by hand): a cache of the standings still asks the time on every request."""
    closes = closing_time(settings, closed)
    if closes is not None and closes <= now:
        return "closed"
    if settings.opens is not None and now < settings.opens:
        return "before"
    return "open"


def upload_refusal(settings: Settings, closed: datetime | None, now: datetime) -> str | None:
    """Why no upload is taken at ``now`` (:func:`phase_at` with ``closed``): before the opening or after the close,
    saying when; None while the challenge is open."""
    phase, closes = phase_at(settings, closed, now), closing_time(settings, closed)
    if phase == "before" and settings.opens is not None:
        return f"the challenge opens at {settings.opens.isoformat()}"
    if phase == "closed" and closes is not None:
        return f"the challenge is closed (since {closes.isoformat()})"
    return None


def close_challenge(challenge: Challenge, now: datetime) -> datetime:
    """Close the challenge at ``now`` (kept when already closed by hand); returns when it closed."""
    with challenge.database.write() as connection:
        connection.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('closed', ?)", (timestamp(now),))
        return _closing_time(challenge, connection.execute("SELECT value FROM meta WHERE key = 'closed'").fetchone()[0])
