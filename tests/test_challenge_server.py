"""The hosted challenge over HTTP: uploads, a team's own submissions, limits, the leaderboard, and what is never shown
before close. Most tests use Starlette's in-process client; those marked as real start uvicorn on a free loopback port
and talk to it with httpx."""

from __future__ import annotations

import contextlib
import html
import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from itertools import zip_longest
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from medico.challenge.app import create_app
from medico.challenge.client import MODEL_HEADER
from medico.challenge.database import DATABASE_FILE
from medico.challenge.folder import Challenge
from medico.challenge.phase import close_challenge
from medico.challenge.queue import partition
from medico.challenge.teams import add_team, revoke_team
from medico.challenge.throttle import BURST
from medico.challenge.worker import drain
from medico.leaderboard.participant import MAX_TEXT
from tests.challenge_setup import (
    NAMES,
    PARTIAL_IOU,
    bearer,
    free_port,
    live_server,
    make_challenge,
    partial_mask,
    perfect_archive,
    private_partial_archive,
    tokens,
    truth_mask,
    varied_archives,
)

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with")  # starlette now prefers httpx2 for its client; CI has httpx
    from starlette.testclient import TestClient

START = datetime(2026, 12, 1, 12, tzinfo=timezone.utc)


@dataclass
class Hosted:
    """A challenge served in process, its teams' tokens and a clock the test moves."""

    challenge: Challenge
    tokens: dict[str, str]
    now: list[datetime] = field(default_factory=lambda: [START])

    def app(self) -> object:
        return create_app(self.challenge.folder, clock=lambda: self.now[0])

    def client(self) -> TestClient:
        return TestClient(self.app())  # type: ignore[arg-type]


def _hosted(tmp_path: Path, **settings: object) -> Hosted:
    challenge = make_challenge(tmp_path, **settings)
    return Hosted(challenge, tokens(challenge, ["alpha", "beta"], START))


@pytest.fixture
def hosted(tmp_path: Path) -> Hosted:
    return _hosted(tmp_path)


def _upload(client: TestClient | httpx.Client, token: str, archive: Path, **headers: str) -> httpx.Response:
    return client.post("/api/submissions", content=archive.read_bytes(), headers={**bearer(token), **headers})


# --- submitting and reading one's own submissions -----------------------------------------------------------------


def test_an_upload_is_queued_then_scored_and_its_team_sees_public_scores_only(hosted: Hosted, tmp_path: Path) -> None:
    client = hosted.client()
    answer = _upload(client, hosted.tokens["alpha"], perfect_archive(tmp_path / "a.zip"))
    assert answer.status_code == 202 and answer.json() == {"id": 1, "duplicate": False}
    assert client.get("/api/submissions/1", headers=bearer(hosted.tokens["alpha"])).json()["state"] == "queued"
    assert drain(hosted.challenge) == 1
    mine = client.get("/api/submissions", headers=bearer(hosted.tokens["alpha"])).json()
    assert (mine["team"], mine["left_total"], mine["left_today"]) == ("alpha", 4, None)
    assert mine["submissions"][0]["state"] == "scored"
    assert list(mine["submissions"][0]["scores"]) == ["public"]
    assert mine["submissions"][0]["scores"]["public"]["iou"] == 1.0
    detail = client.get("/api/submissions/1", headers=bearer(hosted.tokens["alpha"])).json()
    assert list(detail["scores"]) == ["public"] and "per_image" not in detail  # aggregate scores only, by default


def test_per_image_scores_show_before_close_on_public_images_where_the_challenge_allows(tmp_path: Path) -> None:
    hosted = _hosted(tmp_path, per_image_before_close=True)
    client = hosted.client()
    _upload(client, hosted.tokens["alpha"], perfect_archive(tmp_path / "a.zip"))
    drain(hosted.challenge)
    detail = client.get("/api/submissions/1", headers=bearer(hosted.tokens["alpha"])).json()
    public = sorted(n for n, part in partition(hosted.challenge).items() if part == "public")
    assert [image["name"] for image in detail["per_image"]] == public


def test_the_same_archive_twice_is_one_submission_and_counts_once(hosted: Hosted, tmp_path: Path) -> None:
    client = hosted.client()
    archive = perfect_archive(tmp_path / "a.zip")
    assert _upload(client, hosted.tokens["alpha"], archive).status_code == 202
    again = _upload(client, hosted.tokens["alpha"], archive)
    assert again.status_code == 200 and again.json() == {"id": 1, "duplicate": True}
    mine = client.get("/api/submissions", headers=bearer(hosted.tokens["alpha"])).json()
    assert mine["left_total"] == 4 and len(mine["submissions"]) == 1
    assert sorted(p.name for p in hosted.challenge.uploads.iterdir()) == ["1.zip"]


def test_an_invalid_archive_is_marked_invalid_with_the_validators_messages(hosted: Hosted, tmp_path: Path) -> None:
    client = hosted.client()
    with zipfile.ZipFile(tmp_path / "short.zip", "w") as handle:
        handle.writestr("case0.png", b"not a png")
    _upload(client, hosted.tokens["alpha"], tmp_path / "short.zip")
    drain(hosted.challenge)
    detail = client.get("/api/submissions/1", headers=bearer(hosted.tokens["alpha"])).json()
    assert detail["state"] == "invalid" and detail["scores"] == {}
    assert any(m.startswith("unreadable image: case0.png") for m in detail["messages"])
    assert sum(m.startswith("no mask for an image") for m in detail["messages"]) == 3


def test_hostile_archives_go_through_the_validator_and_write_nothing(hosted: Hosted, tmp_path: Path) -> None:
    import stat

    archive = tmp_path / "hostile.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("../../escaped.png", b"x")
        handle.writestr("/abs/case1.png", b"x")
        link = zipfile.ZipInfo("case2.png")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        handle.writestr(link, "/etc/passwd")
        handle.writestr("case3.png", b"\0" * 3_000_000, zipfile.ZIP_DEFLATED)  # a zip bomb: 3 MB from a few kB
    client = hosted.client()
    _upload(client, hosted.tokens["alpha"], archive)
    drain(hosted.challenge)
    messages = client.get("/api/submissions/1", headers=bearer(hosted.tokens["alpha"])).json()["messages"]
    for rule in ("'..' in the path", "absolute path", "symbolic link", "zip bomb"):
        assert any(rule in message for message in messages), rule
    assert not list(tmp_path.rglob("escaped.png"))
    assert sorted(p.name for p in hosted.challenge.uploads.iterdir()) == ["1.zip"]


