"""The challenge's web app (Starlette, from the ``serve`` extra): uploads, a team's own submissions, the leaderboard.

``POST /api/submissions`` (``Authorization: Bearer TOKEN``, the zip as the body, optionally ``X-Medico-Model``: the
model's name, percent-encoded UTF-8) answers 202 and the submission's id (200 and the first one's id when the team
sent the same archive before); the scoring worker, another process, validates and scores it.
``GET /api/submissions`` shows the caller's own team: the challenge's phase and its opening and closing times, the
uploads left and when the next is allowed, and its submissions (after close, marked where the team is ranked by one);
``GET /api/submissions/{id}`` one of them (another team's id is 404, as if it did not exist);
``POST /api/submissions/{id}/select`` picks the submission ranked after close. ``GET /api/leaderboard`` (JSON) and
``GET /`` (HTML) show the standings.

A token is checked once by its scrypt hash, then recognised from memory (its team's row re-read on every request, so a
revoke counts at once); tokens not recognised are hashed only while their client address has checks left (429 beyond:
:mod:`~medico.challenge.callers`). An upload is checked again once its body has arrived (phase, token,
limits: :func:`add_submission`), and stored as received then.

No CORS headers are sent (browsers keep other sites' pages from calling the API); every response says not to sniff
types or frame the page.
"""

from __future__ import annotations

import contextlib
import logging
import os
import urllib.parse
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from anyio import CapacityLimiter, to_thread
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from medico.challenge.callers import Callers, Throttled
from medico.challenge.client import MODEL_HEADER
from medico.challenge.folder import Challenge
from medico.challenge.phase import closed_at, closing_time, current_phase, phase_at, upload_refusal
from medico.challenge.server import prepare_to_serve
from medico.challenge.settings import ChallengeError
from medico.challenge.standings import LiveStandings, Rendered
from medico.challenge.submissions import (
    LimitReachedError,
    UploadRefusedError,
    add_submission,
    select_submission,
    team_allowance,
    team_submission,
    team_submissions,
)
from medico.challenge.supervisor import WorkerSupervisor
from medico.challenge.teams import Team
from medico.challenge.throttle import BURST, PER_SECOND
from medico.challenge.uploads import TooLargeError, receive_upload
from medico.leaderboard.participant import MAX_RUN_NUMBER

__all__ = ["create_app"]

_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


log = logging.getLogger("medico.challenge.app")

SERVER_BROKEN = "the server cannot read its challenge data; the organiser has been told"


async def _broken(request: Request, error: Exception) -> Response:
    """A challenge folder the organiser edited into something unusable: the one-line reason goes to the server's log
    only (it may name private scores), the client gets a plain 500."""
    log.error("%s %s: %s", request.method, request.url.path, error)
    return _error(500, SERVER_BROKEN)


_UNAUTHORISED = "missing or invalid token: send Authorization: Bearer TOKEN (from medico challenge team add)"
_THROTTLED = (
    f"too many invalid tokens from your address (at most {BURST} at once, then {PER_SECOND:g} a second): retry in "
    "{seconds} s"
)


