"""Token checks rate-limited per client address, before any hash is computed.

Checking a token not verified before is a scrypt hash (tens of ms of CPU, 16 MiB): made-up tokens sent by the hundred
would make every team wait. Each address has a bucket of :data:`BURST` checks, refilled at :data:`PER_SECOND`; a check
takes one before hashing and one that succeeds gives it back, so only failures count, and a burst sent at once is cut
at :data:`BURST` however many of its hashes are still running. An IPv6 client is counted by its /64 network, which one
host usually holds whole (as an IPv4 address): addresses within it cost nothing to change.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = ["BURST", "PER_SECOND", "Throttle"]

BURST = 20
"""Failed token checks an address may make at once."""
PER_SECOND = 2.0
"""Failed token checks an address may make per second after its burst."""
_PRUNE_AT = 10_000
"""Addresses kept before those with a full bucket (nothing to remember) are forgotten."""


@dataclass
class _Bucket:
    level: float
    at: float


class Throttle:
    """A bucket of token checks per client address; times are seconds on any clock (only differences count, and a
    clock set back refills nothing). Used from one event loop: no lock."""

    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}
        self._prune_at = _PRUNE_AT

    def take(self, address: str, now: float) -> float:
        """Take one check for ``address`` at ``now``: 0 when it may hash, else the seconds until it may."""
        address = _sender(address)
        bucket = self._buckets.get(address)
        if bucket is None:
            if len(self._buckets) >= self._prune_at:
                self._forget_full(now)
            bucket = self._buckets[address] = _Bucket(BURST, now)
        bucket.level = min(BURST, bucket.level + max(now - bucket.at, 0.0) * PER_SECOND)
        bucket.at = max(bucket.at, now)
        if bucket.level < 1:
            return (1 - bucket.level) / PER_SECOND
        bucket.level -= 1
        return 0.0

    def give_back(self, address: str) -> None:
        """Return the check ``address`` took: the token it showed was valid."""
        bucket = self._buckets.get(_sender(address))
        if bucket is not None:
            bucket.level = min(BURST, bucket.level + 1)

    def _forget_full(self, now: float) -> None:
        """Drop the buckets full again by ``now``; prune next at twice what is left (amortised: never a scan per
        request, however many addresses send)."""
        self._buckets = {
            address: bucket
            for address, bucket in self._buckets.items()
            if bucket.level + max(now - bucket.at, 0.0) * PER_SECOND < BURST
        }
        self._prune_at = max(_PRUNE_AT, 2 * len(self._buckets))


def _sender(address: str) -> str:
    """Who sends from ``address``, as the throttle counts: an IPv6 address's /64 network, anything else as it is."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if parsed.version == 6 and parsed.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return address
