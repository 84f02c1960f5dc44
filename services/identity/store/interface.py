"""The identity store as one interface (see :mod:`.base` for how the backends share it)."""

from __future__ import annotations

from smartcity.runtime.storage import StoreError
from smartcity.services.identity.store.principals import PrincipalTables
from smartcity.services.identity.store.records import KeyAndEventTables
from smartcity.services.identity.store.sessions import SessionTables


class IdentityStore(PrincipalTables, SessionTables, KeyAndEventTables):
    """Principals, sessions, tokens, lockouts, keys and events."""


def open_store(url: str) -> IdentityStore:
    """The backend for ``url`` (not yet opened)."""
    if url.startswith("sqlite:"):
        from smartcity.services.identity.store.sqlite import SqliteIdentityStore

        return SqliteIdentityStore(url)
    if url.startswith(("postgresql:", "postgres:")):
        from smartcity.services.identity.store.postgres import PostgresIdentityStore

        return PostgresIdentityStore(url)
    raise StoreError(
        f"unknown storage URL {url.split(':', 1)[0]!r}: use sqlite:///path/identity.db or "
        "postgresql://user@host/database"
    )