class _SafeHeaders:
    """Adds :data:`_HEADERS` to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


def create_app(
    folder: Path, *, clock: Callable[[], datetime] = _utc_now, worker: bool = False, poll: float = 0.25
) -> ASGIApp:
    """The app serving the challenge in ``folder``; ``clock`` tells the time (UTC); ``worker`` serves for real: the
    folders are checked and stale partial uploads swept now (:func:`prepare_to_serve`), and the scoring worker
    process runs, replaced when it dies, from the app's start to its stop (looking for new submissions every
    ``poll`` seconds)."""
    challenge = Challenge.open(folder)
    if worker:
        prepare_to_serve(challenge)
    settings = challenge.settings

    receiving: Counter[int] = Counter()  # bodies being received, per team id (one event loop: no lock needed)
    # A token check is a scrypt hash (16 MiB, tens of ms of CPU): a few at a time, so a burst of uploads neither
    # starves the event loop serving the leaderboard of CPU nor takes 16 MiB per request waiting.
    checking = CapacityLimiter(max(1, (os.cpu_count() or 2) // 2))
    # A team's requests after its first need no hash, so never wait behind made-up tokens' hashes.
    callers = Callers(challenge, checking)

    def phase() -> str:
        return current_phase(challenge, clock())

    def unauthorised() -> JSONResponse:
        return _error(401, _UNAUTHORISED, {"WWW-Authenticate": "Bearer"})

    async def caller(request: Request) -> Team | Response:
        """The calling team, or the answer to a caller that is none: 401 without a valid token, 429 from an address
        that sent too many invalid ones (before hashing what it sent)."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return unauthorised()
        address = request.client.host if request.client else ""
        team = await callers.team(token.strip(), address, clock().timestamp())
        if isinstance(team, Throttled):
            return _error(429, _THROTTLED.format(seconds=team.seconds), {"Retry-After": str(team.seconds)})
        return unauthorised() if team is None else team

    live = LiveStandings(challenge)
    rendering = CapacityLimiter(1)  # its own thread: a rebuild never waits behind uploads' token checks

    async def board() -> Rendered:
        """The standings now: kept ones straight from the event loop, else rebuilt in a thread."""
        now = clock()
        return live.cached(now) or await to_thread.run_sync(live.current, now, limiter=rendering)

    async def page(request: Request) -> Response:
        return HTMLResponse((await board()).html)

    async def leaderboard(request: Request) -> Response:
        return Response((await board()).json, media_type="application/json")

    async def submit(request: Request) -> Response:
        team = await caller(request)
        if not isinstance(team, Team):
            return team
        now = clock()
        refusal = upload_refusal(settings, await run_in_threadpool(closed_at, challenge), now)
        if refusal is not None:
            return _error(403, refusal)
        left = await run_in_threadpool(team_allowance, challenge, team, now)
        if not left.allowed:
            return _too_many(LimitReachedError(left), now)
        declared = request.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > settings.max_upload_bytes:
            return _too_large(settings.max_upload_bytes)
        # Bodies in flight count against the uploads left (no await between the check and the count), so one team's
        # many slow or parallel uploads cannot fill the disk beyond what it may still store.
        if receiving[team.id] >= min(left.left_total, left.left_today or left.left_total):
            return _error(429, f"{receiving[team.id]} uploads of your team are still being received: wait for them")
        receiving[team.id] += 1
        try:
            upload = await receive_upload(request.stream(), challenge.uploads, settings.max_upload_bytes)
        except TooLargeError:
            return _too_large(settings.max_upload_bytes)
        except ClientDisconnect:
            return _error(400, "the upload was interrupted")
        finally:
            receiving[team.id] -= 1
        if upload.size == 0:
            upload.path.unlink()
            return _error(400, "the upload is empty: send the task 1 zip as the request body")
        arrived = clock()  # checked again and stored as of now: the body may have taken minutes
        try:
            received = await run_in_threadpool(
                add_submission, challenge, team, upload.path, upload.sha256, arrived, _model(request)
            )
        except UploadRefusedError as error:
            return _error(403, str(error))
        except LimitReachedError as error:
            return _too_many(error, arrived)
        body = {"id": received.id, "duplicate": received.duplicate}
        return JSONResponse(body, status_code=200 if received.duplicate else 202)

    async def own_submissions(request: Request) -> Response:
        team = await caller(request)
        if not isinstance(team, Team):
            return team
        now = clock()
        closed = await run_in_threadpool(closed_at, challenge)
        current = phase_at(settings, closed, now)
        left = await run_in_threadpool(team_allowance, challenge, team, now)
        listed = await run_in_threadpool(team_submissions, challenge, team, current)
        return JSONResponse(
            {
                "team": team.name,
                "phase": current,
                "opens": _time(settings.opens),
                "closes": _time(closing_time(settings, closed)),
                "left_today": left.left_today,
                "left_total": left.left_total,
                "next_allowed": _time(left.next_allowed),
                "submissions": listed,
            }
        )

    async def own_submission(request: Request) -> Response:
        team = await caller(request)
        if not isinstance(team, Team):
            return team
        number = _submission_number(request)
        found = None if number is None else await run_in_threadpool(team_submission, challenge, team, number, phase())
        return _not_found() if found is None else JSONResponse(found)

    async def select(request: Request) -> Response:
        team = await caller(request)
        if not isinstance(team, Team):
            return team
        if phase() == "closed":
            return _error(409, "the challenge is closed: selections are final")
        number = _submission_number(request)
        chosen = number is not None and await run_in_threadpool(select_submission, challenge, team, number)
        return JSONResponse({"selected": number}) if chosen else _not_found()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not worker:
            yield
            return
        with WorkerSupervisor(challenge.folder, poll):  # a worker that dies is replaced; stopped with the app
            yield

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/api/leaderboard", leaderboard, methods=["GET"]),
        Route("/api/submissions", submit, methods=["POST"]),
        Route("/api/submissions", own_submissions, methods=["GET"]),
        Route("/api/submissions/{id:int}", own_submission, methods=["GET"]),
        Route("/api/submissions/{id:int}/select", select, methods=["POST"]),
    ]
    return _SafeHeaders(Starlette(routes=routes, lifespan=lifespan, exception_handlers={ChallengeError: _broken}))


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _model(request: Request) -> str | None:
    """The model named with an upload (:data:`MODEL_HEADER`, percent-encoded UTF-8), decoded; None without one.
    :func:`add_submission` stores it through the participant-text gate."""
    named = request.headers.get(MODEL_HEADER)
    return None if named is None else urllib.parse.unquote(named, errors="replace")


def _submission_number(request: Request) -> int | None:
    """The submission id in the path; None for one no submission can have (past SQLite's largest integer)."""
    number = request.path_params["id"]
    return number if number <= MAX_RUN_NUMBER else None


def _not_found() -> JSONResponse:
    return _error(404, "no such submission of your team")


def _too_large(limit: int) -> JSONResponse:
    return _error(413, f"the upload exceeds the size limit of {limit:,} bytes", {"Connection": "close"})


def _too_many(error: LimitReachedError, now: datetime) -> JSONResponse:
    body: dict[str, Any] = {"error": str(error), "next_allowed": None}
    headers = {}
    if error.allowance.next_allowed is not None:
        body["next_allowed"] = error.allowance.next_allowed.isoformat()
        headers["Retry-After"] = str(max(int((error.allowance.next_allowed - now).total_seconds()), 1))
    return JSONResponse(body, status_code=429, headers=headers)
