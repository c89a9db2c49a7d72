"""A participant's side of a hosted challenge: upload an archive, wait for its score, read one's own submissions and
public rank. Standard library only (:mod:`urllib`): taking part needs none of the server's packages.

The token is read from a file (never from the command line, where other users' ``ps`` would see it) and is sent
only in the ``Authorization`` header; no message this module makes contains it.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from medico.errors import MedicoError
from medico.files import is_file
from medico.leaderboard.participant import plain_text

__all__ = [
    "MODEL_HEADER",
    "ChallengeClient",
    "ClientError",
    "InvalidUploadError",
    "Standing",
    "Submitted",
    "TeamStatus",
    "read_token",
]

MAX_TOKEN_FILE = 4096
MAX_ANSWER_BYTES = 16 * 2**20
"""The most of a server's answer read: a team's own list, with every per-image score after close, is far smaller."""
FINAL_STATES = ("scored", "invalid")
PHASES = ("before", "open", "closed")
MODEL_HEADER = "X-Medico-Model"
"""The upload's header naming the model (percent-encoded UTF-8), shown on the hosted leaderboard."""
_SEPARATOR = re.compile(r"[/\\]")
"""Splits off the folders of a path in a model's name (``/home/me/My Nets/x.py:build``): never sent, the page is
public."""
_MAX_SHOWN = 200
"""The most characters of a server's text (a team name, a state, a time) this client keeps."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Follows no redirect: urllib would send the token's header on to wherever the server points (another host, or
    plain http); the redirect is answered as the error it then is."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


class ClientError(MedicoError):
    """The server refused a request or could not be reached; the message says which and why."""


class InvalidUploadError(MedicoError):
    """The server's worker found the uploaded archive invalid (exit code 1, as ``medico validate``)."""

    exit_code = 1


def read_token(path: Path) -> str:
    """The token in the file ``path`` (white space around it ignored).

    Raises:
        ClientError: the file is missing, not a regular file, too large or empty.
    """
    path = Path(path)
    if not is_file(path):
        raise ClientError(f"--token-file {path}: expected the file holding your team's token, found none")
    data = path.read_bytes()[: MAX_TOKEN_FILE + 1]
    token = data.decode("utf-8", "replace").strip()
    if not token or len(data) > MAX_TOKEN_FILE or any(c.isspace() for c in token):
        raise ClientError(f"--token-file {path}: expected one token (from medico challenge team add), found "
                          f"{'nothing' if not token else 'something else'}")
    return token


class _Shape(Exception):
    """A server's JSON answer lacks a field or holds one of another type; the message says which."""


def _field(data: Any, key: str, kind: type | tuple[type, ...], *, optional: bool = False) -> Any:
    """``data[key]`` when ``data`` is an object holding it as ``kind`` (a bool is no number), or None when it is
    ``optional`` and absent or null.

    Raises:
        _Shape: ``data`` is not an object, or the field is missing or of another type.
    """
    if not isinstance(data, dict):
        raise _Shape(f"expected an object with {key!r}, found {type(data).__name__}")
    value = data.get(key)
    if value is None and optional:
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise _Shape(f"expected {key!r} to be {' or '.join(k.__name__ for k in kinds)}, found {type(value).__name__}")
    return value


def _text(data: Any, key: str, *, optional: bool = False) -> str | None:
    """A text field, made safe to show (:func:`plain_text`, capped)."""
    value = _field(data, key, str, optional=optional)
    return None if value is None else plain_text(value, _MAX_SHOWN)


def _number(data: Any, key: str) -> float:
    """A number field, as a float."""
    value = _field(data, key, (int, float))
    try:
        return float(value)
    except OverflowError:  # an integer past any float
        raise _Shape(f"expected {key!r} to be a score, found an integer of {len(str(value))} digits") from None


def _scores(data: Any) -> dict[str, dict[str, float]]:
    """A submission's scores: per part (public, private), each score's number."""
    scores = {}
    parts = _field(data, "scores", dict)
    for part in parts:
        values = _field(parts, part, dict)
        scores[part] = {name: _number(values, name) for name in values}
    return scores


