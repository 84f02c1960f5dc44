"""Identity events: kept in the store for the audit, and published on the bus.

Every event is stored first and published after (an outbox): a request never fails because
the bus is down, and nothing is lost when it is. :meth:`Recorder.flush`, run in the
background, publishes what is still pending, oldest first; the event id is the JetStream
message id, so an event published twice (a lost acknowledgement, two replicas flushing) is
stored once in the IDENTITY stream.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from smartcity.runtime.logs import get_logger
from smartcity.runtime.tokens import Claims
from smartcity.services.identity.model import AuditEvent, EventType, Principal
from smartcity.services.identity.store import IdentityStore

_log = get_logger(__name__)

Publisher = Callable[[Sequence[AuditEvent]], Awaitable[None]]
"""Publishes events in order, or raises."""


class Recorder:
    def __init__(
        self,
        store: IdentityStore,
        publisher: Publisher | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self.publisher = publisher
        self._clock = clock

    def event(
        self,
        type_: EventType,
        *,
        principal: Principal | None = None,
        actor: Claims | None = None,
        **fields: Any,
    ) -> AuditEvent:
        """A new event; the principal and the actor as they are now. An actor acting on
        itself is left out, as identity.proto asks."""
        if principal is not None:
            fields.update(
                principal_id=principal.id,
                principal_kind=principal.kind,
                principal_name=principal.display_name or principal.username,
            )
        if actor is not None and (principal is None or actor.sub != principal.id):
            fields.update(actor_id=actor.sub, actor_kind=actor.kind)
        fields.setdefault("time", self._clock())
        return AuditEvent(id=uuid.uuid4().hex, type=type_, **fields)

    async def record(self, *events: AuditEvent) -> None:
        await self._store.add_events(events)
        await self._publish(events)

    async def flush(self, limit: int = 100) -> int:
        """Publish events still pending; how many were published."""
        pending = await self._store.unpublished(limit)
        return await self._publish(pending)

    async def _publish(self, events: Sequence[AuditEvent]) -> int:
        if self.publisher is None or not events:
            return 0
        try:
            await self.publisher(events)
        except Exception as exc:  # every bus failure: the events wait for the next flush
            _log.warning(
                "identity events not published yet; kept to publish later",
                events=len(events),
                error=repr(exc),
            )
            return 0
        await self._store.mark_published([event.id for event in events])
        return len(events)
