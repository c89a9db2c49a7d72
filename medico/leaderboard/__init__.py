"""The leaderboard: entries, the SQLite store, ranking, published reference figures, rendering and exports."""

from medico.leaderboard.entry import SCORES, SOURCES, SPLITS, TASKS, Entry, check_entry
from medico.leaderboard.errors import LeaderboardError
from medico.leaderboard.store import LeaderboardStore, default_db_path

__all__ = [
    "SCORES",
    "SOURCES",
    "SPLITS",
    "TASKS",
    "Entry",
    "LeaderboardError",
    "LeaderboardStore",
    "check_entry",
    "default_db_path",
]