@dataclass(frozen=True)
class Submitted:
    """One of the team's submissions as the server lists it: its id, state, time received, whether the team selected it
    and whether it is ranked by it (after close), its scores per part and the validator's messages (when asked for)."""

    id: int
    state: str
    received: str
    selected: bool
    ranked: bool
    scores: dict[str, dict[str, float]]
    messages: tuple[str, ...]

    @classmethod
    def parse(cls, data: Any) -> Submitted:
        """The submission the server's JSON ``data`` describes."""
        messages = _field(data, "messages", list, optional=True) or []
        return cls(
            _field(data, "id", int),
            str(_text(data, "state")),
            str(_text(data, "received")),
            _field(data, "selected", bool),
            bool(_field(data, "ranked", bool, optional=True)),
            _scores(data),
            tuple(plain_text(str(message), 300) for message in messages),
        )


@dataclass(frozen=True)
class TeamStatus:
    """The team's state on the server: its name, the challenge's phase (``before``, ``open``, ``closed``) with its
    opening and closing times, the uploads left today (None: no daily limit) and in total, when the next is allowed
    when none is left today, and its submissions (oldest first). A server of an older medico tells no phase (None)."""

    team: str
    phase: str | None
    opens: str | None
    closes: str | None
    left_today: int | None
    left_total: int
    next_allowed: str | None
    submissions: tuple[Submitted, ...]

    @classmethod
    def parse(cls, data: Any) -> TeamStatus:
        """The status the server's JSON ``data`` describes (``GET /api/submissions``)."""
        phase = _field(data, "phase", str, optional=True)
        if phase is not None and phase not in PHASES:
            raise _Shape(f"expected 'phase' to be one of {', '.join(PHASES)}, found {plain_text(phase, 40)!r}")
        return cls(
            str(_text(data, "team")),
            phase,
            _text(data, "opens", optional=True),
            _text(data, "closes", optional=True),
            _field(data, "left_today", int, optional=True),
            _field(data, "left_total", int),
            _text(data, "next_allowed", optional=True),
            tuple(Submitted.parse(item) for item in _field(data, "submissions", list)),
        )

    def refusal(self) -> str | None:
        """Why the server would refuse an upload now (not open yet, closed, no uploads left), with when that changes;
        None when it would take one."""
        if self.phase == "before":
            return "the challenge is not open yet" + (f": it opens at {self.opens}" if self.opens else "")
        if self.phase == "closed":
            return "the challenge is closed" + (f" (since {self.closes})" if self.closes else "") + ": it takes no " \
                "more uploads"
        if self.left_total <= 0:
            return f"team {self.team} has no uploads left: the total limit is reached"
        if self.left_today is not None and self.left_today <= 0:
            when = self.next_allowed or "tomorrow (UTC)"
            return f"team {self.team} has no uploads left today: the next is allowed from {when}"
        return None


@dataclass(frozen=True)
class Standing:
    """The team's place on the leaderboard: its rank (None: not ranked yet) among how many teams, on which part."""

    rank: int | None
    teams: int
    part: str

    @classmethod
    def parse(cls, data: Any, team: str) -> Standing:
        """The standing of ``team`` on the leaderboard ``data``, counting only the teams' rows (not published ones)."""
        rows = _field(data, "rows", list)
        rows = [row for row in rows if _text(row, "source", optional=True) in (None, "submission")]
        ranks = [_field(row, "rank", int, optional=True) for row in rows if _text(row, "team") == team]
        return cls(ranks[0] if ranks else None, len(rows), str(_text(data, "part")))


class _Progress:
    """A binary file read by the HTTP client in blocks, reporting the bytes read so far."""

    def __init__(self, handle: BinaryIO, report: Callable[[int], None]) -> None:
        self.handle, self.report, self.done = handle, report, 0

    def read(self, size: int = -1) -> bytes:
        block = self.handle.read(size)
        self.done += len(block)
        self.report(self.done)
        return block


