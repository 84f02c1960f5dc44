"""Identity storage behind one interface: SQLite (embedded) and PostgreSQL (scale-out)."""

from smartcity.services.identity.store.base import (
    Conflict,
    InvalidQuery,
    StoreError,
    StoreUnavailable,
)
from smartcity.services.identity.store.interface import IdentityStore, open_store

__all__ = [
    "Conflict",
    "IdentityStore",
    "InvalidQuery",
    "StoreError",
    "StoreUnavailable",
    "open_store",
]
