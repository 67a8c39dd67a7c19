"""The database under the stock service: connections, transactions and migrations.

:class:`StockStore` (``storage.py``) holds every rule and every SQL statement; it talks
to the database only through the small :class:`Database` interface below, so that a
second backend (PostgreSQL, for several service processes sharing one database:
:mod:`xlstock.server.postgres`) needs only its own :class:`Database`:

- ``read()`` yields a connection inside a read transaction: it sees one committed state
  and never waits for, nor blocks, a writer.
- ``write(job)`` runs ``job(connection)`` as one write transaction and returns what it
  returns: all of it is applied, or (when it raises) none of it. Writes serialise with
  every other writer of the database (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: with
  every other write of the same shop, whose row it locks first); ``write`` returns only
  once the job is durable.
- SQL is written once, with ``?`` placeholders and syntax both SQLite and PostgreSQL
  accept (row values, ``IN (...)`` lists of at most 500); a backend whose driver wants
  ``%s`` translates the placeholders.
- ``dialect`` names the backend for the few statements that differ; ``lock_clause``
  is what a write appends to the ``SELECT`` of the row it locks first (the shop's), so
  that writes of one shop run one after the other on a database several processes
  share (SQLite: nothing, its writes already run one at a time; PostgreSQL:
  ``FOR NO KEY UPDATE``).

:func:`open_database` opens a file name as :class:`SQLiteDatabase` and a
``postgresql://`` URL as :class:`~xlstock.server.postgres.PostgresDatabase`.

:class:`SQLiteDatabase` is the default: one file in WAL mode, the schema version in
``PRAGMA user_version``. Reads use one connection per thread. Writes go to one writer
thread that commits them in groups: every job waiting when a commit starts joins the
next one, each inside its own savepoint (a job that fails is rolled back alone), and
all of them are answered after that single commit. A commit waits for the disk
(``synchronous = FULL``: nothing acknowledged is lost to a power cut), so committing
one job at a time would cap the service at one order per disk flush; grouped, the
flush is shared by every order that arrived meanwhile. Several processes on one file
(``xlstock serve --workers``) each have their writer; they take turns on a lock file
beside the database (``NAME-writers``) before SQLite's own write lock, so that a
waiting process is woken the moment the write before it ends (see ``_writing``).
"""

from __future__ import annotations

import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from xlstock.errors import UsageError
from xlstock.server.groups import STOP, next_group

try:
    import fcntl
except ImportError:  # Windows: one service process, SQLite's own wait is enough
    fcntl = None  # type: ignore[assignment]

BUSY_TIMEOUT_MS = 30_000
GROUP_MAX = 100
"""Most jobs committed together."""

T = TypeVar("T")

IN_LIST_MAX = 500
"""The most values one ``IN (...)`` list of the service's SQL holds."""


def in_lists(values: Sequence[T], size: int = IN_LIST_MAX) -> Iterator[Sequence[T]]:
    """``values`` cut into ``IN (...)`` lists every backend accepts."""
    for start in range(0, len(values), size):
        yield values[start:start + size]


class Database(Protocol):
    """What :class:`~xlstock.server.storage.StockStore` needs of a database."""

    dialect: str
    lock_clause: str
    description: str
    """What the database is, for messages and logs (a file name, or a URL without its
    password)."""

    def read(self) -> Any:
        """A context manager yielding a connection (``execute``) in a read transaction."""

    def write(self, job: Callable[[Any], T], *, lock_key: str | None = None) -> T:
        """Run ``job(connection)`` (``execute``, ``executemany``) as one write transaction,
        durable when this returns; nothing of it is applied if it raises. ``lock_key``
        names the row the job locks first (a shop's URL), if any: a backend that commits
        jobs together runs them in that order."""

    def transaction(self) -> Any:
        """A context manager yielding a connection in a write transaction of the calling
        thread's own, outside the group commit: for rare writes whose code reads and
        writes in turn."""

    def migrate(self, steps: Sequence[Sequence[str]]) -> int:
        """Bring the schema up to ``len(steps)``; returns the schema version."""

    def schema_version(self) -> int: ...

    def close(self) -> None: ...


SQLITE_FULL = 13
"""SQLite's result code for "database or disk is full"."""
POSTGRES_DISK_FULL = "53100"


