"""The leaderboard database: SQLite in WAL mode, a versioned schema migrated in place, one transaction per write.

Several processes (two ``medico score`` at once, a ``medico run`` beside them) may write to the same file: each
write takes SQLite's write lock up front (``BEGIN IMMEDIATE``) and waits for it up to ``timeout`` seconds, so
nothing is lost and the duplicate check cannot race with another insert.

Viewing needs no write access: a store opened ``read_only`` never creates, migrates or writes the file, reads an
older schema as it is, and shows a missing file as an empty leaderboard.
"""

from __future__ import annotations

import json
import os
import sqlite3
import types
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from medico.leaderboard.entry import Entry, check_entry
from medico.leaderboard.errors import LeaderboardError
from medico.leaderboard.participant import plain_text
from medico.transactions import immediate

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "LeaderboardStore", "default_db_path"]

# Each script takes the schema from version i to i + 1; a new file runs them all, an older file the rest.
MIGRATIONS: tuple[str, ...] = (
    # 1: the entries table.
    """
    CREATE TABLE entries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        team TEXT NOT NULL,
        model TEXT NOT NULL,
        task TEXT NOT NULL,
        split TEXT NOT NULL,
        run INTEGER,
        dice REAL, iou REAL, precision REAL, recall REAL, f2 REAL, accuracy REAL,
        dice_std REAL, iou_std REAL, precision_std REAL, recall_std REAL, f2_std REAL, accuracy_std REAL,
        fps REAL,
        fps_device TEXT,
        fps_kind TEXT,
        n_images INTEGER,
        dataset_fingerprint TEXT,
        metric_policy TEXT NOT NULL DEFAULT '{}',
        source TEXT NOT NULL,
        sha256 TEXT,
        created TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT ''
    );
    """,
    # 2: citations, and one entry per scored file (earlier duplicates win), and an index for the usual filters.
    """
    ALTER TABLE entries ADD COLUMN citation TEXT NOT NULL DEFAULT '';
    DELETE FROM entries WHERE sha256 IS NOT NULL AND id NOT IN (
        SELECT MIN(id) FROM entries WHERE sha256 IS NOT NULL GROUP BY sha256, task, split
    );
    CREATE UNIQUE INDEX entries_scored_once ON entries (sha256, task, split) WHERE sha256 IS NOT NULL;
    CREATE INDEX entries_task_split ON entries (task, split);
    """,
    # 3: the 95% bootstrap interval of mIoU and Dice over images (NULL for older and published entries).
    """
    ALTER TABLE entries ADD COLUMN iou_ci_low REAL;
    ALTER TABLE entries ADD COLUMN iou_ci_high REAL;
    ALTER TABLE entries ADD COLUMN dice_ci_low REAL;
    ALTER TABLE entries ADD COLUMN dice_ci_high REAL;
    """,
    # 4: which data a result was scored on, so that synthetic and real results are never ranked together.
    """
    ALTER TABLE entries ADD COLUMN dataset TEXT NOT NULL DEFAULT '';
    """,
    # 5: the precision an FPS was measured at (fp32, bf16, fp16), so that the efficiency board never mixes them.
    """
    ALTER TABLE entries ADD COLUMN fps_precision TEXT;
    """,
    # 6: the measures polyp papers report (NULL where not scored: older entries and those scored without them).
    """
    ALTER TABLE entries ADD COLUMN smeasure REAL;
    ALTER TABLE entries ADD COLUMN mean_em REAL;
    ALTER TABLE entries ADD COLUMN wfm REAL;
    ALTER TABLE entries ADD COLUMN mae REAL;
    ALTER TABLE entries ADD COLUMN hd95 REAL;
    """,
    # 7: how the masks were predicted: test-time augmentation and the number of models averaged (older rows: one
    # model, no augmentation, as every medico before this one predicted).
    """
    ALTER TABLE entries ADD COLUMN tta TEXT NOT NULL DEFAULT 'none';
    ALTER TABLE entries ADD COLUMN ensemble INTEGER NOT NULL DEFAULT 1;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

_COLUMNS = tuple(f.name for f in fields(Entry) if f.name != "id")


def default_db_path() -> Path:
    """Where the leaderboard lives: ``$MEDICO_DB``, else ``./leaderboard/medico.sqlite`` in the workspace."""
    return Path(os.environ.get("MEDICO_DB") or Path("leaderboard") / "medico.sqlite")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _accepted(hint: Any) -> tuple[type, ...]:
    """The Python types a stored value may have for a field annotated ``hint`` (a number may be stored as an int)."""
    kinds = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    accepted = [str if typing.get_origin(kind) is Literal else typing.get_origin(kind) or kind for kind in kinds]
    return (int, *accepted) if float in accepted else tuple(accepted)


_ACCEPTED = {name: _accepted(hint) for name, hint in typing.get_type_hints(Entry).items() if name != "id"}


def _row_to_entry(row: sqlite3.Row, path: Path) -> Entry:
    """The stored row as an entry (through the entry's gate); columns an older schema lacks keep their defaults.

    Raises:
        LeaderboardError: a value no medico stores (text for a score, a policy that is not a JSON object, a score out
            of range...), naming the file and the entry, rather than a traceback or a false rank.
    """
    values = {name: row[name] for name in _COLUMNS if name in row.keys()}
    try:
        values["metric_policy"] = json.loads(values["metric_policy"] or "{}")
    except (TypeError, ValueError, RecursionError):
        pass  # left as stored, and refused below
    for name, value in values.items():
        if not isinstance(value, _ACCEPTED[name]):
            raise LeaderboardError(
                f"leaderboard database {path}: entry {row['id']!r} holds {plain_text(repr(value), 60)} as its {name}, "
                "which medico never stores; move the file away to start a new leaderboard"
            )
    entry = Entry(**values, id=row["id"])
    try:
        check_entry(entry)  # a hand-edited value (a Dice of 7.5, a negative HD95) would otherwise rank or show
    except LeaderboardError as error:
        raise LeaderboardError(
            f"leaderboard database {path}: entry {row['id']!r}: {error}; medico never stores it (edited by hand?)"
        ) from None
    return entry


class LeaderboardStore:
    """The leaderboard database at ``path`` (default :func:`default_db_path`), created and migrated on open.

    Args:
        path: the SQLite file; its folder is created when missing.
        timeout: seconds to wait for another process's write lock before giving up with a LeaderboardError.
        read_only: only read (for viewing): nothing is created or migrated, a missing file reads as empty, and the
            file and its folder may be read-only.
    """

    def __init__(self, path: Path | None = None, *, timeout: float = 30.0, read_only: bool = False) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        self.timeout = timeout
        self.read_only = read_only
        if read_only:
            self.schema_version()  # refuses a newer or unusable file now rather than halfway through a command
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._migrate()

    def __repr__(self) -> str:
        return f"LeaderboardStore({str(self.path)!r})"

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection in autocommit mode (transactions are explicit); SQLite errors become LeaderboardError."""
        connection = None
        try:
            connection = self._open()
            connection.row_factory = sqlite3.Row
            yield connection
        except sqlite3.OperationalError as error:
            if "locked" in str(error) or "busy" in str(error):
                raise LeaderboardError(
                    f"leaderboard database {self.path} is locked by another process "
                    f"(waited {self.timeout:g} s): {error}"
                ) from error
            if "readonly" in str(error) or "unable to open" in str(error):
                raise LeaderboardError(
                    f"leaderboard database {self.path} cannot be opened for writing ({error}): is the file or its "
                    "folder read-only for you? Writing needs write access to both; `medico leaderboard` only reads"
                ) from error
            raise LeaderboardError(f"leaderboard database {self.path} cannot be used: {error}") from error
        except sqlite3.DatabaseError as error:
            raise LeaderboardError(
                f"leaderboard database {self.path} is corrupted or not a SQLite file ({error}); "
                "move it away to start a new leaderboard"
            ) from error
        finally:
            if connection is not None:
                connection.close()

    def _open(self) -> sqlite3.Connection:
        """A connection to the file; read-only stores open it ``mode=ro``, and ``immutable`` where even reading a WAL
        file would need a write (its index cannot be created in a read-only folder, where nobody can write either)."""
        if not self.read_only:
            return sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        uri = f"{self.path.absolute().as_uri()}?mode=ro"
        connection = sqlite3.connect(uri, uri=True, timeout=self.timeout, isolation_level=None)
        try:
            connection.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        except sqlite3.OperationalError as error:
            connection.close()
            if "readonly" not in str(error):
                raise
            connection = sqlite3.connect(f"{uri}&immutable=1", uri=True, isolation_level=None)
        return connection

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction holding the write lock from the start (so read-check-insert cannot race)."""
        with self._connect() as connection, immediate(connection):
            yield connection

    def _version(self, connection: sqlite3.Connection) -> int:
        """The file's schema version (0 for a new file); a version newer than this medico knows is refused."""
        if not connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_version'").fetchone():
            return 0
        row = connection.execute("SELECT version FROM schema_version").fetchone()
        version = 0 if row is None else row[0]
        if version > SCHEMA_VERSION:
            raise LeaderboardError(
                f"leaderboard database {self.path} has schema version {version}, newer than this medico "
                f"understands ({SCHEMA_VERSION}); upgrade medico"
            )
        return version

    def _migrate(self) -> None:
        """Bring the file to :data:`SCHEMA_VERSION`; an up-to-date file is only read, so viewing needs no write lock."""
        with self._connect() as connection:
            if self._version(connection) == SCHEMA_VERSION:
                return
            if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                connection.execute("PRAGMA journal_mode=WAL")  # persistent; cannot change inside a transaction
        with self._write() as connection:
            version = self._version(connection)  # again under the lock: another process may have migrated meanwhile
            for script in MIGRATIONS[version:]:
                for statement in script.split(";"):
                    if statement.strip():
                        connection.execute(statement)
            connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            connection.execute("DELETE FROM schema_version")
            connection.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))

    def schema_version(self) -> int:
        """The schema version of the open file (:data:`SCHEMA_VERSION` once opened for writing by this medico; 0 for a
        read-only store whose file does not exist)."""
        if not self.path.exists():
            return 0
        with self._connect() as connection:
            return self._version(connection)

    def add(self, entry: Entry) -> int | None:
        """Insert ``entry`` in one transaction and return its row id; None (nothing inserted) when an entry with the
        same (sha256, task, split) is already stored. ``created`` is set to the current UTC time when None."""
        with self.adding(entry) as entry_id:
            return entry_id

    @contextmanager
    def adding(self, entry: Entry) -> Iterator[int | None]:
        """Insert ``entry`` and yield its row id (None as in :meth:`add`); the insert is committed when the block ends
        and rolled back when it raises, so what is written beside an entry is written with it or not at all.

        Raises:
            LeaderboardError: the entry is refused (:func:`check_entry`), its file is already stored for another team,
                or it is a submission for a run its team already holds with another file.
        """
        if self.read_only:
            raise LeaderboardError(f"leaderboard database {self.path} was opened read-only: nothing can be added")
        entry = replace(entry, id=None, created=entry.created or _now())  # the store gives ids: a new entry's gate
        check_entry(entry)
        values = [getattr(entry, name) for name in _COLUMNS]
        values[_COLUMNS.index("metric_policy")] = json.dumps(entry.metric_policy, sort_keys=True)
        with self._write() as connection:
            if self._already_stored(connection, entry):
                yield None
                return
            cursor = connection.execute(
                f"INSERT INTO entries ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})", values
            )
            yield cursor.lastrowid

    def _already_stored(self, connection: sqlite3.Connection, entry: Entry) -> bool:
        """Whether ``entry``'s file is stored for its task and split already (for its team: else a
        LeaderboardError), and refuse a submission for a run its team holds with another file: one file belongs to one
        team, one run of a team is one file, whichever order files are scored in."""
        where = "task = ? AND split = ? AND "
        if entry.sha256 is not None:
            row = connection.execute(
                f"SELECT * FROM entries WHERE {where} sha256 = ?", (entry.task, entry.split, entry.sha256)
            ).fetchone()
            if row is not None and (stored := _row_to_entry(row, self.path)).team != entry.team:
                raise LeaderboardError(
                    f"{entry.note or 'this file'} (sha256 {entry.sha256[:12]}...) is already on the {entry.split} "
                    f"leaderboard for team {stored.team!r} (entry {stored.id}): it cannot count for team "
                    f"{entry.team!r} too"
                )
            if row is not None:
                return True
        if entry.source == "submission" and entry.run is not None:
            row = connection.execute(
                f"SELECT * FROM entries WHERE {where} source = ? AND team = ? AND run = ?",
                (entry.task, entry.split, entry.source, entry.team, entry.run),
            ).fetchone()
            if row is not None:
                stored = _row_to_entry(row, self.path)
                raise LeaderboardError(
                    f"team {entry.team!r} already has run {entry.run} on the {entry.split} leaderboard for "
                    f"{entry.task} (entry {stored.id}, {stored.note or 'another file'}, sha256 "
                    f"{(stored.sha256 or '')[:12]}...): a different file for the same run is refused; score it "
                    "with a free --run number"
                )
        return False

    def entries(
        self,
        *,
        task: str | None = None,
        split: str | None = None,
        model: str | None = None,
        team: str | None = None,
        device: str | None = None,
    ) -> list[Entry]:
        """Stored entries matching every filter given (``device`` matches ``fps_device``), oldest first, with ids."""
        conditions = {"task": task, "split": split, "model": model, "team": team, "fps_device": device}
        where = [(f"{column} = ?", value) for column, value in conditions.items() if value is not None]
        sql = "SELECT * FROM entries"
        if where:
            sql += " WHERE " + " AND ".join(clause for clause, _ in where)
        sql += " ORDER BY created, id"
        if not self.path.exists():
            return []
        with self._connect() as connection:
            rows = connection.execute(sql, [value for _, value in where]).fetchall()
        return [_row_to_entry(row, self.path) for row in rows]

    def next_run_number(self, team: str, task: str) -> int:
        """One more than the highest run number ``team`` has for ``task`` (1 for a first run)."""
        with self._connect() as connection:
            highest = connection.execute(
                "SELECT MAX(run) FROM entries WHERE team = ? AND task = ?", (team, task)
            ).fetchone()[0]
        return 1 if highest is None else highest + 1
