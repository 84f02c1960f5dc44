"""A backend's open transaction, as the domain reads and writes (:mod:`.state`,
:mod:`.writes`) use it, and the partitions its locks stand for."""

from __future__ import annotations

import abc
import zlib
from collections.abc import Sequence
from typing import Any

__all__ = [
    "CHUNK",
    "EVENTS_LOCK",
    "PARTITIONS",
    "Query",
    "Transaction",
    "keyed",
    "partition_of",
    "tuples",
]

PARTITIONS = 64
"""Partitions of the device space; a transaction locks the few its devices fall in."""
EVENTS_LOCK = PARTITIONS
"""Lock number that orders the appending of events."""
CHUNK = 2000
"""Keys per statement: well inside SQLite's 32,766 parameters and PostgreSQL's 32,767."""


def partition_of(field: str, site: str, device: str) -> int:
    return zlib.crc32(f"{field}/{site}/{device}".encode()) % PARTITIONS


Query = tuple[str, Sequence[Any]]
"""A statement and its arguments."""


class Transaction(abc.ABC):
    """One open transaction of a backend."""

    @abc.abstractmethod
    async def fetch(self, sql: str, *args: Any) -> Sequence[Sequence[Any]]: ...

    @abc.abstractmethod
    async def execute(self, sql: str, *args: Any) -> None: ...

    @abc.abstractmethod
    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    @abc.abstractmethod
    async def lock(self, number: int) -> None:
        """Hold lock ``number`` until the transaction ends (a no-op where the transaction
        already excludes every other writer)."""

    async def lock_all(self, numbers: Sequence[int]) -> None:
        """Hold the locks ``numbers`` (ascending), as :meth:`lock` each."""
        for number in numbers:
            await self.lock(number)

    async def fetch_many(self, queries: Sequence[Query]) -> list[Sequence[Sequence[Any]]]:
        """The rows of each query, in order (a backend may run them in one go)."""
        return [await self.fetch(sql, *args) for sql, args in queries]


def keyed(select: str, fingerprints: Sequence[str]) -> list[Query]:
    """``select … WHERE fingerprint IN (…)``, a chunk of keys per statement."""
    return [
        (f"{select} WHERE fingerprint IN ({_in(1, len(chunk))})", chunk)
        for start in range(0, len(fingerprints), CHUNK)
        if (chunk := fingerprints[start : start + CHUNK])
    ]


def _in(first: int, count: int) -> str:
    return ", ".join(f"${first + i}" for i in range(count))


def tuples(count: int, width: int) -> str:
    """``($1, $2, $3), ($4, $5, $6) …``: ``count`` row values of ``width`` parameters."""
    return ", ".join(
        "(" + ", ".join(f"${row * width + i + 1}" for i in range(width)) + ")"
        for row in range(count)
    )
