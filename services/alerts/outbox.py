"""What leaves the service after a commit: alert events to JetStream, notifications to the
receivers' dispatcher.

Both are written by the transaction that makes them (the events table, the notifications
table) and handed on from there, so a crash between the commit and the hand-over loses
nothing: the next run (of this replica or another) hands them on. Events are published with
``Nats-Msg-Id`` set to the event id, so a second publish of one event (after a crash, or by
two replicas at once) is stored once by the ALERTS stream. A notification is marked once the
dispatcher has taken it; a crash in between hands it over again (delivery is at least once,
as the dispatcher's own is).

An event raised by a reading is published in that reading's trace: :class:`EventTraces`
keeps, from the evaluation of a fetch until the publish, the trace context of the message
each reading came in (see :class:`~smartcity.services.alerts.app.TelemetryEvaluation`), so
that one trace runs from the agent's publish through evaluation to the ``AlertEvent``. It is
kept in memory only: an event published by another replica, or after a restart, starts a
trace of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry.context import Context

from smartcity.runtime.bus import Bus
from smartcity.runtime.cancellation import raise_if_cancelled
from smartcity.runtime.errors import InvalidArgument
from smartcity.runtime.logs import get_logger
from smartcity.runtime.subjects import alert_subject
from smartcity.services.alerts.model import Event
from smartcity.services.alerts.store import AlertStore, StoreError

__all__ = ["EventTraces", "Outbox", "Submitter"]

_log = get_logger(__name__)

BATCH = 500
POLL_SECONDS = 1.0
"""How often the outbox looks for work another replica left, without a wake-up."""


Device = tuple[str, str, str]
"""(field, site, device)"""


class EventTraces:
    """The trace context each alert event continues, from the evaluation that raised it to
    its publish.

    A reading raises events stamped with its own time on its own device, so the message it
    came in is found by (field, site, device, time). Before a fetch is evaluated,
    :meth:`expect` registers each message's device, time span and context; :meth:`settle`
    keeps the contexts of the events the evaluation raised (at most ``limit``, the oldest
    forgotten first) and drops the rest. Registering first means the outbox finds the
    context even when it reads an event between the evaluation's commit and its return.
    """

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._pending: list[tuple[Device, int, int, Context]] = []
        self._events: OrderedDict[tuple[str, str, str, int], Context] = OrderedDict()

    @staticmethod
    def _key(event: Event) -> tuple[str, str, str, int]:
        labels = event.alert.labels
        return (event.alert.field, labels.get("site", ""), labels.get("device", ""), event.time)

    def expect(self, messages: Iterable[tuple[Device, int, int, Context]]) -> None:
        """Register the messages of a fetch about to be evaluated: each one's device, the
        first and last time of its readings (µs) and its trace context."""
        self._pending = list(messages)

    def settle(self, events: Sequence[Event]) -> None:
        """Keep the contexts of ``events``, raised by the fetch last registered."""
        for event in events:
            found = self._in_pending(event)
            if found is not None:
                self._events[self._key(event)] = found
        self._pending = []
        while len(self._events) > self.limit:
            self._events.popitem(last=False)

    def context(self, event: Event) -> Context | None:
        """The context ``event`` continues, ``None`` when it is not known here."""
        known = self._events.get(self._key(event))
        return known if known is not None else self._in_pending(event)

    def forget(self, events: Iterable[Event]) -> None:
        for event in events:
            self._events.pop(self._key(event), None)

    def _in_pending(self, event: Event) -> Context | None:
        field, site, device, at = self._key(event)
        for (f, s, d), first, last, context in self._pending:
            if first <= at <= last and (f, s, d) == (field, site, device):
                return context
        return None


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
        traces: EventTraces | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.encode = encode
        self.submitter = submitter
        self.build = build
        self.traces = traces
        self.published = 0
        self.submitted = 0
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            raise_if_cancelled()  # a publish may have swallowed the request to stop
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_SECONDS):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.drain()
            except StoreError as exc:
                _log.warning("outbox waits for storage", error=str(exc))

    async def drain(self) -> None:
        """Hand on everything waiting now."""
        while await self._publish() or await self._submit():
            raise_if_cancelled()

    async def _publish(self) -> int:
        if self.bus is None:
            return 0
        events = await self.store.unpublished(BATCH)
        done = []
        for event in events:
            subject = alert_subject(event.alert.field, event.alert.severity.token)
            # In the trace of the reading that raised it, when this replica evaluated it.
            reading = self.traces.context(event) if self.traces is not None else None
            token = otel_context.attach(reading) if reading is not None else None
            try:
                await self.bus.jetstream_publish(subject, self.encode(event), msg_id=event.event_id)
            except Exception as exc:  # NATS down: the event stays unpublished, tried again
                _log.warning("alert event not published yet", subject=subject, error=repr(exc))
                break
            finally:
                if token is not None:
                    otel_context.detach(token)
            done.append(event)
        if done:
            await self.store.mark_published([event.revision for event in done])
            self.published += len(done)
            if self.traces is not None:
                self.traces.forget(done)
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
