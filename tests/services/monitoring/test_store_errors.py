"""How the store's failures are told apart: a wrong request (:class:`InvalidQuery`), a
database that cannot answer now (:class:`StoreUnavailable`), data the database refuses
(any other :class:`StoreError`). Each backend's classification on its own, then for real:
a SQLite file locked by another process past the busy timeout, PostgreSQL connections
terminated under the store.
"""

from __future__ import annotations

import asyncio
import errno
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
from store_helpers import T0, make_batches, one_batch

from smartcity.services.monitoring.model import MINUTE, Selector
from smartcity.services.monitoring.store import (
    InvalidQuery,
    StoreError,
    StoreUnavailable,
    TimeSeriesStore,
    open_store,
    postgres,
    sqlite,
)
from smartcity.services.monitoring.store.postgres import PostgresStore, statements
from smartcity.services.monitoring.store.sqlite import SqliteStore, sqlite_path

# -- the classifications --------------------------------------------------------------------


def _sqlite_error(kind: type[sqlite3.Error], code: int) -> sqlite3.Error:
    error = kind("as SQLite says it")
    error.sqlite_errorcode = code  # type: ignore[attr-defined]
    return error


def test_sqlite_errors_are_told_apart_by_their_result_code() -> None:
    io_error_write, busy_snapshot = 778, 517  # extended codes count by their primary code
    for code in (
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_IOERR,
        io_error_write,
        busy_snapshot,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_NOMEM,
    ):
        assert sqlite.unavailable(_sqlite_error(sqlite3.OperationalError, code)), code
    constraint_primary_key = 1555
    for code in (
        sqlite3.SQLITE_CONSTRAINT,
        constraint_primary_key,
        sqlite3.SQLITE_ERROR,
        sqlite3.SQLITE_TOOBIG,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_READONLY,
    ):
        assert not sqlite.unavailable(_sqlite_error(sqlite3.IntegrityError, code)), code
    # Raised by the sqlite3 module itself, without a code.
    assert not sqlite.unavailable(sqlite3.ProgrammingError("Cannot operate on a closed database"))
    assert sqlite.unavailable(OSError(errno.ENOSPC, "No space left on device"))
    assert not sqlite.unavailable(PermissionError(errno.EACCES, "Permission denied"))


def test_postgres_errors_are_told_apart_by_sqlstate_class() -> None:
    exceptions = asyncpg.exceptions
    for kind in (
        exceptions.ConnectionFailureError,  # 08006
        exceptions.SerializationError,  # 40001
        exceptions.DeadlockDetectedError,  # 40P01
        exceptions.DiskFullError,  # 53100
        exceptions.OutOfMemoryError,  # 53200
        exceptions.TooManyConnectionsError,  # 53300
        exceptions.QueryCanceledError,  # 57014, statement timeout
        exceptions.AdminShutdownError,  # 57P01
        exceptions.CannotConnectNowError,  # 57P03, starting up
        exceptions.PostgresIOError,  # 58030
    ):
        assert postgres.unavailable(kind("as the server says it")), kind
    for kind in (
        exceptions.UniqueViolationError,
        exceptions.NotNullViolationError,
        exceptions.NumericValueOutOfRangeError,
        exceptions.UndefinedTableError,
        exceptions.InvalidPasswordError,
        exceptions.InsufficientPrivilegeError,
    ):
        assert not postgres.unavailable(kind("as the server says it")), kind
    for error in (
        ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed"),
        ConnectionResetError(),
        TimeoutError(),
        exceptions.ConnectionDoesNotExistError("connection was closed in the middle"),
        exceptions.InternalClientError("another operation (2) is in progress"),
    ):
        assert postgres.unavailable(error), error
    assert not postgres.unavailable(exceptions.DataError("value out of int64 range"))
    assert not postgres.unavailable(ValueError("invalid DSN"))


# -- for real -------------------------------------------------------------------------------


async def test_bad_requests_are_invalid_on_both_backends(store: TimeSeriesStore) -> None:
    with pytest.raises(InvalidQuery, match="invalid page token"):
        await store.devices(page_token="bm90LW91cnM")
    with pytest.raises(InvalidQuery, match="page_size"):
        await store.latest(Selector(), page_size=100_000)


