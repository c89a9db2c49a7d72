"""A participant's side of a hosted challenge: upload an archive, wait for its score, read one's own submissions and
public rank. Standard library only (:mod:`urllib`): taking part needs none of the server's packages.

The token is read from a file (never from the command line, where other users' ``ps`` would see it) and is sent
only in the ``Authorization`` header; no message this module makes contains it.
"""

from __future__ import annotations

import json
import os
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

__all__ = ["ChallengeClient", "ClientError", "InvalidUploadError", "read_token"]

MAX_TOKEN_FILE = 4096
FINAL_STATES = ("scored", "invalid")


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
                return json.loads(answer.read())
        except urllib.error.HTTPError as error:
            if 300 <= error.code < 400:
                where = plain_text(str(error.headers.get("Location", "")), 200)
                raise ClientError(f"{self.url}{path}: the server redirects to {where!r}; the token is not sent on: "
                                  "pass the server's own address with --to") from None
            raise ClientError(f"{self.url}{path}: {error.code} {_reason(error)}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ClientError(f"{self.url}: cannot reach the server ({reason})") from None
        except ValueError:
            raise ClientError(f"{self.url}{path}: the answer is not JSON: is this a medico challenge server?") from None

    def upload(self, archive: Path, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Upload ``archive`` (streamed from disk); the server's answer: ``{"id": N, "duplicate": bool}``."""
        size = os.path.getsize(archive)
        with open(archive, "rb") as handle:
            body = _Progress(handle, progress or (lambda done: None))
            headers = {"Content-Type": "application/zip", "Content-Length": str(size)}
            return self._call("POST", "/api/submissions", body, headers)

    def submission(self, number: int) -> dict[str, Any]:
        """One of the team's submissions, with its state, scores and per-image scores."""
        return self._call("GET", f"/api/submissions/{number}")

    def status(self) -> dict[str, Any]:
        """The team's name, submissions (oldest first) and uploads left today and in total."""
        return self._call("GET", "/api/submissions")

    def leaderboard(self) -> dict[str, Any]:
        """The current leaderboard (public part until close)."""
        return self._call("GET", "/api/leaderboard")

    def wait(self, number: int, timeout: float = 600.0, poll: float = 1.0) -> dict[str, Any]:
        """Submission ``number`` once scored or found invalid.

        Raises:
            ClientError: still not scored after ``timeout`` seconds (it stays queued on the server).
        """
        deadline = time.monotonic() + timeout
        while (found := self.submission(number))["state"] not in FINAL_STATES:
            if time.monotonic() > deadline:
                raise ClientError(f"submission {number} is still {found['state']} after {timeout:g} s; "
                                  "see it later with medico status")
            time.sleep(poll)
        return found


def _reason(error: urllib.error.HTTPError) -> str:
    """The server's one-line explanation of a refusal (its JSON ``error``), else the HTTP reason."""
    try:
        body = json.loads(error.read(65536))
        text = body.get("error") or error.reason
        if body.get("next_allowed"):
            text += f" (next allowed: {body['next_allowed']})"
    except (ValueError, AttributeError, OSError):
        text = error.reason
    return plain_text(str(text), 300)
