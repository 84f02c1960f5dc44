"""The live hub: fan-out by selector, bounded queues, slow subscribers cut off, redelivered
readings not repeated."""

from __future__ import annotations

import asyncio

import pytest

from smartcity.runtime.errors import ResourceExhausted, Unavailable
from smartcity.services.monitoring.live import LiveHub, LiveReading, StreamOverflow
from smartcity.services.monitoring.model import Quality, Selector, SeriesKey, StoredReading

T0 = 1_700_000_000_000_000


def reading(field: str, device: str, metric: str, sequence: int, value: float) -> LiveReading:
    key = SeriesKey(field, "site-1", device, metric)
    return key, StoredReading(metric, "u", value, Quality.GOOD, "", T0 + sequence, sequence)


async def test_each_subscriber_gets_what_its_selector_matches_in_order() -> None:
    hub = LiveHub()
    everything = hub.subscribe(Selector())
    water = hub.subscribe(Selector(field="water_supply"))
    ph = hub.subscribe(Selector(field="water_supply", metric="ph"))
    batch = [
        reading("water_supply", "a1", "ph", 1, 7.1),
        reading("electricity", "bay-1", "voltage_an", 1, 22.1),
        reading("water_supply", "a1", "turbidity", 1, 0.4),
        reading("water_supply", "a1", "ph", 2, 7.2),
    ]
    hub.publish(batch)
    assert await everything.next_chunk() == batch
    assert await water.next_chunk() == [batch[0], batch[2], batch[3]]
    assert await ph.next_chunk() == [batch[0], batch[3]]
    assert (everything.pending, water.pending, ph.pending) == (0, 0, 0)


async def test_next_chunk_waits_for_readings_and_caps_the_chunk() -> None:
    hub = LiveHub()
    subscription = hub.subscribe(Selector())
    waiting = asyncio.ensure_future(subscription.next_chunk(max_readings=2))
    await asyncio.sleep(0)
    assert not waiting.done()
    batch = [reading("traffic", "cam-1", "vehicle_count", n, n) for n in range(1, 6)]
    hub.publish(batch)
    assert await asyncio.wait_for(waiting, 5) == batch[:2]
    assert await subscription.next_chunk(max_readings=2) == batch[2:4]
    assert await subscription.next_chunk(max_readings=2) == batch[4:]


async def test_a_subscriber_that_falls_behind_is_cut_off_without_slowing_others() -> None:
    hub = LiveHub(max_pending=10)
    slow = hub.subscribe(Selector())
    fast = hub.subscribe(Selector())
    for start in range(0, 15, 5):
        batch = [reading("lighting", "cab-1", "current_l1", n, n) for n in range(start, start + 5)]
        hub.publish(batch)
        assert await fast.next_chunk() == batch
    assert slow.closed
    assert hub.subscriber_count == 1
    assert hub.dropped == 1
    with pytest.raises(StreamOverflow, match=r"at most 10 may wait") as caught:
        await slow.next_chunk()
    assert isinstance(caught.value, ResourceExhausted)


async def test_redelivered_readings_are_not_published_twice() -> None:
    hub = LiveHub()
    subscription = hub.subscribe(Selector())
    first = [reading("energy", "m1", "power_demand", n, n) for n in (1, 2, 3)]
    hub.publish(first)
    hub.publish([*first[1:], reading("energy", "m1", "power_demand", 4, 4.0)])
    received = await subscription.next_chunk()
    assert [item[1].sequence for item in received] == [1, 2, 3, 4]
    assert subscription.pending == 0


async def test_close_ends_the_iteration_and_unsubscribes() -> None:
    hub = LiveHub()
    received: list[LiveReading] = []

    async def consume() -> None:
        with hub.subscribe(Selector()) as subscription:
            async for chunk in subscription:
                received.extend(chunk)
                subscription.close()

    task = asyncio.ensure_future(consume())
    await asyncio.sleep(0)
    assert hub.subscriber_count == 1
    hub.publish([reading("health", "er-1", "er_waiting_time", 1, 12.0)])
    await asyncio.wait_for(task, 5)
    assert len(received) == 1
    assert hub.subscriber_count == 0


async def test_closing_the_hub_ends_streams_with_unavailable() -> None:
    hub = LiveHub()
    subscription = hub.subscribe(Selector())
    hub.close()
    with pytest.raises(Unavailable, match="shutting down"):
        await subscription.next_chunk()
    with pytest.raises(Unavailable):
        hub.subscribe(Selector())


def test_publishing_with_no_subscriber_costs_nothing_and_keeps_nothing() -> None:
    hub = LiveHub()
    hub.publish([reading("energy", "m1", "power_demand", 1, 1.0)])
    assert hub._last == {}
    with pytest.raises(ValueError, match="positive"):
        LiveHub(max_pending=0)
