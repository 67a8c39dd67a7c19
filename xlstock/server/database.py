"""The database under the stock service: connections, transactions and migrations.

:class:`StockStore` (``storage.py``) holds every rule and every SQL statement; it talks
to the database only through the small :class:`Database` interface below, so that a
second backend (PostgreSQL, for several service processes sharing one database) needs
only its own :class:`Database`:

- ``transaction(write=...)`` yields a connection inside one transaction. A write
  transaction serialises with every other writer of the database (SQLite: ``BEGIN
  IMMEDIATE``; a server database would lock the rows it changes); a read transaction
  sees one committed state and never waits for, nor blocks, a writer.
- SQL is written once, with ``?`` placeholders and syntax both SQLite and PostgreSQL
  accept (``INSERT ... ON CONFLICT``, ``RETURNING``, row values); a backend whose driver
  wants ``%s`` translates the placeholders.
- ``dialect`` names the backend for the few statements that differ (none yet).

:class:`SQLiteDatabase` is the default: one file in WAL mode, one connection per
thread, the schema version in ``PRAGMA user_version``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from xlstock.errors import UsageError

BUSY_TIMEOUT_MS = 30_000


class Database(Protocol):
    """What :class:`~xlstock.server.storage.StockStore` needs of a database."""

    dialect: str

    def transaction(self, *, write: bool) -> Any:
        """A context manager yielding a connection (``execute``, ``executemany``) in one
        transaction: committed on leaving, rolled back on an exception."""

    def migrate(self, steps: Sequence[Sequence[str]]) -> int:
        """Bring the schema up to ``len(steps)``; returns the schema version."""

    def schema_version(self) -> int: ...

    def close(self) -> None: ...


def migrate(conn: sqlite3.Connection, steps: Sequence[Sequence[str]]) -> int:
    """Bring the SQLite database behind ``conn`` up to ``len(steps)``, one transaction for
    all missing steps; returns the schema version. Refuses a database newer than
    ``steps``."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        if current > len(steps):
            raise UsageError(
                f"the stock database has schema version {current}, newer than this xlstock "
                f"understands ({len(steps)}); upgrade xlstock"
            )
        for number in range(current + 1, len(steps) + 1):
            for statement in steps[number - 1]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number:d}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return len(steps)


class SQLiteDatabase:
    """One SQLite file in WAL mode: writers queue behind each other (``busy_timeout``),
    readers keep reading the last committed state. Thread-safe: each thread uses its
    own connection."""

    dialect = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        try:
            conn = self.connection()
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            self.close()
            raise self.not_a_database(exc) from exc
        if str(mode).lower() != "wal":
            self.close()
            raise UsageError(
                f"the stock database {self.path} cannot use WAL mode (it is in {mode} "
                "mode); put it on a local disk"
            )

    def not_a_database(self, exc: Exception) -> UsageError:
        return UsageError(
            f"{self.path} is not a stock database xlstock can open ({exc}); "
            "pass --db with another file name"
        )

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._closed:
            raise RuntimeError("the stock database is closed")
        try:
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise UsageError(
                f"cannot open the stock database {self.path} ({exc}); check that its folder "
                "exists and is writable"
            ) from exc
        with self._lock:
            self._connections.append(conn)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = FULL")
        self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def migrate(self, steps: Sequence[Sequence[str]]) -> int:
        try:
            return migrate(self.connection(), steps)
        except sqlite3.DatabaseError as exc:
            raise self.not_a_database(exc) from exc

    def schema_version(self) -> int:
        return int(self.connection().execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        """Close every connection this database opened (in any thread)."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            try:
                conn.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()
