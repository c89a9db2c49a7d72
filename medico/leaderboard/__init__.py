"""The leaderboard: entries, the SQLite store, ranking, published reference figures, rendering and exports."""

from medico.leaderboard.entry import SOURCES, SPLITS, TASKS, Entry
from medico.leaderboard.store import LeaderboardError, LeaderboardStore, default_db_path

__all__ = ["SOURCES", "SPLITS", "TASKS", "Entry", "LeaderboardError", "LeaderboardStore", "default_db_path"]
