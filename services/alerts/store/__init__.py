"""Alert storage behind one interface: SQLite (embedded) and PostgreSQL (scale-out)."""

from smartcity.runtime.storage.urls import backend_of
from smartcity.services.alerts.store.base import (
    PARTITIONS,
    AlertFilter,
    AlertStore,
    DeviceState,
    InvalidQuery,
    Snapshot,
    StoreError,
    StoreUnavailable,
    Writes,
    partition_of,
)

__all__ = [
    "PARTITIONS",
    "AlertFilter",
    "AlertStore",
    "DeviceState",
    "InvalidQuery",
    "Snapshot",
    "StoreError",
    "StoreUnavailable",
    "Writes",
    "open_store",
    "partition_of",
]


def open_store(url: str) -> AlertStore:
    """The store a URL names (not opened yet): ``sqlite:///…`` or ``postgresql://…``."""
    try:
        backend = backend_of(url, "alerts")
    except ValueError as exc:
        raise StoreError(str(exc)) from None
    if backend == "sqlite":
        from smartcity.services.alerts.store.sqlite import SqliteAlertStore

        return SqliteAlertStore(url)
    from smartcity.services.alerts.store.postgres import PostgresAlertStore

    return PostgresAlertStore(url)
