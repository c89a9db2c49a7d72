"""A challenge's database: SQLite in WAL mode, a versioned schema, one transaction per change.

The web process and the scoring worker share the file. Every change holds SQLite's write lock from its start
(``BEGIN IMMEDIATE``), so a read-check-write (a team's remaining submissions, the next queued archive) cannot race
with another process doing the same.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from medico.challenge.settings import ChallengeError
from medico.leaderboard.entry import SCORES
from medico.transactions import immediate

__all__ = ["DATABASE_FILE", "MIGRATIONS", "SCHEMA_VERSION", "ChallengeDatabase", "ChangeWatch", "timestamp"]

DATABASE_FILE = "challenge.sqlite"
_SCORE_COLUMNS = ", ".join(f"{name} REAL NOT NULL" for name in SCORES)

# Each script takes the schema from version i to i + 1.
MIGRATIONS: tuple[str, ...] = (
    f"""
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE images (name TEXT PRIMARY KEY, part TEXT NOT NULL CHECK (part IN ('public', 'private')));
    CREATE TABLE rounds (round INTEGER PRIMARY KEY, truth_fingerprint TEXT NOT NULL, started TEXT NOT NULL);
    CREATE TABLE teams (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        token_id TEXT NOT NULL UNIQUE,
        salt BLOB NOT NULL,
        token_hash BLOB NOT NULL,
        created TEXT NOT NULL,
        revoked TEXT
    );
    CREATE TABLE submissions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        team_id INTEGER NOT NULL REFERENCES teams (id),
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        received TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('queued', 'scoring', 'scored', 'invalid')),
        round INTEGER,
        worker INTEGER,
        messages TEXT NOT NULL DEFAULT '[]',
        UNIQUE (team_id, sha256)
    );
    CREATE INDEX submissions_state ON submissions (state, id);
    CREATE TABLE selections (
        team_id INTEGER PRIMARY KEY REFERENCES teams (id),
        submission_id INTEGER NOT NULL REFERENCES submissions (id)
    );
    CREATE TABLE scores (
        submission_id INTEGER NOT NULL REFERENCES submissions (id),
        round INTEGER NOT NULL,
        part TEXT NOT NULL CHECK (part IN ('public', 'private')),
        n_images INTEGER NOT NULL,
        {_SCORE_COLUMNS},
        scored TEXT NOT NULL,
        PRIMARY KEY (submission_id, round, part)
    );
    CREATE TABLE image_scores (
        submission_id INTEGER NOT NULL REFERENCES submissions (id),
        round INTEGER NOT NULL,
        name TEXT NOT NULL REFERENCES images (name),
        {_SCORE_COLUMNS},
        PRIMARY KEY (submission_id, round, name)
    );
    """,
    # 2: how many times a scoring worker died while scoring a submission in the current round (bounded retries)
    "ALTER TABLE submissions ADD COLUMN crashes INTEGER NOT NULL DEFAULT 0",
    # 3: the model a participant named with the upload (X-Medico-Model, neutralised); NULL for one sent without
    "ALTER TABLE submissions ADD COLUMN model TEXT",
    # 4: whose fault an invalid submission is (the archive's counts against its team's limits, the server's never);
    # earlier invalid ones are the server's when their message says so
    """
    ALTER TABLE submissions ADD COLUMN fault TEXT CHECK (fault IN ('archive', 'server'));
    UPDATE submissions SET fault = CASE WHEN messages LIKE '["the server could not score this archive%'
        THEN 'server' ELSE 'archive' END WHERE state = 'invalid'
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def timestamp(moment: datetime | None = None) -> str:
    """``moment`` (default now) as the database writes times: ISO 8601 UTC with microseconds, sortable as text."""
    return (moment or datetime.now(timezone.utc)).astimezone(timezone.utc).isoformat(timespec="microseconds")


