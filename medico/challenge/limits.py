"""How many archives a team may still upload: at most ``max_per_day`` per UTC day and ``max_total`` in all.

Every stored upload counts (queued, being scored or scored) except an invalid one that is the server's fault (an
unscorable truth, a scorer that kept crashing: :data:`~medico.challenge.queue.Fault`); one invalid by the archive's
fault (a broken rule, a time or memory limit passed) counts unless the settings say ``count_invalid = false``: the
default stops a team from probing the hidden truth with invalid archives, so validate locally first with ``medico
validate``. The same archive sent again is answered with its first submission and counts once (while the team has
uploads left: one with none left is refused before its body is read). The count is taken inside the transaction that
adds the upload (``BEGIN IMMEDIATE``), so concurrent uploads can never exceed a limit.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone

from medico.challenge.database import timestamp
from medico.challenge.settings import Settings

__all__ = ["Allowance", "allowance"]


@dataclass(frozen=True)
class Allowance:
    """A team's remaining uploads today (None: no daily limit) and in total, and when the next is allowed when
    none is left (None: never again, or allowed now)."""

    left_today: int | None
    left_total: int
    next_allowed: datetime | None

    @property
    def allowed(self) -> bool:
        """Whether one more upload is allowed now."""
        return self.left_total > 0 and (self.left_today is None or self.left_today > 0)

    def reason(self) -> str:
        """Why no more uploads are allowed now, and when the next one is."""
        if self.left_total <= 0:
            return "no submissions left: the total limit is reached"
        when = self.next_allowed.isoformat() if self.next_allowed else "tomorrow"
        return f"no submissions left today: the next one is allowed from {when}"


def allowance(connection: sqlite3.Connection, settings: Settings, team_id: int, now: datetime) -> Allowance:
    """Team ``team_id``'s allowance at ``now``, counted in ``connection``'s transaction."""
    day = datetime.combine(now.astimezone(timezone.utc).date(), time(), tzinfo=timezone.utc)
    total, today = connection.execute(
        "SELECT COUNT(*), COALESCE(SUM(received >= ?), 0) FROM submissions "
        "WHERE team_id = ? AND (fault IS NULL OR (fault = 'archive' AND ?))",
        (timestamp(day), team_id, settings.count_invalid),
    ).fetchone()
    left_total = settings.max_total - total
    left_today = None if settings.max_per_day is None else max(settings.max_per_day - today, 0)
    tomorrow = day + timedelta(days=1)
    next_allowed = tomorrow if left_today == 0 and left_total > 0 else None
    return Allowance(left_today, max(left_total, 0), next_allowed)
