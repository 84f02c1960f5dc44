"""Time-series storage behind one interface: SQLite (embedded) and PostgreSQL (scale-out)."""

from smartcity.services.monitoring.store.base import StoreError, TimeSeriesStore, open_store

__all__ = ["StoreError", "TimeSeriesStore", "open_store"]