def storage_is_full(error: BaseException | None) -> bool:
    """Whether ``error``, or an error that caused it, is the database refusing a write
    for want of room: SQLite's ``SQLITE_FULL`` ("database or disk is full") or
    PostgreSQL's ``disk_full`` (SQLSTATE 53100). Reads still work then."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, sqlite3.OperationalError) and (
            (getattr(error, "sqlite_errorcode", 0) or 0) & 0xFF == SQLITE_FULL
            or "database or disk is full" in str(error)
        ):
            return True
        if getattr(error, "sqlstate", None) == POSTGRES_DISK_FULL:
            return True
        error = error.__cause__ or error.__context__
    return False


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


class _Job:
    """One write waiting for the writer thread, and then its result."""

    def __init__(self, work: Callable[[sqlite3.Connection], Any]) -> None:
        self.work = work
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()


class SQLiteDatabase:
    """One SQLite file in WAL mode (see the module's docstring). Thread-safe."""

    dialect = "sqlite"
    lock_clause = ""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + "-writers")
        self.description = str(self.path)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._jobs: queue.Queue[Any] = queue.Queue()
        self._writer: threading.Thread | None = None
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
    def read(self) -> Iterator[sqlite3.Connection]:
        conn = self.connection()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        if threading.current_thread() is self._writer:
            raise RuntimeError("the writer thread cannot open a transaction of its own")
        conn = self.connection()
        with self._writing():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Wait for this file's writers in every process (``xlstock serve --workers``)
        in the kernel, on the lock file beside the database (``NAME-writers``): woken as
        soon as the write before ends. SQLite's own wait (its busy timeout) polls, at
        up to 100 ms between tries, and under load a process that polls finds the lock
        free too rarely: its orders waited seconds. Without ``fcntl`` (Windows, one
        process) or the file, SQLite's wait alone."""
        if fcntl is None or getattr(self._local, "writing", False):
            yield  # a transaction inside this thread's own fails as SQLite says
            return
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._local.writing = True
            yield
        finally:
            self._local.writing = False
            os.close(fd)  # releases the lock

    def write(self, job: Callable[[sqlite3.Connection], T], *,
              lock_key: str | None = None) -> T:
        if threading.current_thread() is self._writer:
            raise RuntimeError("a write job cannot wait for another write job")
        waiting = _Job(job)
        with self._lock:
            if self._closed:
                raise RuntimeError("the stock database is closed")
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_jobs, name=f"xlstock-writer-{self.path.name}",
                    daemon=True,
                )
                self._writer.start()
            self._jobs.put(waiting)
        waiting.done.wait()
        if waiting.error is not None:
            raise waiting.error
        return waiting.result

    def _write_jobs(self) -> None:
        """The writer thread: take every job waiting, run each in its own savepoint of
        one transaction, commit once, answer them all."""
        conn = self.connection()
        stopping = False
        while not stopping:
            group, stopping = next_group(self._jobs, GROUP_MAX)
            if group:
                self._commit_group(conn, group)

    def _commit_group(self, conn: sqlite3.Connection, group: list[_Job]) -> None:
        try:
            with self._writing():
                conn.execute("BEGIN IMMEDIATE")
                for job in group:
                    conn.execute("SAVEPOINT job")
                    try:
                        job.result = job.work(conn)
                    except BaseException as exc:  # the caller gets it; its changes undone
                        job.error = exc
                        conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            for job in group:
                if job.error is None:
                    job.error = exc
                    job.result = None
        finally:
            for job in group:
                job.done.set()

    def migrate(self, steps: Sequence[Sequence[str]]) -> int:
        """As :func:`migrate`; a database up to date already is only read, so that a
        worker starting beside busy ones never waits for the write lock."""
        try:
            conn = self.connection()
            if conn.execute("PRAGMA user_version").fetchone()[0] == len(steps):
                return len(steps)
            with self._writing():
                return migrate(conn, steps)
        except sqlite3.DatabaseError as exc:
            raise self.not_a_database(exc) from exc

    def schema_version(self) -> int:
        return int(self.connection().execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        """Finish the writes under way, then close every connection (in any thread)."""
        with self._lock:
            self._closed = True
            writer, self._writer = self._writer, None
            if writer is not None:
                self._jobs.put(STOP)
        if writer is not None and writer is not threading.current_thread():
            writer.join(30)
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            try:
                conn.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()


def open_database(target: str | Path) -> Database:
    """The database ``target`` names: a ``postgresql://`` (or ``postgres://``) URL opens
    PostgreSQL (the ``[postgres]`` extra), anything else is an SQLite file."""
    from xlstock.server.postgres import PostgresDatabase, is_postgres_url

    if is_postgres_url(target):
        return PostgresDatabase(str(target))
    return SQLiteDatabase(target)
