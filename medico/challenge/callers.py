"""Which team is calling, without making every team wait behind made-up tokens.

A token's first check is a scrypt hash (:func:`authenticate`); once verified it is recognised from memory, by its
SHA-256, and its team's row is re-read on every request (:func:`token_current`), so a revoke or a new token made by
another process (``medico challenge team revoke``) counts at once. Requests with a token being checked wait for that
one check (a team's many uploads at once cost one hash). Any other token is hashed only while its client address has
checks left (:class:`Throttle`).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import anyio
from anyio import CapacityLimiter, to_thread

from medico.challenge.folder import Challenge
from medico.challenge.teams import Team, authenticate, token_current
from medico.challenge.throttle import Throttle

__all__ = ["Callers", "Throttled"]


@dataclass(frozen=True)
class Throttled:
    """No check now: the caller's address sent too many invalid tokens; it may try again in ``seconds``."""

    seconds: int


@dataclass
class _Check:
    """A token's check in progress: set ``done`` once ``team`` is known (None: not a valid token)."""

    done: anyio.Event = field(default_factory=anyio.Event)
    team: Team | None = None


class Callers:
    """The teams behind the tokens sent to one app, hashing in threads under ``limiter``. Used from one event loop:
    no lock."""

    def __init__(self, challenge: Challenge, limiter: CapacityLimiter) -> None:
        self._challenge = challenge
        self._limiter = limiter
        self._verified: dict[bytes, Team] = {}
        self._checking: dict[bytes, _Check] = {}
        self._throttle = Throttle()

    async def team(self, token: str, address: str, now: float) -> Team | Throttled | None:
        """The team whose valid token ``token`` is, sent from ``address`` at ``now`` (seconds); :class:`Throttled`
        when the address may not have one more token checked now; None for a wrong, revoked or replaced token."""
        key = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        known = self._verified.get(key)
        if known is not None:
            if await to_thread.run_sync(token_current, self._challenge, known):
                return known
            self._verified.pop(key, None)
            return None
        check = self._checking.get(key)
        if check is not None:
            await check.done.wait()
            return check.team
        wait = self._throttle.take(address, now)
        if wait:
            return Throttled(math.ceil(wait))
        check = self._checking[key] = _Check()
        try:
            check.team = await to_thread.run_sync(authenticate, self._challenge, token, limiter=self._limiter)
        finally:
            del self._checking[key]
            check.done.set()
        if check.team is not None:
            self._throttle.give_back(address)
            self._verified[key] = check.team
        return check.team
