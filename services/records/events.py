"""Publishing the outbox: every committed change's event on ``city.records.<type>.<event>``.

The store writes each event in the transaction of its change, so an event exists exactly for
the changes that committed. This task publishes them in order with their event id as
``Nats-Msg-Id`` and removes them once JetStream has acknowledged them; a publish that is
repeated after a crash between the acknowledgement and the removal is dropped by the
stream's duplicate window. While NATS or the store is down the events wait in the outbox,
and ``problem`` says why (health reports NOT_SERVING).
"""

from __future__ import annotations

import asyncio
import contextlib

from smartcity.runtime.bus import RECORDS_STREAM, Bus
from smartcity.runtime.cancellation import raise_if_cancelled
from smartcity.runtime.logs import get_logger
from smartcity.runtime.subjects import record_subject
from smartcity.services.records.convert import event
from smartcity.services.records.model import OutboxEvent
from smartcity.services.records.store import RecordStore

_log = get_logger(__name__)


def waves(events: list[OutboxEvent]) -> list[list[OutboxEvent]]:
    """Events split into groups published concurrently, each naming a record at most once,
    so that a record's events reach the stream in the order they were written."""
    groups: list[list[OutboxEvent]] = []
    current: list[OutboxEvent] = []
    seen: set[str] = set()
    for item in events:
        if item.record_id in seen:
            groups.append(current)
            current, seen = [], set()
        current.append(item)
        seen.add(item.record_id)
    if current:
        groups.append(current)
    return groups


class OutboxPublisher:
    def __init__(
        self,
        bus: Bus,
        store: RecordStore,
        *,
        batch: int = 500,
        idle_seconds: float = 1.0,
        retry_max_seconds: float = 30.0,
    ) -> None:
        self._bus = bus
        self._store = store
        self._batch = batch
        self._idle = idle_seconds
        self._retry_max = retry_max_seconds
        self._wake = asyncio.Event()
        self.problem: str | None = None
        self.published = 0

    def wake(self) -> None:
        """A change committed: publish now rather than at the next idle tick."""
        self._wake.set()

    async def publish_pending(self) -> int:
        """Publish what the outbox holds (one batch); how many events went out."""
        pending = await self._store.pending_events(self._batch)
        for group in waves(pending):
            await asyncio.gather(*(self._publish(item) for item in group))
            await self._store.events_published([item.sequence for item in group])
            self.published += len(group)
        return len(pending)

    async def _publish(self, item: OutboxEvent) -> None:
        await self._bus.jetstream_publish(
            record_subject(item.type, item.event.value),
            event(item).SerializeToString(),
            msg_id=item.event_id,
            stream=RECORDS_STREAM,
        )

    async def run(self) -> None:
        delay = 0.1
        while True:
            raise_if_cancelled()  # a publish may have swallowed the request to stop
            self._wake.clear()
            try:
                count = await self.publish_pending()
            except Exception as exc:  # this task must outlive any failure
                # Nothing is lost: the events stay in the outbox until a publish succeeds.
                self.problem = f"events wait in the outbox: {exc}"
                _log.warning("publishing record events failed; retrying", error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)
                continue
            self.problem = None
            delay = 0.1
            if count < self._batch:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._idle):
                        await self._wake.wait()
