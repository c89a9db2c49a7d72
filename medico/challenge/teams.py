"""Teams and their tokens: a token is shown once, when made; the database keeps only a salted scrypt hash of it.

A token reads ``mc_<id>_<secret>``: the id finds the team's row, the secret is checked against the hash in constant
time (:func:`hmac.compare_digest`). An unknown id costs the same hash as a known one, so timing tells nothing (the web
app recognises a token it verified before without the hash: :mod:`medico.challenge.callers`). Team names pass the
leaderboard's one gate (:func:`medico.leaderboard.participant.check_team_name`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime

from medico.challenge.database import timestamp
from medico.challenge.folder import Challenge
from medico.challenge.settings import ChallengeError
from medico.leaderboard.participant import check_team_name

__all__ = [
    "Team",
    "TeamInfo",
    "add_team",
    "authenticate",
    "list_teams",
    "revoke_team",
    "token_current",
]

_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
_DUMMY_SALT = secrets.token_bytes(16)
_PREFIX = "mc"


@dataclass(frozen=True)
class Team:
    """An authenticated team: its row id, its name and the id of the token it showed (stale once the team's token is
    revoked or replaced: :func:`token_current`)."""

    id: int
    name: str
    token_id: str


@dataclass(frozen=True)
class TeamInfo:
    """A team as ``medico challenge team list`` shows it."""

    name: str
    created: str
    revoked: str | None
    submissions: int


def _hash(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode("utf-8", "surrogatepass"), salt=salt, **_SCRYPT)


def add_team(challenge: Challenge, name: str, now: datetime) -> str:
    """Register team ``name`` (or give a revoked team a new token) and return its token; only its hash is stored.

    Raises:
        TeamNameError: ``name`` is not a plain team name.
        ChallengeError: the team exists with a valid token.
    """
    check_team_name(name, "NAME")
    token_id, secret, salt = secrets.token_hex(8), secrets.token_urlsafe(32), secrets.token_bytes(16)
    values = (token_id, salt, _hash(secret, salt), timestamp(now), name)
    with challenge.database.write() as connection:
        row = connection.execute("SELECT revoked FROM teams WHERE name = ?", (name,)).fetchone()
        if row is not None and row["revoked"] is None:
            raise ChallengeError(f"team {name!r} already has a token; revoke it first to make a new one")
        if row is None:
            connection.execute(
                "INSERT INTO teams (token_id, salt, token_hash, created, name) VALUES (?, ?, ?, ?, ?)", values
            )
        else:
            connection.execute(
                "UPDATE teams SET token_id = ?, salt = ?, token_hash = ?, created = ?, revoked = NULL WHERE name = ?",
                values,
            )
    return f"{_PREFIX}_{token_id}_{secret}"


def revoke_team(challenge: Challenge, name: str, now: datetime) -> None:
    """Revoke team ``name``'s token (its submissions stay on the leaderboard).

    Raises:
        ChallengeError: no such team, or its token is already revoked.
    """
    with challenge.database.write() as connection:
        changed = connection.execute(
            "UPDATE teams SET revoked = ? WHERE name = ? AND revoked IS NULL", (timestamp(now), name)
        ).rowcount
    if not changed:
        raise ChallengeError(f"NAME {name!r}: no team of that name holds a valid token")


def list_teams(challenge: Challenge) -> list[TeamInfo]:
    """Every team, in the order they were added, with its number of submissions."""
    with challenge.database.read() as connection:
        rows = connection.execute(
            "SELECT name, created, revoked, (SELECT COUNT(*) FROM submissions s WHERE s.team_id = t.id) AS n "
            "FROM teams t ORDER BY id"
        ).fetchall()
    return [TeamInfo(row["name"], row["created"], row["revoked"], row["n"]) for row in rows]


def authenticate(challenge: Challenge, token: str | None) -> Team | None:
    """The team whose valid, unrevoked token ``token`` is; None for a missing, malformed, wrong or revoked one."""
    prefix, _, rest = (token or "").partition("_")
    token_id, _, secret = rest.partition("_")
    row = None
    if prefix == _PREFIX and token_id and secret:
        with challenge.database.read() as connection:
            row = connection.execute(
                "SELECT id, name, salt, token_hash, revoked FROM teams WHERE token_id = ?", (token_id,)
            ).fetchone()
    digest = _hash(secret, row["salt"] if row is not None else _DUMMY_SALT)  # the same work either way
    if row is None or not hmac.compare_digest(digest, row["token_hash"]) or row["revoked"] is not None:
        return None
    return Team(row["id"], row["name"], token_id)


def token_current(challenge: Challenge, team: Team, connection: sqlite3.Connection | None = None) -> bool:
    """Whether the token ``team`` was authenticated with is still its team's valid one (neither revoked nor replaced
    since); read in ``connection``'s transaction when given, so what a request sent is kept only if it still is."""
    if connection is None:
        with challenge.database.read() as reading:
            return token_current(challenge, team, reading)
    row = connection.execute(
        "SELECT 1 FROM teams WHERE id = ? AND token_id = ? AND revoked IS NULL", (team.id, team.token_id)
    ).fetchone()
    return row is not None