class ChallengeDatabase:
    """The challenge database file at ``path``; :meth:`create` makes a new one, opening needs an existing one and
    brings one written by an older medico up to :data:`SCHEMA_VERSION` (one transaction); a newer one is refused.

    Args:
        path: the SQLite file.
        timeout: seconds to wait for another process's write lock.
    """

    def __init__(self, path: Path, *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        if not self.path.is_file():
            raise ChallengeError(f"{self.path}: no challenge database here; create one with medico challenge init")
        with self.read() as connection:
            version = self._checked_version(connection)
        if version < SCHEMA_VERSION:
            self._migrate()

    def _checked_version(self, connection: sqlite3.Connection) -> int:
        """The file's schema version; refused when no medico challenge wrote it, or a newer medico did."""
        version = self._version(connection)
        if version == 0:
            raise ChallengeError(f"{self.path}: not a challenge database (no schema version); medico challenge init "
                                 "creates one")
        if version > SCHEMA_VERSION:
            raise ChallengeError(f"{self.path}: challenge database schema version {version}, newer than this medico "
                                 f"reads ({SCHEMA_VERSION}); upgrade medico")
        return version

    def _migrate(self) -> None:
        """Apply the migrations the file lacks, in one transaction (an older medico wrote it)."""
        with self.write() as connection:
            version = self._checked_version(connection)  # again under the lock: another process may have migrated
            _apply(connection, MIGRATIONS[version:])
            connection.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))

    @classmethod
    def create(cls, path: Path) -> ChallengeDatabase:
        """A new database at ``path`` (which must not exist), with the current schema."""
        connection = sqlite3.connect(path, isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("BEGIN IMMEDIATE")
            _apply(connection, MIGRATIONS)
            connection.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            connection.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            connection.execute("COMMIT")
        finally:
            connection.close()
        return cls(path)

    def _version(self, connection: sqlite3.Connection) -> int:
        if not connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_version'").fetchone():
            return 0
        row = connection.execute("SELECT version FROM schema_version").fetchone()
        return 0 if row is None else int(row[0])

    def _open(self, *, any_thread: bool = False) -> sqlite3.Connection:
        """A new connection in autocommit mode (transactions are explicit), rows by name, foreign keys checked;
        ``any_thread``: usable from threads other than this one (the caller serialises its use)."""
        connection = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=not any_thread
        )
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA foreign_keys = ON")
        return connection

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """SQLite's errors as one-line :class:`ChallengeError`s naming the file."""
        try:
            yield
        except sqlite3.OperationalError as error:
            raise ChallengeError(f"challenge database {self.path} cannot be used: {error}") from error
        except sqlite3.DatabaseError as error:
            raise ChallengeError(f"challenge database {self.path} is corrupted or not SQLite: {error}") from error

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        connection = None
        try:
            with self._errors():
                connection = self._open()
                yield connection
        finally:
            if connection is not None:
                connection.close()

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A connection for reading; several reads in one ``BEGIN`` see one snapshot."""
        with self._connect() as connection:
            connection.execute("BEGIN")
            try:
                yield connection
            finally:
                connection.execute("ROLLBACK")

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One transaction holding the write lock from its start; committed when the block ends, else rolled back."""
        with self._connect() as connection, immediate(connection):
            yield connection


class ChangeWatch:
    """Tells whether anything changed in a challenge database since it last looked, in microseconds, so what is
    derived from the database (the rendered standings) can be kept until it did.

    One connection, kept open, reads SQLite's ``PRAGMA data_version``, which changes whenever another connection
    (of this process or another: the scoring worker, an organiser's command) commits; the file's identity is part
    of the answer, so a database replaced by another file (a restored backup) counts as changed. Safe from any
    thread.
    """

    def __init__(self, database: ChallengeDatabase) -> None:
        self._database = database
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._file: tuple[int, int] | None = None

    def version(self) -> tuple[int, int, int]:
        """A value that differs from every earlier one once the database changed (equal values: nothing changed)."""
        with self._lock, self._database._errors():
            try:
                stat = os.stat(self._database.path)
            except OSError as error:
                raise ChallengeError(f"challenge database {self._database.path}: {error.strerror}") from error
            if self._connection is None or self._file != (stat.st_dev, stat.st_ino):
                if self._connection is not None:
                    self._connection.close()
                self._connection = self._database._open(any_thread=True)
                self._file = (stat.st_dev, stat.st_ino)
            return stat.st_dev, stat.st_ino, int(self._connection.execute("PRAGMA data_version").fetchone()[0])


def _apply(connection: sqlite3.Connection, scripts: Sequence[str]) -> None:
    """Run each migration script's statements in order, inside the caller's transaction (``executescript`` would
    commit it)."""
    for script in scripts:
        for statement in script.split(";"):
            if statement.strip():
                connection.execute(statement)