def test_an_empty_upload_is_refused_and_not_counted(hosted: Hosted) -> None:
    client = hosted.client()
    answer = client.post("/api/submissions", content=b"", headers=bearer(hosted.tokens["alpha"]))
    assert answer.status_code == 400 and "empty" in answer.json()["error"]
    assert client.get("/api/submissions", headers=bearer(hosted.tokens["alpha"])).json()["left_total"] == 5
    assert not list(hosted.challenge.uploads.iterdir())


def test_client_file_names_never_become_paths(hosted: Hosted, tmp_path: Path) -> None:
    client = hosted.client()
    hostile = {"Content-Disposition": 'attachment; filename="../../../planted.zip"', "X-Filename": "../planted.zip"}
    _upload(client, hosted.tokens["alpha"], perfect_archive(tmp_path / "a.zip"), **hostile)
    assert sorted(p.name for p in hosted.challenge.uploads.iterdir()) == ["1.zip"]
    assert not list(tmp_path.rglob("planted.zip"))


# --- who may read and write -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Basic YWxwaGE6eA==", "Bearer not-a-token", "Bearer mc_0000000000000000_wrong"],
    ids=["missing", "empty", "no-token", "basic", "malformed", "unknown"],
)
def test_a_missing_or_wrong_token_is_401(hosted: Hosted, tmp_path: Path, authorization: str | None) -> None:
    client = hosted.client()
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path in (("POST", "/api/submissions"), ("GET", "/api/submissions"), ("GET", "/api/submissions/1")):
        answer = client.request(method, path, content=b"PK", headers=headers)
        assert answer.status_code == 401, (method, path)
        assert answer.headers["www-authenticate"] == "Bearer"
    assert not list(hosted.challenge.uploads.iterdir())


def test_a_token_with_the_right_id_and_a_wrong_secret_is_401(hosted: Hosted) -> None:
    token = hosted.tokens["alpha"]
    wrong = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert hosted.client().get("/api/submissions", headers=bearer(wrong)).status_code == 401


def test_a_revoked_token_is_401(hosted: Hosted, tmp_path: Path) -> None:
    client = hosted.client()
    revoke_team(hosted.challenge, "alpha", START)
    assert _upload(client, hosted.tokens["alpha"], perfect_archive(tmp_path / "a.zip")).status_code == 401
    assert client.get("/api/submissions", headers=bearer(hosted.tokens["alpha"])).status_code == 401


def test_another_teams_submission_is_404_like_a_missing_one(hosted: Hosted, tmp_path: Path) -> None:
    client = hosted.client()
    _upload(client, hosted.tokens["alpha"], perfect_archive(tmp_path / "a.zip"))
    drain(hosted.challenge)
    theirs = client.get("/api/submissions/1", headers=bearer(hosted.tokens["beta"]))
    missing = client.get("/api/submissions/99", headers=bearer(hosted.tokens["beta"]))
    absurd = client.get(f"/api/submissions/{10**30}", headers=bearer(hosted.tokens["beta"]))
    assert theirs.status_code == missing.status_code == absurd.status_code == 404
    assert theirs.json() == missing.json() == absurd.json()
    assert client.get("/api/submissions", headers=bearer(hosted.tokens["beta"])).json()["submissions"] == []
    assert client.post("/api/submissions/1/select", headers=bearer(hosted.tokens["beta"])).status_code == 404


def test_tokens_are_compared_in_constant_time(hosted: Hosted, monkeypatch: pytest.MonkeyPatch) -> None:
    import hmac

    calls = []
    compare = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b)))
        return compare(a, b)

    monkeypatch.setattr("medico.challenge.teams.hmac.compare_digest", spy)
    assert hosted.client().get("/api/submissions", headers=bearer(hosted.tokens["beta"])).status_code == 200
    assert calls == [(32, 32)]


