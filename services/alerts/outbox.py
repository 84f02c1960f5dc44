"""What leaves the service after a commit: alert events to JetStream, notifications to the
receivers' dispatcher.

Both are written by the transaction that makes them (the events table, the notifications
table) and handed on from there, so a crash between the commit and the hand-over loses
nothing: the next run (of this replica or another) hands them on. Events are published with
``Nats-Msg-Id`` set to the event id, so a second publish of one event (after a crash, or by
two replicas at once) is stored once by the ALERTS stream. A notification is marked once the
dispatcher has taken it; a crash in between hands it over again (delivery is at least once,
as the dispatcher's own is).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from smartcity.runtime.bus import Bus
from smartcity.runtime.errors import InvalidArgument
from smartcity.runtime.logs import get_logger
from smartcity.runtime.subjects import alert_subject
from smartcity.services.alerts.model import Event
from smartcity.services.alerts.store import AlertStore, StoreError

__all__ = ["Outbox", "Submitter"]

_log = get_logger(__name__)

BATCH = 500
POLL_SECONDS = 1.0
"""How often the outbox looks for work another replica left, without a wake-up."""


class Submitter(Protocol):
    """The receivers' dispatcher, as the outbox uses it."""

    def submit(self, notification: Any) -> Awaitable[Any] | Any: ...


class Outbox:
    def __init__(
        self,
        store: AlertStore,
        bus: Bus | None,
        *,
        encode: Callable[[Event], bytes],
        submitter: Submitter | None = None,
        build: Callable[[dict[str, Any]], Any] = lambda data: data,
    ) -> None:
        self.store = store
        self.bus = bus
        self.encode = encode
        self.submitter = submitter
        self.build = build
        self.published = 0
        self.submitted = 0
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
            self._wake.clear()
            try:
                await self.drain()
            except StoreError as exc:
                _log.warning("outbox waits for storage", error=str(exc))

    async def drain(self) -> None:
        """Hand on everything waiting now."""
        while await self._publish() or await self._submit():
            pass

    async def _publish(self) -> int:
        if self.bus is None:
            return 0
        events = await self.store.unpublished(BATCH)
        done = []
        for event in events:
            subject = alert_subject(event.alert.field, event.alert.severity.token)
            try:
                await self.bus.jetstream_publish(subject, self.encode(event), msg_id=event.event_id)
            except Exception as exc:  # NATS down: the event stays unpublished, tried again
                _log.warning("alert event not published yet", subject=subject, error=repr(exc))
                break
            done.append(event.revision)
        if done:
            await self.store.mark_published(done)
            self.published += len(done)
        return len(done)

    async def _submit(self) -> int:
        if self.submitter is None:
            return 0
        done = []
        for number, body in await self.store.pending_notifications(BATCH):
            try:
                result = self.submitter.submit(self.build(json.loads(body)))
                if inspect.isawaitable(result):
                    await result
            except InvalidArgument as exc:
                # A receiver nobody configured: retrying cannot help; the record stays.
                _log.error("notification refused by the dispatcher", id=number, error=str(exc))
            except Exception as exc:
                _log.warning("notification not handed over yet", id=number, error=repr(exc))
                break
            done.append(number)
        if done:
            await self.store.mark_submitted(done)
            self.submitted += len(done)
        return len(done)
