"""The runtime's JetStream consumer against a real nats-server: every message is handled or
dead-lettered with its reason, counted; a poison message is isolated and delays the rest by
at most its own fetch; a store outage is waited out without a tight loop and without dead
letters; nothing a message does ends the loop."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy
from support import eventually

from smartcity.runtime.bus import DEADLETTER_STREAM, Bus
from smartcity.runtime.config import ConsumerSettings, StreamsSettings
from smartcity.runtime.consumer import (
    DEADLETTER_DELIVERIES_HEADER,
    DEADLETTER_REASON_HEADER,
    DEADLETTER_SEQUENCE_HEADER,
    DEADLETTER_SUBJECT_HEADER,
    JetStreamConsumer,
    Rejected,
)

SUBJECT = "city.telemetry.test.site-1.device-1"
FAST = ConsumerSettings(
    durable="test",
    fetch_batch=8,
    fetch_timeout_seconds=0.2,
    max_deliveries=3,
    retry_initial_seconds=0.05,
    retry_max_seconds=0.2,
)


class StoreDownError(Exception):
    pass


@dataclass
class Recorder:
    """A handler whose "store" is a list; it can be made to refuse items or to be down."""

    poison: set[int] = field(default_factory=set)
    down_for: int = 0
    """Commits that fail as "unavailable" before the store comes back."""
    stored: list[int] = field(default_factory=list)
    commits: list[tuple[float, list[int]]] = field(default_factory=list)

    def decode(self, msg: Msg) -> int:
        if msg.data == b"explode":
            raise KeyError("a bug in decoding")
        try:
            return int(msg.data)
        except ValueError:
            raise Rejected(f"not a number: {msg.data[:20]!r}") from None

    async def commit(self, items: Sequence[int]) -> None:
        self.commits.append((time.monotonic(), list(items)))
        if self.down_for > 0:
            self.down_for -= 1
            raise StoreDownError("connection refused")
        if self.poison & set(items):
            raise ValueError(f"refused {sorted(self.poison & set(items))}")
        self.stored.extend(items)

    def is_transient(self, error: Exception) -> bool:
        return isinstance(error, StoreDownError)


@contextlib.asynccontextmanager
async def consuming(
    bus: Bus, handler: Recorder, settings: ConsumerSettings = FAST
) -> AsyncIterator[JetStreamConsumer[int]]:
    consumer = JetStreamConsumer(
        bus, stream="TELEMETRY", subject="city.telemetry.>", settings=settings, handler=handler
    )
    task = asyncio.create_task(consumer.run())
    try:
        yield consumer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert not task.done() or task.cancelled(), "run() ended on its own"


async def publish(bus: Bus, payloads: Sequence[bytes]) -> None:
    for payload in payloads:
        await bus.jetstream_publish(SUBJECT, payload)


async def dead_letters(bus: Bus, count: int) -> list[Msg]:
    sub = await bus.js.pull_subscribe(
        "city.deadletter.telemetry",
        stream=DEADLETTER_STREAM,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )
    letters: list[Msg] = []
    deadline = time.monotonic() + 10
    while len(letters) < count and time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError):
            letters += await sub.fetch(count - len(letters), timeout=1)
    return letters


@pytest.fixture
async def streams(bus: Bus) -> Bus:
    await bus.ensure_streams(StreamsSettings())
    return bus


async def test_every_message_is_handled_or_dead_lettered_and_counted(streams: Bus) -> None:
    bus = streams
    payloads = [str(n).encode() for n in range(40)]
    payloads[7] = b"seven"
    payloads[23] = b"explode"
    await publish(bus, payloads)
    handler = Recorder()
    async with consuming(bus, handler) as consumer:
        await eventually(lambda: consumer.stats.handled + consumer.stats.deadlettered == 40)
        await eventually(lambda: consumer.acked_through(), what="ack floor")
        assert await consumer.acked_through() == 40
    assert sorted(handler.stored) == [n for n in range(40) if n not in (7, 23)]
    assert (consumer.stats.handled, consumer.stats.deadlettered) == (38, 2)
    letters = {letter.data: letter.headers for letter in await dead_letters(bus, 2)}
    assert letters[b"seven"][DEADLETTER_REASON_HEADER] == "not a number: b'seven'"
    assert letters[b"seven"][DEADLETTER_SUBJECT_HEADER] == SUBJECT
    assert letters[b"seven"][DEADLETTER_SEQUENCE_HEADER] == "8"
    assert letters[b"explode"][DEADLETTER_REASON_HEADER] == (
        "decoding raised KeyError: 'a bug in decoding'"
    )


async def test_a_poison_message_is_isolated_retried_then_dead_lettered(streams: Bus) -> None:
    bus = streams
    await publish(bus, [str(n).encode() for n in range(8)])  # exactly one fetch
    handler = Recorder(poison={5})
    async with consuming(bus, handler) as consumer:
        # After the first, failed commit of the fetch, its halves and quarters go in on
        # their own: everything but the poison is stored before the poison comes back.
        await eventually(lambda: sorted(handler.stored) == [0, 1, 2, 3, 4, 6, 7])
        first_failure = handler.commits[0][0]
        others_stored = time.monotonic()
        await eventually(lambda: consumer.stats.deadlettered == 1)
    assert others_stored - first_failure < 1.0
    assert [items for _, items in handler.commits[:1]] == [list(range(8))]
    poison_attempts = [items for _, items in handler.commits if items == [5]]
    assert len(poison_attempts) == FAST.max_deliveries
    (letter,) = await dead_letters(bus, 1)
    assert letter.data == b"5"
    assert letter.headers[DEADLETTER_DELIVERIES_HEADER] == "3"
    assert letter.headers[DEADLETTER_REASON_HEADER] == (
        "commit refused 3 time(s), giving up: ValueError: refused [5]"
    )
    assert consumer.stats.handled == 7


async def test_a_store_outage_is_waited_out_without_dead_letters(streams: Bus) -> None:
    bus = streams
    await publish(bus, [str(n).encode() for n in range(20)])
    handler = Recorder(down_for=4)
    async with consuming(bus, handler) as consumer:
        await eventually(lambda: consumer.problem is not None, what="the outage to show")
        assert "storage unavailable: connection refused" in str(consumer.problem)
        await eventually(lambda: sorted(handler.stored) == list(range(20)))
        assert consumer.problem is None
    assert consumer.stats.deadlettered == 0
    failed = [at for at, _ in handler.commits[:4]]
    # Backing off 0.05, 0.1, 0.2, 0.2 s: never a tight loop of commits against a dead store.
    assert failed[-1] - failed[0] >= 0.2
    assert len(handler.commits) < 20


async def test_a_failed_dead_letter_publish_comes_back_later(streams: Bus) -> None:
    bus = streams
    await bus.js.delete_stream(DEADLETTER_STREAM)
    await publish(bus, [b"junk", b"1"])
    handler = Recorder()
    async with consuming(bus, handler) as consumer:
        await eventually(lambda: consumer.stats.deadletter_failures >= 1)
        await eventually(lambda: handler.stored == [1])
        await bus.ensure_streams(StreamsSettings())
        await eventually(lambda: consumer.stats.deadlettered == 1, within=15)
    (letter,) = await dead_letters(bus, 1)
    assert letter.data == b"junk"


async def test_a_missing_stream_is_waited_for_and_named(bus: Bus) -> None:
    handler = Recorder()
    async with consuming(bus, handler) as consumer:
        await eventually(lambda: consumer.problem is not None)
        assert "smartcity streams ensure" in str(consumer.problem)
        await bus.ensure_streams(StreamsSettings())
        await publish(bus, [b"1", b"2"])
        await eventually(lambda: handler.stored == [1, 2], within=15)


@dataclass
class StuckRecorder(Recorder):
    """A handler whose commits never finish."""

    async def commit(self, items: Sequence[int]) -> None:
        await asyncio.Event().wait()


async def test_what_was_fetched_ahead_goes_back_when_the_consumer_stops(streams: Bus) -> None:
    """The next fetch is on its way while one is decoded; when the consumer stops, what it
    fetched and never decoded is handed back at once, for another consumer to take, rather
    than after the acknowledgement wait."""
    bus = streams
    settings = FAST.model_copy(update={"commits_in_flight": 1, "ack_wait_seconds": 60.0})
    await publish(bus, [str(n).encode() for n in range(24)])  # three fetches
    async with consuming(bus, StuckRecorder(), settings) as stuck:

        async def all_delivered() -> bool:
            info = await stuck.refresh_info()
            return info is not None and info.num_ack_pending == 24

        # The first fetch commits (forever), the second is decoded and waits for it, the
        # third has arrived and waits to be decoded.
        await eventually(lambda: stuck.stats.fetched == 16, what="two fetches decoded")
        await eventually(all_delivered, what="the third fetch")
        assert stuck.stats.fetched == 16
    handler = Recorder()
    async with consuming(bus, handler, settings):
        await eventually(lambda: sorted(handler.stored) == list(range(16, 24)), within=10)