def test_token_checks_run_a_few_at_a_time(hosted: Hosted, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each check is a scrypt hash (16 MiB, tens of ms of CPU): twelve requests at once once ran twelve at once,
    starving the event loop that serves the leaderboard and holding 16 MiB each."""
    from medico.challenge import teams

    running, most = [0], [0]
    lock = threading.Lock()
    hash_token = teams._hash

    def counted(secret: str, salt: bytes) -> bytes:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            time.sleep(0.05)  # long enough for the others to start, were they allowed to
            return hash_token(secret, salt)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(teams, "_hash", counted)
    with live_server(hosted.app()) as url, httpx.Client(base_url=url, timeout=60) as client:
        def ask(_: int) -> int:
            return client.get("/api/submissions", headers=bearer(hosted.tokens["alpha"])).status_code

        with ThreadPoolExecutor(12) as pool:
            assert list(pool.map(ask, range(12))) == [200] * 12
    assert 1 <= most[0] <= max(1, (os.cpu_count() or 2) // 2)


def _counting_hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count the scrypt hashes of token checks from now on: the list grows by one per hash."""
    from medico.challenge import teams

    hashes: list[str] = []
    hash_token = teams._hash

    def counted(secret: str, salt: bytes) -> bytes:
        hashes.append(secret)
        return hash_token(secret, salt)

    monkeypatch.setattr(teams, "_hash", counted)
    return hashes


def _made_up(count: int) -> list[dict[str, str]]:
    return [bearer(f"mc_{index:016x}_{'x' * 43}") for index in range(count)]


def test_a_verified_token_is_not_hashed_again(hosted: Hosted, monkeypatch: pytest.MonkeyPatch) -> None:
    hashes = _counting_hashes(monkeypatch)
    client = hosted.client()
    for _ in range(5):
        assert client.get("/api/submissions", headers=bearer(hosted.tokens["alpha"])).status_code == 200
    assert len(hashes) == 1


def test_a_teams_many_first_requests_at_once_cost_one_hash_and_are_never_throttled(
    hosted: Hosted, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Teams sending many uploads at once from one address were cut at the throttle's burst: their tokens were not
    verified yet, and each request's check counted against the address until its hash was done."""
    hashes = _counting_hashes(monkeypatch)
    sent = [bearer(hosted.tokens[name]) for name in ("alpha", "beta")] * (BURST + 5)
    with live_server(hosted.app()) as url, httpx.Client(base_url=url, timeout=60) as client:
        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(lambda headers: client.get("/api/submissions", headers=headers).status_code, sent))
    assert statuses == [200] * len(sent) and len(hashes) == 2


def test_a_revoked_or_replaced_token_stops_working_at_once_though_verified_before(hosted: Hosted) -> None:
    client = hosted.client()
    alpha, beta = bearer(hosted.tokens["alpha"]), bearer(hosted.tokens["beta"])
    assert client.get("/api/submissions", headers=alpha).status_code == 200
    assert client.get("/api/submissions", headers=beta).status_code == 200
    revoke_team(hosted.challenge, "alpha", START)  # as medico challenge team revoke does, from another process
    assert client.get("/api/submissions", headers=alpha).status_code == 401
    revoke_team(hosted.challenge, "beta", START)
    renewed = bearer(add_team(hosted.challenge, "beta", START))  # a new token: the verified one is stale
    assert client.get("/api/submissions", headers=beta).status_code == 401
    assert client.get("/api/submissions", headers=renewed).json()["team"] == "beta"


def test_a_burst_of_made_up_tokens_is_answered_429_before_any_hash_and_a_real_team_keeps_working(
    hosted: Hosted, monkeypatch: pytest.MonkeyPatch
) -> None:
    """150 made-up tokens at once once cost 150 scrypt hashes, and a real team's call waited seconds behind them."""
    hashes = _counting_hashes(monkeypatch)
    alpha = bearer(hosted.tokens["alpha"])
    with live_server(hosted.app()) as url, httpx.Client(base_url=url, timeout=60) as client:
        assert client.get("/api/submissions", headers=alpha).status_code == 200  # verified: its one hash

        def ask(headers: dict[str, str]) -> httpx.Response:
            return client.get("/api/submissions", headers=headers)

        burst, real = _made_up(BURST + 30), [alpha] * 10
        mixed = [headers for pair in zip_longest(burst, real) for headers in pair if headers is not None]
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(ask, mixed))
    made_up = [answer for headers, answer in zip(mixed, answers, strict=True) if headers is not alpha]
    assert all(answer.status_code == 200 for headers, answer in zip(mixed, answers, strict=True) if headers is alpha)
    assert sorted(answer.status_code for answer in made_up) == [401] * BURST + [429] * 30
    assert len(hashes) == 1 + BURST  # the clock stood still: nothing refilled, no 429 cost a hash
    throttled = next(answer for answer in made_up if answer.status_code == 429)
    assert throttled.headers["retry-after"] == "1"
    assert throttled.json()["error"] == (
        f"too many invalid tokens from your address (at most {BURST} at once, then 2 a second): retry in 1 s"
    )


def test_throttled_checks_refill_with_time_and_spare_other_addresses(
    hosted: Hosted, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashes = _counting_hashes(monkeypatch)
    app = hosted.app()
    attacker, team = (TestClient(app, client=(host, 4000)) for host in ("203.0.113.9", "198.51.100.7"))  # type: ignore[arg-type]
    assert [attacker.get("/api/submissions", headers=h).status_code for h in _made_up(BURST + 1)][-2:] == [401, 429]
    assert team.get("/api/submissions", headers=bearer(hosted.tokens["beta"])).status_code == 200
    hosted.now[0] = START + timedelta(seconds=1)  # two more checks a second
    assert [attacker.get("/api/submissions", headers=h).status_code for h in _made_up(3)] == [401, 401, 429]
    assert len(hashes) == BURST + 1 + 2


def test_one_ipv6_network_is_throttled_as_one_sender(hosted: Hosted, monkeypatch: pytest.MonkeyPatch) -> None:
    """A host holds a whole /64: a new address in it for every made-up token must not buy a new burst of hashes."""
    hashes = _counting_hashes(monkeypatch)
    app = hosted.app()
    answers = [
        TestClient(app, client=(f"2001:db8:1:2::{index:x}", 4000)).get("/api/submissions", headers=header)  # type: ignore[arg-type]
        for index, header in enumerate(_made_up(BURST + 5), start=1)
    ]
    assert [answer.status_code for answer in answers].count(429) == 5 and len(hashes) == BURST
    other = TestClient(app, client=("2001:db8:1:3::1", 4000))  # type: ignore[arg-type]
    assert other.get("/api/submissions", headers=_made_up(1)[0]).status_code == 401  # another network: its own burst


def test_no_cors_headers_are_sent(hosted: Hosted) -> None:
    client = hosted.client()
    origin = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    for answer in (client.get("/api/leaderboard", headers=origin), client.options("/api/submissions", headers=origin)):
        assert not [name for name in answer.headers if name.lower().startswith("access-control-")]


# --- upload size --------------------------------------------------------------------------------------------------


def test_an_upload_declared_over_the_cap_is_413_before_its_body_is_read(tmp_path: Path) -> None:
    import socket

    hosted = _hosted(tmp_path, max_upload_bytes=10_000)
    with live_server(hosted.app()) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            request = (
                f"POST /api/submissions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {hosted.tokens['alpha']}\r\n"
                "Content-Type: application/zip\r\nContent-Length: 1000000000000\r\n\r\n"
            )
            connection.sendall(request.encode())  # and never the terabyte
            received = b""
            while chunk := connection.recv(65536):  # the server closes the connection after its answer
                received += chunk
            answer = received.decode()
    assert answer.startswith("HTTP/1.1 413")
    assert "10,000 bytes" in answer
    assert not list(hosted.challenge.uploads.iterdir())


def test_a_streamed_upload_over_the_cap_stops_being_read_and_leaves_nothing(tmp_path: Path) -> None:
    import asyncio

    hosted = _hosted(tmp_path, max_upload_bytes=100_000)
    app = hosted.app()
    chunk, total = b"x" * 16_384, 1_000
    sent = []
    responses: list[dict] = []

    async def receive() -> dict:
        sent.append(len(chunk))
        return {"type": "http.request", "body": chunk, "more_body": len(sent) < total}

    async def send(message: dict) -> None:
        responses.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/api/submissions", "raw_path": b"/api/submissions", "query_string": b"", "root_path": "",
        "headers": [(b"authorization", f"Bearer {hosted.tokens['alpha']}".encode()), (b"host", b"x")],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
    }
    asyncio.run(app(scope, receive, send))  # type: ignore[operator]
    assert responses[0]["status"] == 413
    assert sum(sent) <= 100_000 + len(chunk)  # read up to the first chunk past the cap, never the 16 MB
    assert not list(hosted.challenge.uploads.iterdir())


