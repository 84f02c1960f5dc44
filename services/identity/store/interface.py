"""The identity store as one interface (see :mod:`.base` for how the backends share it)."""

from __future__ import annotations

from smartcity.runtime.storage import StoreError
from smartcity.runtime.storage.urls import backend_of
from smartcity.services.identity.store.principals import PrincipalTables
from smartcity.services.identity.store.records import KeyAndEventTables
from smartcity.services.identity.store.sessions import SessionTables


class IdentityStore(PrincipalTables, SessionTables, KeyAndEventTables):
    """Principals, sessions, tokens, lockouts, keys and events."""


def open_store(url: str) -> IdentityStore:
    """The backend for ``url`` (not yet opened)."""
    try:
        backend = backend_of(url, "identity")
    except ValueError as exc:
        raise StoreError(str(exc)) from None
    if backend == "sqlite":
        from smartcity.services.identity.store.sqlite import SqliteIdentityStore

        return SqliteIdentityStore(url)
    from smartcity.services.identity.store.postgres import PostgresIdentityStore

    return PostgresIdentityStore(url)
