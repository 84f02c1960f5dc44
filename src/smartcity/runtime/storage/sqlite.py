"""SQLite, the embedded backend: one file in WAL mode, shared by a service and its readers.

:class:`SqliteDatabase` owns the threads: every write runs in one dedicated writer thread that
owns the only writing connection, so writes are serialised without locks and the event loop
never waits on disk; reads run in a small pool of reader threads, each with its own
connection (WAL lets them read while the writer writes).

A write whose caller is cancelled still runs to its end in the writer thread (a thread cannot
be interrupted): it commits or rolls back whole.

Durability: ``synchronous=NORMAL`` (default) survives a crash of the process; add
``?synchronous=FULL`` to the URL to survive power loss too, at the cost of an fsync per
write.

Errors: :func:`unavailable` tells what a retry may cure (a lock held past the busy timeout,
a full or failing disk) from what it cannot.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from smartcity.runtime.storage.errors import StoreError, StoreUnavailable, error_chain, mask_url
from smartcity.runtime.storage.migrations import Migration, newer_schema_error

T = TypeVar("T")

MIN_SQLITE = (3, 37, 0)
"""STRICT tables; upserts, row values, window functions and JSON are older."""
BUSY_TIMEOUT = 30.0
"""Seconds a statement waits for another connection's lock before failing as busy."""


def sqlite_path(url: str) -> tuple[Path, str]:
    """The file and the ``synchronous`` level named by a ``sqlite:`` URL.

    ``sqlite:///relative/file.db`` and ``sqlite:////absolute/file.db``, as in SQLAlchemy. An
    in-memory database is refused: readers and other processes (the CLI, a second replica)
    must see the same data, and nothing would be durable.
    """
    form = "use sqlite:///relative/path.db or sqlite:////absolute/path.db"
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        raise StoreError(f"{url!r} is not a SQLite URL: {form}")
    if parts.netloc:
        raise StoreError(f"{url!r} names a host; a SQLite file is local: {form}")
    if not url.startswith("sqlite:///"):
        raise StoreError(f"{url!r} is not a SQLite URL: {form}")
    path = parts.path[1:]
    if not path or path.endswith("/"):
        raise StoreError(f"{url!r} names no file: {form}")
    if path == ":memory:" or "mode=memory" in parts.query:
        raise StoreError(
            f"{url!r}: an in-memory SQLite database is not supported; the service, its readers "
            f"and the CLI share one file, and it must outlive the process: {form}"
        )
    synchronous = "NORMAL"
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "synchronous" and value.upper() in ("NORMAL", "FULL"):
            synchronous = value.upper()
        else:
            raise StoreError(
                f"{url!r}: unknown option {name}={value!r}; the only option is "
                "synchronous=NORMAL|FULL"
            )
    return Path(path), synchronous


