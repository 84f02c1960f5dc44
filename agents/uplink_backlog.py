"""What the uplink sends next for each device: the oldest batch waiting, with its backlog
merged and a batch too large cut into parts.

So that a device keeps up over a link slower than its poll rate, the batches of its backlog
that no process can have sent yet are merged on disk into one message (up to
``max_payload`` and ``max_batch_readings``) before it goes out, keeping the first one's id
and place.

A batch larger than the server's ``max_payload`` (a buffer filled before the agent knew the
server, or a server configured small) is sent in parts that fit, one at a time and in order,
each with an id derived from the batch id and the offset of its first reading; a single
reading that cannot fit is quarantined, so that nothing blocks the uplink.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from nats.js import api as js_api

from smartcity.agents.batches import Part, headers_size, merged_payload, split_batch
from smartcity.agents.buffer import BufferHealth, DiskBuffer, Entry

if TYPE_CHECKING:  # the uplink imports this module
    from smartcity.agents.uplink import UplinkStats

# one logger for the uplink and the parts it is made of
log = logging.getLogger("smartcity.agents.uplink")

_MERGE = "merging a backlog"


class Backlog:
    """The batches waiting in ``buffer``, shaped into what goes out next."""

    def __init__(
        self, buffer: DiskBuffer, health: BufferHealth, stats: UplinkStats, *, max_readings: int
    ) -> None:
        self.buffer = buffer
        self.health = health
        self.stats = stats
        self.max_readings = max_readings
        """Readings a message merged from a backlog may hold (``max_batch_readings``)."""
        self.max_payload = 1024 * 1024
        """The server's limit, read from the connection before each round."""
        self._parts: dict[int, tuple[list[Part], int]] = {}
        """Split batches: their parts and how many are acknowledged."""

    def limit(self, entry: Entry, suffix: bytes) -> int:
        """Bytes of payload ``entry`` may have to fit the server's ``max_payload``."""
        headers = {**entry.headers, js_api.Header.MSG_ID.value: entry.msg_id + "+" * 12}
        return self.max_payload - len(suffix) - headers_size(headers)

    async def coalesce(
        self, queues: list[list[Entry]], suffix: bytes, sent_here: Callable[[int], bool]
    ) -> list[Entry]:
        """The next batch of each device, its backlog merged into as few messages as fit: its
        oldest batches that no process can have sent yet (created by this run, never sent by
        it) become one, in the place and with the id of the first, on disk and in one
        transaction for all devices, before anything goes out; so an id always names the
        same readings. Without this a device's batches, sent one at a time, could not keep
        up over a slow link. ``sent_here`` tells the batches this process has sent."""
        heads = [queue[0] for queue in queues]
        merges: list[tuple[int, list[Entry], bytes, int]] = []
        for index, queue in enumerate(queues):
            run = self._mergeable(queue, self.limit(queue[0], suffix), sent_here)
            try:
                payload = merged_payload(run) if len(run) > 1 else None
            except Exception:  # a stored batch that does not decode: sent on its own
                payload = None
            if payload is not None:
                merges.append((index, run, payload, sum(entry.readings for entry in run)))
        if not merges:
            return heads
        try:
            merged = await asyncio.to_thread(
                self.buffer.merge, [(run, payload, count) for _, run, payload, count in merges]
            )
        except Exception as exc:  # send them one by one, then
            self.health.failed(_MERGE, exc)
            return heads
        self.health.recovered(_MERGE)
        stale: set[int] = set()
        for (index, *_), entry in zip(merges, merged, strict=True):
            if entry is None:  # changed on disk since it was read: looked at next round
                stale.add(index)
            else:
                heads[index] = entry
        return [head for index, head in enumerate(heads) if index not in stale]

    def _mergeable(
        self, queue: list[Entry], limit: int, sent_here: Callable[[int], bool]
    ) -> list[Entry]:
        run: list[Entry] = []
        size = readings = 0
        for entry in queue:
            if (
                entry.id <= self.buffer.opened_after
                or sent_here(entry.id)
                or entry.id in self._parts
                or size + len(entry.payload) + 64 > limit
                or readings + entry.readings > self.max_readings
            ):
                break
            run.append(entry)
            size += len(entry.payload)
            readings += entry.readings
        return run

    async def next_part(self, entry: Entry, suffix: bytes) -> Part | None:
        """The message that carries ``entry`` now: the batch itself, or its next part; None
        when it can never be sent (moved to the quarantine)."""
        known = self._parts.get(entry.id)
        if known is not None:
            return known[0][known[1]]
        limit = self.limit(entry, suffix)
        if len(entry.payload) <= limit:
            return Part(entry.msg_id, entry.payload, entry.readings)
        try:
            parts = split_batch(entry, limit)
        except Exception as exc:  # a reading too big to ever send, or a corrupt payload
            reason = f"cannot be sent within max_payload {self.max_payload}: {exc}"
            log.error("uplink: batch %s %s; moved to the buffer's quarantine", entry.msg_id, reason)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.buffer.quarantine, entry, reason)
            return None
        log.info(
            "uplink: batch %s (%d bytes) exceeds the server's max_payload of %d; sending it in "
            "%d parts",
            entry.msg_id,
            len(entry.payload),
            self.max_payload,
            len(parts),
        )
        self.stats.batches_split += 1
        self._parts[entry.id] = (parts, 0)
        return parts[0]

    def part_done(self, entry: Entry) -> bool:
        """Count one more acknowledged part; True when the whole batch is delivered."""
        known = self._parts.get(entry.id)
        if known is None:
            return True
        parts, acked = known
        if acked + 1 < len(parts):
            self._parts[entry.id] = (parts, acked + 1)
            return False
        return True

    def forget(self, batch_id: int) -> None:
        """The batch left the queue (delivered or quarantined): drop its parts."""
        self._parts.pop(batch_id, None)