def test_an_uploads_model_name_shows_on_the_leaderboard_neutralised_and_capped(hosted: Hosted, tmp_path: Path) -> None:
    client = hosted.client()
    named = "attunet (tta flip, ensemble of 3) \u202egnp.exe\x1b[31m" + "x" * 1000
    _upload(client, hosted.tokens["alpha"], perfect_archive(tmp_path / "a.zip"), **{MODEL_HEADER: quote(named)})
    _upload(client, hosted.tokens["beta"], perfect_archive(tmp_path / "b.zip"))  # a plain upload names none
    drain(hosted.challenge)
    models = {row["team"]: row["model"] for row in client.get("/api/leaderboard").json()["rows"]}
    assert models["alpha"].startswith("attunet (tta flip, ensemble of 3) \\u202egnp.exe\\x1b[31mxx")
    assert len(models["alpha"]) <= MAX_TEXT and models["beta"] == "submission"
    page = client.get("/").text
    assert "attunet (tta flip, ensemble of 3)" in page and "\u202e" not in page and "\x1b" not in page


def test_a_teams_own_list_tells_the_phase_its_times_and_when_the_next_upload_is_allowed(tmp_path: Path) -> None:
    hosted = _hosted(tmp_path, opens=START, closes=START + timedelta(days=2), max_per_day=1)
    client = hosted.client()

    def mine() -> dict:
        return client.get("/api/submissions", headers=bearer(hosted.tokens["alpha"])).json()

    hosted.now[0] = START - timedelta(hours=1)
    assert (mine()["phase"], mine()["opens"], mine()["closes"]) == (
        "before", "2026-12-01T12:00:00+00:00", "2026-12-03T12:00:00+00:00"
    )
    hosted.now[0] = START
    _upload(client, hosted.tokens["alpha"], perfect_archive(tmp_path / "a.zip"))
    assert (mine()["phase"], mine()["left_today"], mine()["next_allowed"]) == ("open", 0, "2026-12-02T00:00:00+00:00")
    from medico.challenge.phase import close_challenge

    close_challenge(hosted.challenge, START + timedelta(days=1))
    hosted.now[0] = START + timedelta(days=1, hours=1)
    assert (mine()["phase"], mine()["closes"]) == ("closed", "2026-12-02T12:00:00+00:00")
    refused = _upload(client, hosted.tokens["alpha"], varied_archives(tmp_path, 1)[0])
    assert refused.status_code == 403 and refused.json()["error"] == (
        "the challenge is closed (since 2026-12-02T12:00:00+00:00)"
    )


# --- limits and the challenge's period ----------------------------------------------------------------------------


def test_the_daily_limit_answers_429_with_when_the_next_is_allowed(tmp_path: Path) -> None:
    hosted = _hosted(tmp_path, max_per_day=2, max_total=10)
    client = hosted.client()
    archives = varied_archives(tmp_path, 3)
    assert [_upload(client, hosted.tokens["alpha"], a).status_code for a in archives[:2]] == [202, 202]
    refused = _upload(client, hosted.tokens["alpha"], archives[2])
    assert refused.status_code == 429
    assert refused.json()["next_allowed"] == "2026-12-02T00:00:00+00:00"
    assert int(refused.headers["retry-after"]) == 12 * 3600
    assert _upload(client, hosted.tokens["beta"], archives[2]).status_code == 202  # another team's own allowance
    hosted.now[0] = START + timedelta(hours=12)
    assert _upload(client, hosted.tokens["alpha"], archives[2]).status_code == 202


def test_the_total_limit_answers_429_and_says_none_are_left(tmp_path: Path) -> None:
    hosted = _hosted(tmp_path, max_total=2)
    client = hosted.client()
    archives = varied_archives(tmp_path, 3)
    for archive in archives[:2]:
        _upload(client, hosted.tokens["alpha"], archive)
    refused = _upload(client, hosted.tokens["alpha"], archives[2])
    assert refused.status_code == 429
    assert refused.json() == {"error": "no submissions left: the total limit is reached", "next_allowed": None}
    assert client.get("/api/submissions", headers=bearer(hosted.tokens["alpha"])).json()["left_total"] == 0


def test_concurrent_uploads_never_exceed_the_limit(tmp_path: Path) -> None:
    hosted = _hosted(tmp_path, max_total=3)
    archives = varied_archives(tmp_path, 10)
    statuses: list[int] = []
    with live_server(hosted.app()) as url:
        barrier = threading.Barrier(len(archives))

        def send(archive: Path) -> None:
            with httpx.Client(base_url=url, timeout=60) as client:
                barrier.wait()
                statuses.append(_upload(client, hosted.tokens["alpha"], archive).status_code)

        threads = [threading.Thread(target=send, args=(archive,)) for archive in archives]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(statuses) == [202] * 3 + [429] * 7
    assert len(list(hosted.challenge.uploads.iterdir())) == 3


def _slow_upload(url: str, token: str, body: bytes) -> socket.socket:
    """A connection that sent an upload's headers and its first byte, and holds the rest back."""
    connection = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=30)
    connection.sendall(
        f"POST /api/submissions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:1]
    )
    return connection


def _finish(connection: socket.socket, body: bytes) -> tuple[int, dict]:
    """Send the rest of ``body`` on :func:`_slow_upload`'s connection; the answer's status and JSON."""
    connection.sendall(body[1:])
    received = b""
    while chunk := connection.recv(65536):  # Connection: close: the server closes it after its answer
        received += chunk
    head, _, answer = received.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(answer)


def _receiving(challenge: Challenge) -> bool:
    return any(path.name.startswith(".upload-") for path in challenge.uploads.iterdir())


def _stored(challenge: Challenge) -> int:
    with challenge.database.read() as connection:
        return connection.execute("SELECT COUNT(*) FROM submissions").fetchone()[0]


