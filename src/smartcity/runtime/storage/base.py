"""What every service's store is, whatever else it stores: a lifecycle and a health probe."""

from __future__ import annotations

import abc

__all__ = ["Store"]


class Store(abc.ABC):
    """The part of a service's storage interface that the runtime and operators rely on."""

    url: str
    """Where the data is, with any password masked."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and bring the schema to the newest version (versioned migrations)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def schema_version(self) -> int: ...

    @abc.abstractmethod
    async def ping(self) -> None:
        """The cheapest round trip that proves the store answers (for health checks);
        :class:`~smartcity.runtime.storage.StoreUnavailable` when it does not."""