@dataclass(frozen=True)
class ChallengeClient:
    """A hosted challenge at ``url`` (``http`` or ``https``), called with ``token``."""

    url: str
    token: str
    timeout: float = 60.0

    def __post_init__(self) -> None:
        parsed = urllib.parse.urlsplit(self.url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ClientError(f"--to {plain_text(self.url, 200)!r}: expected the server's http:// or https:// address")
        object.__setattr__(self, "url", self.url.rstrip("/"))

    def _call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        request = urllib.request.Request(
            self.url + path, data=body, method=method,
            headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json", **(headers or {})},
        )
        try:
            with _OPENER.open(request, timeout=self.timeout) as answer:  # http(s) only: checked when made
                data = answer.read(MAX_ANSWER_BYTES + 1)
            if len(data) > MAX_ANSWER_BYTES:
                raise ClientError(f"{self.url}{path}: the answer exceeds {MAX_ANSWER_BYTES:,} bytes: is this a medico "
                                  "challenge server?")
            return json.loads(data)
        except urllib.error.HTTPError as error:
            if 300 <= error.code < 400:
                where = plain_text(str(error.headers.get("Location", "")), 200)
                raise ClientError(f"{self.url}{path}: the server redirects to {where!r}; the token is not sent on: "
                                  "pass the server's own address with --to") from None
            raise ClientError(f"{self.url}{path}: {error.code} {_reason(error)}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ClientError(f"{self.url}: cannot reach the server ({reason})") from None
        except (ValueError, RecursionError):  # not JSON, or nested too deep to read
            raise ClientError(f"{self.url}{path}: the answer is not JSON: is this a medico challenge server?") from None

    def _read(self, path: str, parse: Callable[[Any], Any], method: str = "GET", **request: Any) -> Any:
        """The answer to ``method path``, read by ``parse``; one of another shape is a :class:`ClientError`."""
        answer = self._call(method, path, **request)
        try:
            return parse(answer)
        except _Shape as error:
            raise ClientError(f"{self.url}{path}: not a medico challenge server's answer ({error})") from None

    def upload(
        self, archive: Path, progress: Callable[[int], None] | None = None, model: str | None = None
    ) -> tuple[int, bool]:
        """Upload ``archive`` (streamed from disk), naming its ``model`` for the leaderboard; the submission's id, and
        whether the team had sent the same archive before."""
        size = os.path.getsize(archive)
        with open(archive, "rb") as handle:
            body = _Progress(handle, progress or (lambda done: None))
            headers = {"Content-Type": "application/zip", "Content-Length": str(size)}
            if model:  # a file plugin's spec names its file, never the folders it lies in on this machine
                headers[MODEL_HEADER] = urllib.parse.quote(plain_text(_SEPARATOR.split(model)[-1]), safe=" ()+,:")
            return self._read(
                "/api/submissions", lambda data: (_field(data, "id", int), _field(data, "duplicate", bool)),
                "POST", body=body, headers=headers,
            )

    def submission(self, number: int) -> Submitted:
        """One of the team's submissions, with its state, scores and the validator's messages."""
        return self._read(f"/api/submissions/{number}", Submitted.parse)

    def status(self) -> TeamStatus:
        """The team's name, the challenge's phase, the uploads left and the team's submissions (oldest first)."""
        return self._read("/api/submissions", TeamStatus.parse)

    def standing(self, team: str) -> Standing:
        """``team``'s place on the current leaderboard (public part until close)."""
        return self._read("/api/leaderboard", lambda data: Standing.parse(data, team))

    def wait(self, number: int, timeout: float = 600.0, poll: float = 1.0) -> Submitted:
        """Submission ``number`` once scored or found invalid.

        Raises:
            ClientError: still not scored after ``timeout`` seconds (it stays queued on the server).
        """
        deadline = time.monotonic() + timeout
        while (found := self.submission(number)).state not in FINAL_STATES:
            if time.monotonic() > deadline:
                raise ClientError(f"submission {number} is still {found.state} after {timeout:g} s; "
                                  "see it later with medico status")
            time.sleep(poll)
        return found


def _reason(error: urllib.error.HTTPError) -> str:
    """The server's one-line explanation of a refusal (its JSON ``error``), with when the next upload is allowed where
    it does not say so already; else the HTTP reason."""
    try:
        body = json.loads(error.read(65536))
        text = str(body.get("error") or error.reason)
        allowed = body.get("next_allowed")
        if allowed and str(allowed) not in text:
            text += f" (next allowed: {allowed})"
    except (ValueError, AttributeError, OSError, RecursionError):
        text = error.reason
    return plain_text(str(text), 300)
