"""One SQLite write transaction, as the leaderboard store and a hosted challenge's database both take them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["immediate"]


@contextmanager
def immediate(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A transaction on ``connection`` (autocommit mode) holding the write lock from its start, so that a
    read-check-write inside it cannot race another process; committed when the block ends, else rolled back."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
