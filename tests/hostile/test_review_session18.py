"""Review of session 18's additions: a hosted challenge whose database the organiser edited by hand, ..."""

from __future__ import annotations

import logging
import sqlite3
import warnings
from datetime import datetime, timezone
from pathlib import Path

import pytest

from medico.challenge.app import SERVER_BROKEN, create_app
from medico.challenge.database import DATABASE_FILE
from medico.challenge.folder import Challenge
from medico.challenge.phase import closed_at
from medico.challenge.settings import ChallengeError
from medico.challenge.standings import standings
from medico.challenge.worker import drain
from tests.challenge_setup import bearer, make_challenge, perfect_archive, tokens

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with")
    from starlette.testclient import TestClient

NOW = datetime(2026, 12, 1, 12, tzinfo=timezone.utc)


@pytest.fixture
def scored(tmp_path: Path) -> Challenge:
    """A challenge with one scored perfect submission of team alpha."""
    challenge = make_challenge(tmp_path)
    token = tokens(challenge, ["alpha"], NOW)["alpha"]
    client = TestClient(create_app(challenge.folder, clock=lambda: NOW))
    body = perfect_archive(tmp_path / "a.zip").read_bytes()
    assert client.post("/api/submissions", content=body, headers=bearer(token)).status_code == 202
    drain(challenge)
    return challenge


def _edit(challenge: Challenge, statement: str, *values: object) -> None:
    with sqlite3.connect(challenge.folder / DATABASE_FILE) as connection:
        connection.execute(statement, values)


@pytest.mark.parametrize("value", ["garbage", "2026-01-01T00:00:00", ""])
def test_hand_edited_closing_time_is_a_clear_error(scored: Challenge, value: str, caplog) -> None:
    _edit(scored, "INSERT INTO meta (key, value) VALUES ('closed', ?)", value)
    with pytest.raises(ChallengeError, match="closing time"):
        closed_at(scored)
    client = TestClient(create_app(scored.folder, clock=lambda: NOW), raise_server_exceptions=False)
    with caplog.at_level(logging.ERROR, "medico.challenge.app"):
        response = client.get("/api/leaderboard")
    assert response.status_code == 500 and response.json() == {"error": SERVER_BROKEN}
    assert "closing time" in caplog.text and DATABASE_FILE in caplog.text


@pytest.mark.parametrize("value", ["abc", 7.5, -0.1, float("inf")])
def test_hand_edited_score_is_refused_and_never_sent(scored: Challenge, value: object, caplog) -> None:
    _edit(scored, "UPDATE scores SET dice = ?", value)
    with pytest.raises(ChallengeError, match=f"{DATABASE_FILE}: submission 1"):
        standings(scored, "closed")
    client = TestClient(create_app(scored.folder, clock=lambda: NOW), raise_server_exceptions=False)
    with caplog.at_level(logging.ERROR, "medico.challenge.app"):
        for path in ("/", "/api/leaderboard"):
            response = client.get(path)
            assert response.status_code == 500 and response.json() == {"error": SERVER_BROKEN}
            assert "7.5" not in response.text and "abc" not in response.text
    assert "submission 1" in caplog.text
