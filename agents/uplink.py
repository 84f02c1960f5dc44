"""The uplink: buffered batches to JetStream, in order, each deleted only once acknowledged.

Per-device order in the stream equals sequence order, whatever fails. Each round sends the
oldest waiting batch of every device at once (devices pipeline against each other), but a
device's next batch goes out only after its previous one was acknowledged: if batch k is
refused, k+1 has not been sent, so the stream can never hold k+1 before k. What goes out for
a device (its backlog merged into one message, a batch too large cut into parts) is
:mod:`~smartcity.agents.uplink_backlog`'s.

A batch is sent with ``Nats-Msg-Id`` set to its id; a batch whose acknowledgement was lost is
sent again with the same id and JetStream stores it once. JetStream answering "duplicate" is
expected only for a batch this process already sent, or one an earlier run may have sent. For
a batch created by this run and never sent, "duplicate" means an id collision: the stream
holds other readings under that id. That is an alarm (logged, counted), and the batch is
moved to the buffer's quarantine table, kept on disk, instead of being counted as delivered.

All buffer I/O runs in a worker thread; a buffer error is reported through the buffer's
:class:`~smartcity.agents.buffer.BufferHealth` and retried with back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from nats.js import api as js_api
from nats.js.errors import NoStreamResponseError

from smartcity.agents.batches import Part, sent_time_suffix
from smartcity.agents.buffer import BufferHealth, DiskBuffer, Entry
from smartcity.agents.resilience import Backoff
from smartcity.agents.uplink_backlog import Backlog
from smartcity.runtime.bus import Bus
from smartcity.runtime.cancellation import raise_if_cancelled

log = logging.getLogger(__name__)

_READ = "reading batches to send"
_REMOVE = "removing acknowledged batches"


@dataclass
class UplinkStats:
    batches_sent: int = 0
    readings_sent: int = 0
    send_failures: int = 0
    last_error: str = ""
    connected: bool = False
    duplicates_replayed: int = 0
    """"Duplicate" answers for batches sent before (a lost acknowledgement, an earlier run)."""
    duplicates_unexpected: int = 0
    """"Duplicate" answers for batches never sent: id collisions, quarantined."""
    batches_split: int = 0


class Uplink:
    """Sends what the buffer holds; see the module documentation for the guarantees."""

    def __init__(
        self,
        buffer: DiskBuffer,
        health: BufferHealth,
        *,
        window: int,
        ack_timeout: float,
        wake: asyncio.Event,
        max_readings: int = 1000,
    ) -> None:
        self.buffer = buffer
        self.health = health
        self.window = window
        self.ack_timeout = ack_timeout
        self.stats = UplinkStats()
        self.backlog = Backlog(buffer, health, self.stats, max_readings=max_readings)
        """What goes out next for each device (merged backlogs, parts of large batches)."""
        self._wake = wake
        self._sent: dict[int, set[str]] = {}
        """Per buffered batch, the message ids this process has sent for it."""
        self._acked: set[str] = set()
        """Message ids acknowledged whose batch is still in the buffer."""
        self._collided: dict[int, str] = {}
        """Batches found colliding whose move to the quarantine has yet to succeed."""
        self._no_stream_reported = False

    async def run(self, bus: Bus) -> None:
        """Send until cancelled; never raises for a NATS outage or a buffer error."""
        backoff = Backoff(initial=0.1, maximum=5.0)
        while True:
            raise_if_cancelled()  # a publish may have swallowed the request to stop
            if not bus.nc.is_connected:
                self.stats.connected = False
                await asyncio.sleep(backoff.next_delay())
                continue
            self.stats.connected = True
            self._wake.clear()
            try:
                outcome = await self.round(bus)
            except Exception:  # a fault of the uplink itself must not end sending for good
                log.exception("uplink: unexpected failure; retrying")
                outcome = False
            if outcome is None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self._wake.wait()
            elif outcome:
                backoff.reset()
            else:
                await asyncio.sleep(backoff.next_delay())

    async def round(self, bus: Bus, ack_timeout: float | None = None) -> bool | None:
        """Send the oldest batch (or next part) of each device once. None: nothing waits;
        True: everything sent was acknowledged; False: something is left for a retry."""
        self.backlog.max_payload = bus.nc.max_payload
        suffix = sent_time_suffix(time.time())
        try:
            entries = await asyncio.to_thread(self.buffer.peek, self.window)
        except Exception as exc:
            self.health.failed(_READ, exc)
            return False
        self.health.recovered(_READ)
        if not entries:
            return None
        queues: dict[str, list[Entry]] = {}
        for entry in entries:
            queues.setdefault(entry.subject, []).append(entry)
        sends: list[tuple[Entry, Part]] = []
        # one batch per device: none overtakes an earlier one of its device
        for entry in await self.backlog.coalesce(list(queues.values()), suffix, self._sent_here):
            if entry.id in self._collided:  # never sent again; moved out as soon as that works
                await self._quarantine(entry)
                continue
            part = await self.backlog.next_part(entry, suffix)
            if part is not None:
                sends.append((entry, part))
        if not sends:  # quarantined, or failing to be: pause before the next look
            return False
        futures: list[asyncio.Future[js_api.PubAck]] = []
        sent_before: list[bool] = []
        error = ""
        try:
            for entry, part in sends:
                # Marked sent before it goes out, not once answered: a round cancelled while
                # it waits (the agent stopping) must not let the next round merge this batch
                # with later ones under the same id, which the stream would answer
                # "duplicate" for, holding fewer readings.
                sent = self._sent.setdefault(entry.id, set())
                sent_before.append(part.msg_id in sent)
                sent.add(part.msg_id)
                headers = {**entry.headers, js_api.Header.MSG_ID.value: part.msg_id}
                try:
                    future = await bus.js.publish_async(
                        entry.subject,
                        part.payload + suffix,
                        headers=headers,
                        wait_stall=self.ack_timeout,
                    )
                except BaseException:
                    if not sent_before[-1]:
                        sent.discard(part.msg_id)
                    raise
                futures.append(future)
        except Exception as exc:  # connection lost mid-round, publish buffer full, ...
            error = f"{type(exc).__name__}: {exc}"
        if futures:
            _, pending = await asyncio.wait(futures, timeout=ack_timeout or self.ack_timeout)
            for future in pending:
                future.cancel()
        done: list[Entry] = []
        failed = len(sends) - len(futures)
        no_stream: list[str] = []
        for (entry, part), future, was_sent in zip(sends, futures, sent_before, strict=False):
            if future.cancelled() or future.exception() is not None:
                exc = None if future.cancelled() else future.exception()
                if isinstance(exc, NoStreamResponseError) and entry.subject not in no_stream:
                    no_stream.append(entry.subject)
                error = error or (
                    f"{type(exc).__name__}: {exc}"
                    if exc is not None
                    else f"no acknowledgement within {self.ack_timeout:g} s"
                )
                failed += 1
                continue
            ack = future.result()
            if ack.duplicate:
                new = not was_sent and entry.id > self.buffer.opened_after
                if new and not await self._same_as_stored(bus, ack, part):
                    await self._collision(entry, part)
                    continue
                self.stats.duplicates_replayed += 1
            if part.msg_id not in self._acked:  # counted once, even if sent again
                self._acked.add(part.msg_id)
                self.stats.readings_sent += part.readings
            if self.backlog.part_done(entry):
                done.append(entry)
        await self._forget(done)
        self._report(bus, failed, len(sends), error, no_stream)
        return failed == 0

    async def drain(self, bus: Bus, timeout: float) -> bool:  # noqa: ASYNC109
        """Send what is buffered for up to ``timeout`` seconds; True when nothing is left."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and bus.nc.is_connected:
            left = min(self.ack_timeout, max(0.01, deadline - time.monotonic()))
            outcome = await self.round(bus, left)
            if outcome is None:
                return True
            if not outcome:
                await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        return self.buffer.stats().batches == 0

    @property
    def max_readings(self) -> int:
        """Readings a message merged from a backlog may hold (``max_batch_readings``)."""
        return self.backlog.max_readings

    @property
    def max_payload(self) -> int:
        """The server's limit, read from the connection before each round."""
        return self.backlog.max_payload

    # -- removal, collisions -------------------------------------------------------------------

    def _sent_here(self, batch_id: int) -> bool:
        return batch_id in self._sent or batch_id in self._collided

    async def _forget(self, done: list[Entry]) -> None:
        if not done:
            return
        try:
            await asyncio.to_thread(self.buffer.remove, [entry.id for entry in done])
        except Exception as exc:  # sent again later: a duplicate JetStream recognises
            self.health.failed(_REMOVE, exc)
            return
        self.health.recovered(_REMOVE)
        for entry in done:
            self._acked.difference_update(self._sent.pop(entry.id, ()))
            self.backlog.forget(entry.id)
        self.stats.batches_sent += len(done)

    async def _same_as_stored(self, bus: Bus, ack: js_api.PubAck, part: Part) -> bool:
        """Whether the message JetStream holds under our id (its sequence is in the "duplicate"
        answer) carries these very readings; False also when it cannot be read."""
        try:
            stored = await bus.js.get_msg(ack.stream, ack.seq)
        except Exception as exc:  # no right to read the stream: assume the worst
            log.debug("uplink: cannot read message %s of %s: %s", ack.seq, ack.stream, exc)
            return False
        return bool(stored.data) and stored.data.startswith(part.payload)

    async def _collision(self, entry: Entry, part: Part) -> None:
        self.stats.duplicates_unexpected += 1
        reason = (
            f"JetStream answered duplicate for {part.msg_id}, which this agent never sent: "
            "the stream holds other content under that id"
        )
        log.error(
            "uplink: %s; the batch is kept in the quarantine of %s, not counted as delivered",
            reason,
            self.buffer.path,
        )
        self._collided[entry.id] = reason
        await self._quarantine(entry)

    async def _quarantine(self, entry: Entry) -> None:
        """Move a collided batch out of the queue; until that works it is never sent again."""
        try:
            await asyncio.to_thread(self.buffer.quarantine, entry, self._collided[entry.id])
        except Exception as exc:
            self.health.failed(_REMOVE, exc)
            return
        self.health.recovered(_REMOVE)
        del self._collided[entry.id]
        self._acked.difference_update(self._sent.pop(entry.id, ()))
        self.backlog.forget(entry.id)

    # -- reporting ---------------------------------------------------------------------------

    def _report(self, bus: Bus, failed: int, sent: int, error: str, no_stream: list[str]) -> None:
        if failed:
            self.stats.send_failures += 1
            if no_stream:
                error = f"no JetStream stream captures {', '.join(no_stream)}"
                if not self._no_stream_reported:
                    self._report_no_stream(bus, no_stream)
            elif error != self.stats.last_error:
                log.warning(
                    "uplink: %d of %d batch(es) not acknowledged, kept on disk for retry: %s",
                    failed,
                    sent,
                    error,
                )
            self.stats.last_error = error
        elif self.stats.last_error:
            log.info("uplink: JetStream acknowledges again; replaying the buffer in order")
            self.stats.last_error = ""
            self._no_stream_reported = False

    def _report_no_stream(self, bus: Bus, subjects: list[str]) -> None:
        """Say once per outage that the server has no stream for our subjects, and who
        creates one: the platform, never the agent (it needs no stream-admin rights)."""
        self._no_stream_reported = True
        url = bus.nc.connected_url  # without the credentials it may carry
        server = f"{url.scheme}://{url.hostname}:{url.port}" if url is not None else "URL"
        named = " or ".join(subjects[:3])
        if len(subjects) > 3:
            named += f" (and {len(subjects) - 3} more subjects)"
        log.warning(
            "uplink: no JetStream stream captures %s on %s; the readings stay in the disk "
            "buffer and are retried until one does. Create the platform's streams with "
            "`smartcity streams ensure --nats %s` (or run `smartcity nats` or `smartcity up`, "
            "which create them)",
            named,
            server,
            server,
        )
