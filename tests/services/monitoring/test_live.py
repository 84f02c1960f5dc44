"""The live hub: fan-out by selector through an index, bounded queues, slow subscribers cut
off, a cap on subscribers, streams that end when their token expires."""

from __future__ import annotations

import asyncio

import pytest

from smartcity.runtime.errors import ResourceExhausted, Unavailable
from smartcity.services.monitoring.live import LiveHub, LiveReading, StreamOverflow
from smartcity.services.monitoring.model import (
    IngestBatch,
    Quality,
    Selector,
    SeriesKey,
    StoredReading,
)

T0 = 1_700_000_000_000_000


def batch(field: str, device: str, *readings: tuple[str, int, float]) -> IngestBatch:
    return IngestBatch(
        f"site-1/{device}/{readings[0][1]}",
        field,
        "site-1",
        device,
        "agent",
        [
            StoredReading(metric, "u", value, Quality.GOOD, "", T0 + sequence, sequence)
            for metric, sequence, value in readings
        ],
        T0,
    )


def live(source: IngestBatch) -> list[LiveReading]:
    return [
        (SeriesKey(source.field, source.site, source.device, r.metric), r) for r in source.readings
    ]


async def test_each_subscriber_gets_what_its_selector_matches_in_order() -> None:
    hub = LiveHub()
    everything = hub.subscribe(Selector())
    water = hub.subscribe(Selector(field="water_supply"))
    ph = hub.subscribe(Selector(field="water_supply", metric="ph"))
    a1 = hub.subscribe(Selector(site="site-1", device="a1"))
    elsewhere = hub.subscribe(Selector(site="site-2"))
    water_1 = batch("water_supply", "a1", ("ph", 1, 7.1), ("turbidity", 1, 0.4))
    power = batch("electricity", "bay-1", ("voltage_an", 1, 22.1))
    water_2 = batch("water_supply", "a1", ("ph", 2, 7.2))
    hub.publish([water_1, power, water_2])
    assert await everything.next_chunk() == live(water_1) + live(power) + live(water_2)
    assert await water.next_chunk() == live(water_1) + live(water_2)
    assert await ph.next_chunk() == [live(water_1)[0], *live(water_2)]
    assert await a1.next_chunk() == live(water_1) + live(water_2)
    assert elsewhere.pending == 0
    assert hub.patterns == {
        (None, None, None),
        ("water_supply", None, None),
        (None, "site-1", "a1"),
        (None, "site-2", None),
    }


async def test_next_chunk_waits_for_readings_and_caps_the_chunk() -> None:
    hub = LiveHub()
    subscription = hub.subscribe(Selector())
    waiting = asyncio.ensure_future(subscription.next_chunk(max_readings=2))
    await asyncio.sleep(0)
    assert not waiting.done()
    counts = batch("traffic", "cam-1", *(("vehicle_count", n, n) for n in range(1, 6)))
    hub.publish([counts])
    expected = live(counts)
    assert await asyncio.wait_for(waiting, 5) == expected[:2]
    assert await subscription.next_chunk(max_readings=2) == expected[2:4]
    assert await subscription.next_chunk(max_readings=2) == expected[4:]


async def test_a_subscriber_that_falls_behind_is_cut_off_without_slowing_others() -> None:
    hub = LiveHub(max_pending=10)
    slow = hub.subscribe(Selector())
    fast = hub.subscribe(Selector())
    for start in range(0, 15, 5):
        currents = batch(
            "lighting", "cab-1", *(("current_l1", n, n) for n in range(start, start + 5))
        )
        hub.publish([currents])
        assert await fast.next_chunk() == live(currents)
    assert slow.closed
    assert hub.subscriber_count == 1
    assert hub.dropped == 1
    with pytest.raises(StreamOverflow, match=r"at most 10 may wait") as caught:
        await slow.next_chunk()
    assert isinstance(caught.value, ResourceExhausted)


async def test_the_number_of_subscribers_is_capped() -> None:
    hub = LiveHub(max_subscribers=2)
    first = hub.subscribe(Selector())
    hub.subscribe(Selector(field="energy"))
    with pytest.raises(ResourceExhausted, match="already serves 2 live streams"):
        hub.subscribe(Selector())
    first.close()
    hub.subscribe(Selector())
    assert hub.subscriber_count == 2


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
    hub.publish([batch("health", "er-1", ("er_waiting_time", 1, 12.0))])
    await asyncio.wait_for(task, 5)
    assert len(received) == 1
    assert hub.subscriber_count == 0
    assert hub.patterns == frozenset()


async def test_closing_the_hub_ends_streams_with_unavailable() -> None:
    hub = LiveHub()
    subscription = hub.subscribe(Selector())
    hub.close()
    with pytest.raises(Unavailable, match="shutting down"):
        await subscription.next_chunk()
    with pytest.raises(Unavailable):
        hub.subscribe(Selector())


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        LiveHub(max_pending=0)
    with pytest.raises(ValueError, match="positive"):
        LiveHub(max_subscribers=0)
