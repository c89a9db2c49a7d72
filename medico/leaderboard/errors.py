"""The error a user can cause with the leaderboard: an unusable database file or an entry it cannot rank."""

from __future__ import annotations

from medico.errors import MedicoError

__all__ = ["LeaderboardError"]


class LeaderboardError(MedicoError):
    """The leaderboard database cannot be used (corrupted, locked, newer schema) or an entry is invalid."""
