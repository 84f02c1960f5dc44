"""Records storage behind one interface: SQLite (embedded) and PostgreSQL (scale-out)."""

from smartcity.services.records.store.base import (
    InvalidQuery,
    RecordStore,
    StoreError,
    StoreUnavailable,
    open_store,
)

__all__ = ["InvalidQuery", "RecordStore", "StoreError", "StoreUnavailable", "open_store"]