def test_an_upload_is_received_when_its_last_byte_arrives(hosted: Hosted, tmp_path: Path) -> None:
    body = perfect_archive(tmp_path / "a.zip").read_bytes()
    with live_server(hosted.app()) as url, contextlib.closing(_slow_upload(url, hosted.tokens["alpha"], body)) as slow:
        _wait_for(lambda: _receiving(hosted.challenge))
        hosted.now[0] = START + timedelta(minutes=5)
        assert _finish(slow, body)[0] == 202
        mine = httpx.get(f"{url}/api/submissions/1", headers=bearer(hosted.tokens["alpha"])).json()
    assert mine["received"] == "2026-12-01T12:05:00.000000+00:00"


def test_an_upload_finished_after_close_is_refused_and_never_stored_or_ranked(hosted: Hosted, tmp_path: Path) -> None:
    """A team once sent its headers and one byte, waited for the close, read its private scores, then sent the rest:
    202, scored, first on the private board, stored as received before the close."""
    body = perfect_archive(tmp_path / "a.zip").read_bytes()
    with live_server(hosted.app()) as url, contextlib.closing(_slow_upload(url, hosted.tokens["alpha"], body)) as slow:
        _wait_for(lambda: _receiving(hosted.challenge))
        close_challenge(hosted.challenge, START + timedelta(minutes=1))
        hosted.now[0] = START + timedelta(minutes=2)
        status, answer = _finish(slow, body)
        drain(hosted.challenge)
        board = httpx.get(f"{url}/api/leaderboard").json()
    assert status == 403 and answer["error"] == (
        "the challenge is closed (since 2026-12-01T12:01:00+00:00): your upload finished arriving at "
        "2026-12-01T12:02:00+00:00 and was not stored"
    )
    assert _stored(hosted.challenge) == 0 and not list(hosted.challenge.uploads.iterdir())
    assert (board["part"], board["rows"]) == ("private", [])


def test_an_upload_finished_after_its_token_was_revoked_is_refused_and_never_stored(
    hosted: Hosted, tmp_path: Path
) -> None:
    body = perfect_archive(tmp_path / "a.zip").read_bytes()
    with live_server(hosted.app()) as url, contextlib.closing(_slow_upload(url, hosted.tokens["alpha"], body)) as slow:
        _wait_for(lambda: _receiving(hosted.challenge))
        revoke_team(hosted.challenge, "alpha", START)
        status, answer = _finish(slow, body)
        drain(hosted.challenge)
        board = httpx.get(f"{url}/api/leaderboard").json()
    assert status == 403 and answer["error"].startswith("your team's token was revoked or replaced meanwhile")
    assert answer["error"].endswith("was not stored")
    assert _stored(hosted.challenge) == 0 and not list(hosted.challenge.uploads.iterdir())
    assert board["rows"] == []


def test_uploads_are_refused_before_the_opening_and_after_the_close(tmp_path: Path) -> None:
    hosted = _hosted(tmp_path, opens=START + timedelta(days=1), closes=START + timedelta(days=2))
    client = hosted.client()
    archive = perfect_archive(tmp_path / "a.zip")
    early = _upload(client, hosted.tokens["alpha"], archive)
    assert early.status_code == 403 and "opens at 2026-12-02T12:00:00+00:00" in early.json()["error"]
    hosted.now[0] = START + timedelta(days=3)
    late = _upload(client, hosted.tokens["alpha"], archive)
    assert late.status_code == 403 and "closed" in late.json()["error"]
    assert not list(hosted.challenge.uploads.iterdir())


# --- the leaderboard, and what stays hidden until close --------------------------------------------------------------


def _everything_shown(client: TestClient, hosted: Hosted) -> str:
    pages = [client.get("/").text, client.get("/api/leaderboard").text]
    for token in hosted.tokens.values():
        pages.append(client.get("/api/submissions", headers=bearer(token)).text)
        for submission in client.get("/api/submissions", headers=bearer(token)).json()["submissions"]:
            pages.append(client.get(f"/api/submissions/{submission['id']}", headers=bearer(token)).text)
    return "\n".join(pages)


def test_private_scores_appear_nowhere_before_close_and_rank_after(hosted: Hosted, tmp_path: Path) -> None:
    client = hosted.client()
    _upload(client, hosted.tokens["alpha"], private_partial_archive(hosted.challenge, tmp_path / "a.zip"))
    _upload(client, hosted.tokens["beta"], perfect_archive(tmp_path / "b.zip"))
    drain(hosted.challenge)
    private = sorted(n for n, part in partition(hosted.challenge).items() if part == "private")
    shown = _everything_shown(client, hosted)
    assert PARTIAL_IOU not in shown and '"private"' not in shown
    assert not any(f'"name": "{n}"' in shown or f'"name":"{n}"' in shown for n in private)
    board = client.get("/api/leaderboard").json()
    assert board["part"] == "public" and [row["rank"] for row in board["rows"]] == [1, 1]  # both perfect in public
    hosted.now[0] = START + timedelta(days=1)
    from medico.challenge.phase import close_challenge

    close_challenge(hosted.challenge, hosted.now[0])
    board = client.get("/api/leaderboard").json()
    assert board["part"] == "private"
    assert [(row["rank"], row["team"]) for row in board["rows"]] == [(1, "beta"), (2, "alpha")]
    assert f"{board['rows'][1]['iou']:.4f}" == PARTIAL_IOU
    assert PARTIAL_IOU in client.get("/").text
    detail = client.get("/api/submissions/1", headers=bearer(hosted.tokens["alpha"])).json()
    assert set(detail["scores"]) == {"public", "private"} and len(detail["per_image"]) == len(NAMES)


def test_after_close_each_rank_shows_its_bootstrap_interval_and_before_it_none(hosted: Hosted, tmp_path: Path) -> None:
    client = hosted.client()
    _upload(client, hosted.tokens["alpha"], private_partial_archive(hosted.challenge, tmp_path / "a.zip"))
    _upload(client, hosted.tokens["beta"], perfect_archive(tmp_path / "b.zip"))
    drain(hosted.challenge)
    board = client.get("/api/leaderboard").json()
    assert board["rank_intervals"] is None and [row["rank_interval"] for row in board["rows"]] == [None, None]
    from medico.challenge.phase import close_challenge

    close_challenge(hosted.challenge, hosted.now[0])
    board = client.get("/api/leaderboard").json()
    assert board["rank_intervals"] == {"confidence": 0.95, "resamples": 1000, "seed": 0, "images": "private part"}
    # beta beats alpha on every private image: no resample can reorder them
    assert [(row["rank"], row["rank_interval"], row["team"]) for row in board["rows"]] == [
        (1, [1, 1], "beta"), (2, [2, 2], "alpha")
    ]
    page = client.get("/").text
    assert ">1 (1–1)</td>" in page and ">2 (2–2)</td>" in page
    assert "95% interval of the rank over 1,000 bootstrap resamples of the private images" in page


