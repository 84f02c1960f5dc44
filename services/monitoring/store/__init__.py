"""Time-series storage behind one interface: SQLite (embedded) and PostgreSQL (scale-out)."""

from smartcity.services.monitoring.store.base import (
    InvalidQuery,
    StoreError,
    StoreUnavailable,
    TimeSeriesStore,
    open_store,
)

__all__ = ["InvalidQuery", "StoreError", "StoreUnavailable", "TimeSeriesStore", "open_store"]
