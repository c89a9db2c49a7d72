"""The leaderboard: entries, the SQLite store, ranking, published reference figures, rendering and exports."""

from medico.leaderboard.entry import SCORES, SOURCES, SPLITS, TASKS, Entry, check_entry
from medico.leaderboard.errors import LeaderboardError
from medico.leaderboard.export import FORMATS, export_text, write_export
from medico.leaderboard.published import load_published, reported_csv_path
from medico.leaderboard.ranking import Ranked, best_per_team, latest_per_team, rank_entries, select_view
from medico.leaderboard.render import leaderboard_tables
from medico.leaderboard.store import LeaderboardStore, default_db_path
from medico.leaderboard.view import leaderboard_rows

__all__ = [
    "FORMATS",
    "SCORES",
    "SOURCES",
    "SPLITS",
    "TASKS",
    "Entry",
    "LeaderboardError",
    "LeaderboardStore",
    "Ranked",
    "best_per_team",
    "check_entry",
    "default_db_path",
    "export_text",
    "latest_per_team",
    "leaderboard_rows",
    "leaderboard_tables",
    "load_published",
    "rank_entries",
    "reported_csv_path",
    "select_view",
    "write_export",
]