def statements(script: str) -> Iterator[str]:
    """The statements of an SQL script, split where SQLite itself says one is complete
    (``sqlite3.complete_statement`` knows about strings, comments and trigger bodies)."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            yield pending
            pending = ""
    if pending.strip(" \t\r\n;"):
        raise StoreError(f"incomplete SQL statement at the end of a migration: {pending[:80]!r}")


_UNAVAILABLE_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,  # another connection held the lock past the busy timeout
        sqlite3.SQLITE_LOCKED,  # a conflict inside this process (shared cache)
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_IOERR,  # "disk I/O error", whichever operation failed
        sqlite3.SQLITE_FULL,  # the disk (or quota) is full
        sqlite3.SQLITE_CANTOPEN,  # the file cannot be opened now (a missing mount, no fds)
        sqlite3.SQLITE_PROTOCOL,  # the WAL locking race, lost more often than SQLite retries
    }
)
_UNAVAILABLE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.ENOMEM, errno.EMFILE, errno.ENFILE}
)


def unavailable(error: BaseException) -> bool:
    """Whether ``error`` means the database cannot do it now but may later
    (:class:`~.errors.StoreUnavailable`), rather than that it refuses this data or this
    setup. SQLite errors are told by their primary result code (the low byte of
    ``sqlite_errorcode``, so every extended I/O or busy code counts), operating system
    errors (creating the folder, say) by errno: a full disk is transient, a missing
    permission is not. Errors the sqlite3 module raises itself carry no code: not these.
    The whole :func:`~.errors.error_chain` counts (a failed rollback after a disk error)."""
    for link in error_chain(error):
        if isinstance(link, sqlite3.Error):
            code = getattr(link, "sqlite_errorcode", None)
            if code is not None and code & 0xFF in _UNAVAILABLE_CODES:
                return True
        elif isinstance(link, OSError) and link.errno in _UNAVAILABLE_ERRNOS:
            return True
    return False


def failure(where: str, error: BaseException) -> StoreError:
    kind = StoreUnavailable if unavailable(error) else StoreError
    return kind(f"{where}: {error}")


def journal_mode_wal(db: sqlite3.Connection, timeout: float) -> str:
    """Switches a database to WAL, or finds it there. On a new file, two processes opening
    it at once may both try; SQLite answers the loser "busy" at once instead of waiting (the
    busy timeout does not apply to this switch), so it asks again until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return str(db.execute("PRAGMA journal_mode=WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@contextlib.contextmanager
def snapshot(db: sqlite3.Connection) -> Iterator[None]:
    """A read transaction: every statement inside sees the same committed state."""
    db.execute("BEGIN")
    try:
        yield
    finally:
        db.execute("COMMIT")


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """A write transaction that takes the write lock up front (``BEGIN IMMEDIATE``), so two
    processes on one file serialise instead of failing half-way."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def migrate(db: sqlite3.Connection, migrations: Sequence[Migration], where: str) -> None:
    """Bring the schema of ``db`` to the newest of ``migrations``, in one transaction."""
    with transaction(db):
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
            "name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT"
        )
        current = db.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
        version = int(current.fetchone()[0])
        if version > len(migrations):
            raise newer_schema_error(version, len(migrations), where)
        for migration in migrations[version:]:
            for statement in statements(migration.sql):
                db.execute(statement)
            db.execute(
                "INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, time.time_ns() // 1000),
            )


class SqliteDatabase:
    """One SQLite file with a writer thread and reader threads (see the module docstring).

    ``name`` names the threads and the messages (``monitoring``, ``identity``);
    ``busy_timeout`` is how long (seconds) a statement waits for another process's lock
    before it fails as :class:`~.errors.StoreUnavailable`.
    """

    def __init__(
        self, url: str, *, name: str, readers: int = 2, busy_timeout: float = BUSY_TIMEOUT
    ) -> None:
        self.url = mask_url(url)
        self.path, self.synchronous = sqlite_path(url)
        self.name = name
        self.busy_timeout = busy_timeout
        self._reader_count = readers
        self._db: sqlite3.Connection | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._reader_connections: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()

    @property
    def db(self) -> sqlite3.Connection:
        """The writing connection; only for functions running in the writer thread."""
        assert self._db is not None, "the database is not open"
        return self._db

    async def open(
        self, migrations: Sequence[Migration], prepare: Callable[[sqlite3.Connection], None]
    ) -> None:
        """Open the file in WAL mode, run ``prepare`` (pragmas of the service) and the
        migrations in the writer thread."""
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise StoreError(
                f"SQLite {sqlite3.sqlite_version} is too old for the {self.name} store; "
                f"it needs {'.'.join(map(str, MIN_SQLITE))} or newer"
            )
        if self._writer is not None:
            raise StoreError(f"{self.url} is already open")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix=f"{self.name}-sqlite-writer")
        self._readers = ThreadPoolExecutor(
            self._reader_count, thread_name_prefix=f"{self.name}-sqlite-reader"
        )
        try:
            await self.in_writer(self._open, migrations, prepare)
        except BaseException:
            await self.close()
            raise

    def _open(
        self, migrations: Sequence[Migration], prepare: Callable[[sqlite3.Connection], None]
    ) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = self.connect()
        self._db = db
        mode = journal_mode_wal(db, self.busy_timeout)
        if str(mode).lower() != "wal":
            raise StoreError(
                f"{self.url}: SQLite cannot use WAL mode for this file (journal mode stays "
                f"{mode!r}); put the database on a local file system"
            )
        db.execute(f"PRAGMA synchronous={self.synchronous}")
        prepare(db)
        migrate(db, migrations, self.url)

    def connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            self.path,
            isolation_level=None,
            check_same_thread=False,
            timeout=self.busy_timeout,
            cached_statements=256,
        )
        db.execute(f"PRAGMA busy_timeout={round(self.busy_timeout * 1000)}")
        return db

    async def close(self) -> None:
        writer, readers = self._writer, self._readers
        self._writer = self._readers = None
        loop = asyncio.get_running_loop()
        for pool in (readers, writer):
            if pool is not None:
                await loop.run_in_executor(None, partial(pool.shutdown, wait=True))
        with self._reader_lock:
            connections, self._reader_connections = self._reader_connections, []
        for db in connections:
            db.close()
        if self._db is not None:
            self._db.close()
            self._db = None

    async def in_writer(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in the writer thread, where :attr:`db` may be used."""
        if self._writer is None:
            raise StoreUnavailable(f"{self.url} is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._writer, function, *args)
        except (sqlite3.Error, OSError, OverflowError) as exc:
            # OverflowError: an integer SQLite cannot hold (past 64 bits), refused in binding.
            raise failure(self.url, exc) from exc

    async def read(self, function: Callable[..., T], *args: Any) -> T:
        """``function(connection, *args)`` in a reader thread, on its read-only connection."""
        if self._readers is None:
            raise StoreUnavailable(f"{self.url} is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._readers, self._with_reader, function, args
            )
        except (sqlite3.Error, OverflowError) as exc:
            raise failure(self.url, exc) from exc

    def _with_reader(self, function: Callable[..., T], args: Sequence[Any]) -> T:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self.connect()
            db.execute("PRAGMA query_only=ON")
            self._local.db = db
            with self._reader_lock:
                self._reader_connections.append(db)
        return function(db, *args)

    async def schema_version(self) -> int:
        return await self.read(
            lambda db: int(
                db.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]
            )
        )

    async def ping(self) -> None:
        # Reads the file's header: a reader that answers and a file that is there.
        await self.read(lambda db: db.execute("PRAGMA schema_version").fetchone())