def test_after_close_a_team_is_ranked_by_the_submission_it_selected(hosted: Hosted, tmp_path: Path) -> None:
    client = hosted.client()
    alpha = hosted.tokens["alpha"]
    _upload(client, alpha, perfect_archive(tmp_path / "a.zip"))  # 1: best on both parts
    _upload(client, alpha, private_partial_archive(hosted.challenge, tmp_path / "b.zip"))  # 2: as good in public
    drain(hosted.challenge)
    assert client.post("/api/submissions/2/select", headers=bearer(alpha)).json() == {"selected": 2}
    from medico.challenge.phase import close_challenge

    close_challenge(hosted.challenge, START)
    row = client.get("/api/leaderboard").json()["rows"][0]
    assert (row["team"], row["submission"], f"{row['iou']:.4f}") == ("alpha", 2, PARTIAL_IOU)
    assert client.post("/api/submissions/1/select", headers=bearer(alpha)).status_code == 409


def test_after_close_a_teams_own_list_marks_the_submission_it_is_ranked_by(hosted: Hosted, tmp_path: Path) -> None:
    client = hosted.client()
    alpha, beta = hosted.tokens["alpha"], hosted.tokens["beta"]
    _upload(client, alpha, perfect_archive(tmp_path / "a.zip"))
    _upload(client, alpha, private_partial_archive(hosted.challenge, tmp_path / "b.zip"))
    _upload(client, beta, private_partial_archive(hosted.challenge, tmp_path / "c.zip"))  # 3: beta's best public
    _upload(client, beta, varied_archives(tmp_path, 2)[1])  # 4: as good in public, later
    drain(hosted.challenge)
    client.post("/api/submissions/2/select", headers=bearer(alpha))

    def ranked(token: str) -> list[int]:
        listed = client.get("/api/submissions", headers=bearer(token)).json()["submissions"]
        return [item["id"] for item in listed if item["ranked"]]

    assert ranked(alpha) == ranked(beta) == []  # before close nothing is ranked for good
    from medico.challenge.phase import close_challenge

    close_challenge(hosted.challenge, START)
    assert ranked(alpha) == [2] and ranked(beta) == [3]
    board = {row["team"]: row["submission"] for row in client.get("/api/leaderboard").json()["rows"]}
    assert board == {"alpha": 2, "beta": 1}  # beta's 1st upload (submission 3) is the one it is ranked by


def test_without_a_selection_a_team_is_ranked_by_its_best_public_submission(hosted: Hosted, tmp_path: Path) -> None:
    client = hosted.client()
    masks = {name: truth_mask() for name in NAMES}
    worse = tmp_path / "worse.zip"
    with zipfile.ZipFile(worse, "w") as handle:
        for name, mask in masks.items():
            from medico.submission import mask_png

            handle.writestr(f"{name}.png", mask_png(~mask))
    _upload(client, hosted.tokens["alpha"], worse)
    _upload(client, hosted.tokens["alpha"], perfect_archive(tmp_path / "a.zip"))
    drain(hosted.challenge)
    from medico.challenge.phase import close_challenge

    close_challenge(hosted.challenge, START)
    row = client.get("/api/leaderboard").json()["rows"][0]
    assert (row["submission"], row["iou"]) == (2, 1.0)


def test_a_hostile_team_name_shows_literally_on_the_page(hosted: Hosted, tmp_path: Path) -> None:
    client = hosted.client()
    _upload(client, hosted.tokens["alpha"], perfect_archive(tmp_path / "a.zip"))
    drain(hosted.challenge)
    hostile = "<script>alert(1)</script>"  # refused by team add; here written by hand into the database
    with sqlite3.connect(hosted.challenge.folder / DATABASE_FILE) as connection:
        connection.execute("UPDATE teams SET name = ? WHERE name = 'alpha'", (hostile,))
    page = client.get("/")
    assert page.headers["content-type"].startswith("text/html")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert hostile not in page.text
    assert client.get("/api/leaderboard").json()["rows"][0]["team"] == hostile  # JSON carries it as data


def test_the_page_escapes_the_challenge_name(tmp_path: Path) -> None:
    hosted = _hosted(tmp_path, name="<img src=x onerror=alert(1)>")
    page = hosted.client().get("/").text
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "<img" not in page


# --- the leaderboard is kept rendered, and follows every change ------------------------------------------------------


def _rows(client: TestClient) -> list[tuple[str, float]]:
    """The leaderboard's (team, IoU) rows, after checking the page shows the same teams."""
    rows = [(row["team"], row["iou"]) for row in client.get("/api/leaderboard").json()["rows"]]
    page = client.get("/").text
    assert all(f">{team}<" in page for team, _ in rows)
    return rows


def test_the_leaderboard_shows_a_new_score_as_soon_as_it_is_recorded(hosted: Hosted, tmp_path: Path) -> None:
    client = hosted.client()
    assert _rows(client) == []
    _upload(client, hosted.tokens["alpha"], perfect_archive(tmp_path / "a.zip"))
    assert _rows(client) == []  # queued: not scored yet
    drain(hosted.challenge)
    assert _rows(client) == [("alpha", 1.0)]
    _upload(client, hosted.tokens["beta"], perfect_archive(tmp_path / "b.zip"))
    drain(hosted.challenge)
    assert sorted(_rows(client)) == [("alpha", 1.0), ("beta", 1.0)]


def test_the_leaderboard_turns_private_at_the_closing_time_and_never_before(tmp_path: Path) -> None:
    hosted = _hosted(tmp_path, opens=START, closes=START + timedelta(days=1))
    client = hosted.client()
    _upload(client, hosted.tokens["alpha"], private_partial_archive(hosted.challenge, tmp_path / "a.zip"))
    drain(hosted.challenge)
    hosted.now[0] = START - timedelta(seconds=1)
    assert client.get("/api/leaderboard").json()["phase"] == "before"
    hosted.now[0] = START
    assert client.get("/api/leaderboard").json()["phase"] == "open"
    assert _rows(client) == [("alpha", 1.0)] and PARTIAL_IOU not in client.get("/").text
    hosted.now[0] = START + timedelta(days=1)  # nothing in the database changed: only the time
    board = client.get("/api/leaderboard").json()
    assert (board["phase"], board["part"], f"{board['rows'][0]['iou']:.4f}") == ("closed", "private", PARTIAL_IOU)
    assert PARTIAL_IOU in client.get("/").text
    hosted.now[0] = START + timedelta(hours=23)  # a clock set back: the public part again, never the private one
    assert _rows(client) == [("alpha", 1.0)] and PARTIAL_IOU not in client.get("/").text