async def test_a_value_the_database_cannot_hold_is_refused(store: TimeSeriesStore) -> None:
    """Refused data is neither a wrong request nor an outage: the same write fails again,
    and the store keeps working for other data."""
    huge = one_batch(
        "water_supply", "cau-do", "station-1", "cau-do/station-1/x", T0, ("ph", 7.0, 2**64)
    )
    for _ in range(2):
        with pytest.raises(StoreError) as refused:
            await store.write([huge])
        assert not isinstance(refused.value, (StoreUnavailable, InvalidQuery))
    fine = one_batch(
        "water_supply", "cau-do", "station-1", "cau-do/station-1/1", T0, ("ph", 7.0, 1)
    )
    assert (await store.write([fine])).batches_written == 1
    assert await store.has_batches([("water_supply", huge.batch_id)]) == set()


async def test_ping_answers_while_the_store_is_open(store_url: str) -> None:
    store = open_store(store_url)
    with pytest.raises(StoreUnavailable, match="is not open"):
        await store.ping()
    await store.open()
    await store.ping()
    await store.close()
    with pytest.raises(StoreUnavailable, match="is not open"):
        await store.ping()


async def test_a_server_that_does_not_answer_is_unavailable() -> None:
    store = PostgresStore("postgresql://monitoring:s3cret-pw@127.0.0.1:1/city")
    with pytest.raises(StoreUnavailable, match="cannot connect to") as caught:
        await store.open()
    assert "s3cret" not in str(caught.value)


async def test_a_sqlite_file_locked_past_the_busy_timeout_is_unavailable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'monitoring.db'}"
    batches = make_batches(end=T0 + 10 * MINUTE)
    store = SqliteStore(url, busy_timeout=0.2)
    await store.open()
    try:
        await store.write(batches[:2])
        other = sqlite3.connect(sqlite_path(url)[0], isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process's write transaction
        try:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="database is locked"):
                await store.write(batches[2:4])
            assert 0.15 < time.monotonic() - started < 10
            # Readers are not locked out (WAL): the store still answers.
            await store.ping()
            assert (await store.latest(Selector())).items
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert (await store.write(batches[2:4])).batches_written == 2
    finally:
        await store.close()


@pytest.mark.postgres
async def test_postgres_connections_terminated_under_the_store(postgres_url: str) -> None:
    """A statement whose connection an administrator terminates fails as unavailable; the
    pool connects again, so the next call works."""
    name = f"store-under-test-{uuid.uuid4().hex[:12]}"
    store = open_store(f"{postgres_url}&application_name={name}")
    await store.open()
    admin = await asyncpg.connect(postgres_url)
    batches = make_batches(end=T0 + 10 * MINUTE)
    try:
        await store.write(batches[:2])
        calls: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("batches", lambda: store.write(batches[2:4])),
            ("series", lambda: store.latest(Selector())),
        ]
        for table, call in calls:
            async with admin.transaction():
                # Holds the store's statement on a lock, so that it is cut mid-way.
                await admin.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
                pending = asyncio.ensure_future(call())
                await _waiting_on_a_lock(admin, name)
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = $1",
                    name,
                )
                with pytest.raises(StoreUnavailable):
                    await pending
        assert (await store.write(batches[2:4])).batches_written == 2
        assert (await store.latest(Selector())).items
        await store.ping()
    finally:
        await admin.close()
        await store.close()


@pytest.mark.postgres
async def test_a_connection_without_its_staging_table_makes_it_again(postgres_url: str) -> None:
    """Writes stage their latest values and roll-ups in a temporary table of their
    connection, made on its first write; a connection whose table is gone (a new session
    under a process id seen before) makes it again, and the write goes through."""
    store = open_store(postgres_url)
    assert isinstance(store, PostgresStore)
    await store.open()
    batches = make_batches(end=T0 + 10 * MINUTE)
    try:
        await store.write(batches[:2])
        async with store._connection() as conn:  # the pool's one connection, used in turn
            await conn.execute(f"DROP TABLE {statements.STAGE}")
        assert (await store.write(batches[2:4])).batches_written == 2
        assert len((await store.latest(Selector())).items) > 0
    finally:
        await store.close()


async def _waiting_on_a_lock(admin: asyncpg.Connection, application: str) -> None:
    """Until a connection of ``application`` waits on a lock. pg_stat_activity is read once
    per transaction unless its snapshot is cleared, and ``admin`` is in one."""
    deadline = time.monotonic() + 10
    while True:
        await admin.execute("SELECT pg_stat_clear_snapshot()")
        if await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 "
            "AND wait_event_type = 'Lock'",
            application,
        ):
            return
        assert time.monotonic() < deadline, "the store's statement never waited on the lock"
        await asyncio.sleep(0.02)
