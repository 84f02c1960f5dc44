"""The identity store: one interface, two backends chosen by URL.

``sqlite:///path/identity.db`` (the embedded default) and ``postgresql://user@host/db``
(scale-out; several replicas share it). Both run the very same statements, written once in
:mod:`.principals`, :mod:`.sessions` and :mod:`.records` with ``$n`` parameters (SQLite reads
them as ``?n``); a backend only supplies reads and transactions (:class:`Transaction`).
Failures are those of :mod:`smartcity.runtime.storage`: :class:`StoreUnavailable` when a retry
may help, :class:`StoreError` otherwise, and :class:`Conflict` when a unique name is taken.

Refresh tokens are kept as SHA-256 digests only, and every access token's id with its expiry,
so that a session's or a principal's tokens can be revoked by id.
"""

from __future__ import annotations

import abc
import contextlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

from smartcity.runtime.storage import InvalidQuery, StoreError, StoreUnavailable
from smartcity.runtime.storage.base import Store
from smartcity.runtime.tokens import PrincipalKind, RoleBinding
from smartcity.services.identity.model import (
    AssuranceLevel,
    AuditEvent,
    EventType,
    IssuedToken,
    Principal,
    PrincipalState,
)

__all__ = [
    "Conflict",
    "InvalidQuery",
    "StoreBase",
    "StoreError",
    "StoreUnavailable",
    "Transaction",
    "check_page_size",
]

MAX_PAGE_SIZE = 1000


class Conflict(StoreError):  # noqa: N818 - a state, like runtime.errors.AlreadyExists
    """A unique value (username, personal id) belongs to another principal already."""


class Transaction(abc.ABC):
    @abc.abstractmethod
    async def fetch(self, sql: str, *args: Any) -> Sequence[Sequence[Any]]: ...

    @abc.abstractmethod
    async def execute(self, sql: str, *args: Any) -> int:
        """Run a statement; the number of rows it changed."""


PRINCIPAL_COLUMNS = (
    "p.id, p.kind, p.username, p.display_name, p.email, p.personal_id, p.assurance, p.state, "
    "p.labels, p.created, p.updated, p.totp_secret"
)
CREDENTIAL_COLUMNS = (
    "password_hash, totp_secret, totp_pending, totp_pending_expires, totp_last_step"
)
EVENT_COLUMNS = (
    "seq, id, time, type, principal_id, principal_kind, principal_name, actor_id, actor_kind, "
    "actor_name, role, token_id, token_expires, reason, source, jwks"
)
TOKEN_COLUMNS = "jti, principal_id, session_id, issued, expires, revoked"
UPDATABLE = {"display_name", "email", "labels", "assurance"}


def kind_of(value: str) -> PrincipalKind | None:
    return PrincipalKind(value) if value else None


def principal_of(row: Sequence[Any], roles: Iterable[RoleBinding]) -> Principal:
    return Principal(
        id=row[0],
        kind=PrincipalKind(row[1]),
        username=row[2],
        display_name=row[3],
        email=row[4],
        personal_id=row[5] or "",
        assurance=AssuranceLevel(row[6]),
        roles=frozenset(roles),
        state=PrincipalState(row[7]),
        labels=json.loads(row[8]),
        created=row[9],
        updated=row[10],
        totp_enabled=row[11] is not None,
    )


def event_of(row: Sequence[Any]) -> AuditEvent:
    return AuditEvent(
        id=row[1],
        time=row[2],
        type=EventType(row[3]),
        principal_id=row[4],
        principal_kind=kind_of(row[5]),
        principal_name=row[6],
        actor_id=row[7],
        actor_kind=kind_of(row[8]),
        actor_name=row[9],
        role=RoleBinding.parse(row[10]) if row[10] else None,
        token_id=row[11],
        token_expires=row[12],
        reason=row[13],
        source=row[14],
        jwks=row[15],
    )


def token_of(row: Sequence[Any]) -> IssuedToken:
    return IssuedToken(*row)


def in_list(first: int, count: int) -> str:
    return "(" + ", ".join(f"${n}" for n in range(first, first + count)) + ")"


def check_page_size(page_size: int) -> int:
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidQuery(f"page_size must be between 1 and {MAX_PAGE_SIZE}, not {page_size}")
    return page_size


class StoreBase(Store):
    """What a backend supplies: its lifecycle, reads and transactions."""

    @abc.abstractmethod
    async def _query(self, sql: str, *args: Any) -> Sequence[Sequence[Any]]:
        """Rows of one read-only statement."""

    @abc.abstractmethod
    def _transaction(self) -> contextlib.AbstractAsyncContextManager[Transaction]: ...