def test_a_rescore_shows_on_the_leaderboard(hosted: Hosted, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from medico.cli import app
    from medico.submission import mask_png

    client = hosted.client()
    _upload(client, hosted.tokens["alpha"], perfect_archive(tmp_path / "a.zip"))
    drain(hosted.challenge)
    assert _rows(client) == [("alpha", 1.0)]
    public = min(name for name, part in partition(hosted.challenge).items() if part == "public")
    (hosted.challenge.settings.truth / f"{public}.png").write_bytes(mask_png(partial_mask()))  # a truth fix
    result = CliRunner().invoke(app, ["challenge", "rescore", str(hosted.challenge.folder)])
    assert result.exit_code == 0, result.output
    ((team, iou),) = _rows(client)
    assert team == "alpha" and iou < 1.0


def test_the_leaderboard_follows_edits_and_a_restored_copy_of_the_database(hosted: Hosted, tmp_path: Path) -> None:
    client = hosted.client()
    database = hosted.challenge.folder / DATABASE_FILE
    backup = tmp_path / "backup.sqlite"
    with sqlite3.connect(database) as connection, sqlite3.connect(backup) as copy:
        connection.backup(copy)
    _upload(client, hosted.tokens["alpha"], perfect_archive(tmp_path / "a.zip"))
    drain(hosted.challenge)
    assert _rows(client) == [("alpha", 1.0)]
    with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as connection:
        connection.execute("UPDATE teams SET name = 'alfa' WHERE name = 'alpha'")  # the organiser edits a name
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every change in the file, none left in its log
    assert _rows(client) == [("alfa", 1.0)]
    os.replace(backup, database)  # the organiser restores the copy taken before any upload
    assert _rows(client) == []


# --- the real server ----------------------------------------------------------------------------------------------


def test_the_real_server_takes_uploads_and_never_logs_tokens(hosted: Hosted, tmp_path: Path, capfd) -> None:
    with live_server(hosted.app()) as url, httpx.Client(base_url=url, timeout=30) as client:
        answer = _upload(client, hosted.tokens["alpha"], perfect_archive(tmp_path / "a.zip"))
        assert answer.status_code == 202
        drain(hosted.challenge)
        mine = client.get("/api/submissions/1", headers=bearer(hosted.tokens["alpha"])).json()
        assert mine["state"] == "scored"
        assert client.get("/api/submissions", headers=bearer("Bearer mc_1_leaked")).status_code == 401
        assert client.get("/").status_code == 200
    logged = capfd.readouterr()
    for token in (*hosted.tokens.values(), "mc_1_leaked"):
        assert token not in logged.out + logged.err


def test_the_serve_command_binds_to_loopback_by_default(hosted: Hosted, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from medico.cli import app

    seen = {}
    monkeypatch.setattr("socket.socket.bind", lambda listener, address: seen.update(address=address))
    monkeypatch.setattr("uvicorn.Server.run", lambda server, sockets: seen.update(config=server.config))
    result = CliRunner().invoke(app, ["serve", str(hosted.challenge.folder)])
    assert result.exit_code == 0, result.output
    assert seen["address"] == ("127.0.0.1", 8000) and (seen["config"].host, seen["config"].port) == ("127.0.0.1", 8000)


def test_serve_without_the_extra_is_a_one_line_error(hosted: Hosted, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from medico.cli import app

    monkeypatch.setitem(__import__("sys").modules, "uvicorn", None)
    result = CliRunner().invoke(app, ["serve", str(hosted.challenge.folder)])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") <= 1 and "pip install 'medico[serve]'" in " ".join(result.output.split())


def test_the_leaderboard_json_is_plain_json(hosted: Hosted) -> None:
    answer = hosted.client().get("/api/leaderboard")
    assert answer.headers["content-type"] == "application/json"
    assert json.loads(answer.text) == {
        "challenge": "Polyp test", "phase": "open", "part": "public", "rank_intervals": None, "rows": []
    }


def test_medico_serve_scores_uploads_in_its_worker_process(hosted: Hosted, tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "medico", "serve", str(hosted.challenge.folder), "--port", str(port)]
    server = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            _wait_for(lambda: client.get("/").status_code == 200)
            archive = private_partial_archive(hosted.challenge, tmp_path / "a.zip")
            assert _upload(client, hosted.tokens["alpha"], archive).status_code == 202
            mine = bearer(hosted.tokens["alpha"])
            _wait_for(lambda: client.get("/api/submissions/1", headers=mine).json()["state"] == "scored")
            assert client.get("/api/leaderboard").json()["rows"][0]["team"] == "alpha"
    finally:
        os.killpg(server.pid, signal.SIGINT)  # as Ctrl+C in its terminal: the server and its worker both get it
        log = server.communicate(timeout=60)[0]
    assert server.returncode == 0, log
    assert "Traceback" not in log and "Application shutdown complete" in log
    assert "submission 1: scored" in log and "Uvicorn running on http://127.0.0.1:" in log
    assert hosted.tokens["alpha"] not in log and PARTIAL_IOU not in log


def _wait_for(condition: object, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if condition():  # type: ignore[operator]
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_the_web_process_never_imports_torch(hosted: Hosted, tmp_path: Path) -> None:
    archive = perfect_archive(tmp_path / "a.zip")
    script = f"""
import sys, warnings
warnings.simplefilter("ignore")
from starlette.testclient import TestClient
from medico.challenge.app import create_app
from medico.challenge.client import MODEL_HEADER
client = TestClient(create_app({str(hosted.challenge.folder)!r}))
headers = {{"Authorization": "Bearer {hosted.tokens['alpha']}"}}
assert client.post("/api/submissions", content=open({str(archive)!r}, "rb").read(), headers=headers).status_code == 202
assert client.get("/").status_code == client.get("/api/submissions/1", headers=headers).status_code == 200
print("torch imported:", "torch" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=os.environ)
    assert result.returncode == 0, result.stderr
    assert "torch imported: False" in result.stdout


def _until_idle(pid: int, timeout: float = 90.0) -> None:
    """Wait until process ``pid`` uses under 30 clock ticks of CPU in a second, a third of a core (its imports done,
    it polls: at the tests' poll of 0.05 s a worker's empty-queue checks take about 8 ticks a second)."""
    def ticks() -> int:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime

    deadline, before = time.monotonic() + timeout, ticks()
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = ticks()
        if now - before < 30:
            return
        before = now
    raise AssertionError(f"process {pid} kept computing for {timeout:g} s")


def test_a_killed_scoring_worker_does_not_hang_the_servers_shutdown(tmp_path: Path) -> None:
    """A worker killed outright (out of memory, say) once left the shared stop event's lock held: stopping the
    server then waited forever. The server now stops its worker with SIGTERM, which a dead one does not need."""
    import multiprocessing

    from starlette.testclient import TestClient

    challenge = make_challenge(tmp_path / "challenge")
    killed: list[int] = []

    def serve_then_stop() -> None:
        with TestClient(create_app(challenge.folder, worker=True)):
            scorer = next(p for p in multiprocessing.active_children() if p.name == "medico-scorer")
            _until_idle(scorer.pid)  # started, and waiting for work between its looks at the queue
            os.kill(scorer.pid, signal.SIGKILL)
            # the server's supervisor reaps it too: poll (a join here races its waitpid and can read no exit code)
            _wait_for(lambda: scorer.exitcode is not None)
            killed.append(scorer.exitcode)

    stopping = threading.Thread(target=serve_then_stop, daemon=True)
    stopping.start()
    stopping.join(60)
    assert killed == [-signal.SIGKILL]
    assert not stopping.is_alive(), "the server's shutdown hung on its killed worker"


def test_a_killed_scoring_worker_is_replaced_and_the_next_upload_is_scored(
    hosted: Hosted, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import multiprocessing

    caplog.set_level(logging.WARNING, "medico.challenge.supervisor")
    with TestClient(create_app(hosted.challenge.folder, clock=lambda: hosted.now[0], worker=True, poll=0.05)) as client:
        scorer = next(p for p in multiprocessing.active_children() if p.name == "medico-scorer")
        _until_idle(scorer.pid)
        os.kill(scorer.pid, signal.SIGKILL)  # as the kernel's out-of-memory killer would
        # The supervisor reaps it and reads its exit status: a join here could reap it first and leave it none.
        _wait_for(lambda: "died" in caplog.text)
        assert _upload(client, hosted.tokens["alpha"], perfect_archive(tmp_path / "a.zip")).status_code == 202
        mine = bearer(hosted.tokens["alpha"])
        _wait_for(lambda: client.get("/api/submissions/1", headers=mine).json()["state"] == "scored")
    assert f"the scoring worker (process {scorer.pid}) died (killed by SIGKILL)" in caplog.text


def test_partial_uploads_of_a_server_killed_mid_upload_are_removed_when_the_next_starts(
    hosted: Hosted, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import socket

    uploads = hosted.challenge.uploads
    port = free_port()
    command = [sys.executable, "-m", "medico", "serve", str(hosted.challenge.folder), "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            _wait_for(lambda: client.get("/").status_code == 200)
        with socket.create_connection(("127.0.0.1", port)) as connection:
            connection.sendall(
                f"POST /api/submissions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {hosted.tokens['alpha']}\r\n"
                f"Content-Length: 1000000\r\n\r\n".encode() + b"PK" * 50_000
            )
            _wait_for(lambda: any(p.name.startswith(".upload-") for p in uploads.iterdir()))
            os.killpg(server.pid, signal.SIGKILL)  # mid-upload: nothing of the server gets to clean up
            server.wait(30)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(30)
    left = [p for p in uploads.iterdir() if p.name.startswith(".upload-")]
    assert len(left) == 1 and left[0].stat().st_size > 0
    outside = tmp_path / "outside.part"
    outside.write_bytes(b"not the server's")
    kept = {
        f".upload-{os.getpid()}-{'c' * 32}.part": "another server (this process) is still receiving it",
        f".upload-{server.pid}-{'d' * 32}.part": "a link, to a file outside the uploads folder",
        f".upload-{server.pid}-{'e' * 32}.part": "a folder",
        "notes.part": "not a name the server gives",
        "1.zip": "a submission",
    }
    for name in kept:
        if "link" in kept[name]:
            (uploads / name).symlink_to(outside)
        elif "folder" in kept[name]:
            (uploads / name).mkdir()
        else:
            (uploads / name).write_bytes(b"kept")
    (uploads / f".upload-{'b' * 32}.part").write_bytes(b"from an older medico")
    caplog.set_level(logging.INFO, "medico.challenge.server")
    create_app(hosted.challenge.folder, worker=True)  # the next server starts (its worker only with the app)
    assert sorted(p.name for p in uploads.iterdir()) == sorted(kept)
    assert outside.read_bytes() == b"not the server's"
    assert f"removed 2 unfinished uploads left in {uploads}" in caplog.text


@pytest.mark.parametrize("closed", [False, True])
def test_published_figures_show_marked_in_tables_of_their_own_only_when_the_challenge_asks(
    tmp_path: Path, closed: bool
) -> None:
    from medico.challenge.phase import close_challenge
    from medico.leaderboard import load_published

    published = {entry.team for entry in load_published()}
    for shown in (False, True):
        hosted = _hosted(tmp_path / str(shown), published=shown)
        client = hosted.client()
        _upload(client, hosted.tokens["alpha"], perfect_archive(tmp_path / f"{shown}.zip"))
        drain(hosted.challenge)
        if closed:
            close_challenge(hosted.challenge, START)
        rows = client.get("/api/leaderboard").json()["rows"]
        teams = [(row["rank"], row["team"], row["source"]) for row in rows if row["source"] == "submission"]
        assert teams == [(1, "alpha", "submission")]  # a published figure never takes a team's rank
        assert {row["team"] for row in rows if row["source"] == "published"} == (published if shown else set())
        page = client.get("/").text
        assert ("(published)" in page) is shown and all((html.escape(team) in page) is shown for team in published)
