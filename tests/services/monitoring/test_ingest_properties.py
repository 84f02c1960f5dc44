"""Ingest under arbitrary input, over a real nats-server into both real backends: whatever
the messages hold (any value in any field, NaN, ±inf, huge and negative times, unknown
quality numbers, empty and unicode names, arbitrary bytes), the consumer keeps running,
every message is stored or dead-lettered, and it all adds up:

* messages published = messages handled + messages dead-lettered;
* readings in accepted messages = readings stored; readings of rejected messages are in the
  dead letters;
* every reading that is plainly good (by an oracle written here from the catalogue, not with
  the decoder's code) is stored GOOD; every other stored reading says why it is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TypeVar

import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from monitoring_support import city_fields, opened_store
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy
from store_helpers import fetch
from support import eventually

from smartcity.fields import Metric, MetricKind, ValueType
from smartcity.runtime.bus import DEADLETTER_STREAM, Bus
from smartcity.runtime.config import ConsumerSettings, MonitoringSettings, StreamsSettings
from smartcity.runtime.consumer import DEADLETTER_SEQUENCE_HEADER
from smartcity.services.monitoring.ingest import TelemetryIngest
from smartcity.services.monitoring.model import MICROS
from smartcity.services.monitoring.store import TimeSeriesStore
from smartcity.telemetry.v1 import telemetry_pb2

T = TypeVar("T")
FIELD, SITE = "traffic", "cau-rong"
CATALOGUE: dict[str, Metric] = dict(city_fields()[FIELD].metrics)
SKEW = 300
SETTINGS = MonitoringSettings(
    max_future_skew_seconds=SKEW,
    ingest=ConsumerSettings(
        durable="monitoring",
        fetch_timeout_seconds=0.2,
        retry_initial_seconds=0.05,
        retry_max_seconds=0.5,
    ),
)
NOW = time.time()
DEVICES = itertools.count(1)
SEQUENCES = itertools.count(1)


@dataclass
class World:
    url: str
    bus: Bus
    store: TimeSeriesStore
    ingest: TelemetryIngest
    task: asyncio.Task[None]
    letters: object


@pytest.fixture
async def world(store_url: str, bus: Bus) -> AsyncIterator[World]:
    await bus.ensure_streams(StreamsSettings())
    letters = await bus.js.pull_subscribe(
        "city.deadletter.telemetry",
        stream=DEADLETTER_STREAM,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )
    async with opened_store(store_url) as store:
        ingest = TelemetryIngest(bus, store, city_fields(), SETTINGS)
        task = asyncio.create_task(ingest.run())
        yield World(store_url, bus, store, ingest, task, letters)
        assert not task.done(), "ingest ended on its own"
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# -- what to publish --------------------------------------------------------------------------

PRINTABLE = st.characters(exclude_categories=["Cc", "Cs"])
NAMES = st.sampled_from([*CATALOGUE, "colour", "", "Tốc_độ", "x" * 80]) | st.text(max_size=12)
UNITS = st.sampled_from([*sorted({m.unit for m in CATALOGUE.values()}), "", "km"]) | st.text(
    max_size=6
)
TIMES = st.one_of(
    st.none(),
    st.floats(min_value=NOW - 30 * 86400, max_value=NOW - 1),  # the past month
    st.floats(min_value=NOW + 86400, max_value=NOW + 400 * 86400),  # a wrong clock
    st.integers(min_value=-(2**63), max_value=2**63 - 1),  # anything at all
)


def mostly(common: st.SearchStrategy[T], rare: st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    """``common`` nine times in ten: most readings are ordinary, so most messages get in.
    (Not on 0: Hypothesis draws the simplest value, 0, more often than the others.)"""
    return st.integers(0, 9).flatmap(lambda n: rare if n == 5 else common)


@st.composite
def reading(draw: st.DrawFn) -> telemetry_pb2.Reading:
    name = draw(mostly(st.sampled_from(sorted(CATALOGUE)), NAMES))
    metric = CATALOGUE.get(name)
    unit = draw(mostly(st.just(metric.unit), UNITS)) if metric is not None else draw(UNITS)
    item = telemetry_pb2.Reading(
        metric=name,
        unit=unit,
        quality=draw(
            mostly(st.just(1), st.sampled_from([2, 3, 4, 0]) | st.integers(-(2**31), 2**31 - 1))
        ),  # type: ignore[arg-type]
        quality_reason=draw(st.sampled_from(["", "timeout after 2.0 s"]) | st.text(max_size=30)),
        sequence=next(SEQUENCES),
    )
    value = draw(
        mostly(
            st.integers(0, 100).map(float),
            st.none()
            | st.floats(min_value=-10, max_value=25_000)
            | st.floats(allow_nan=True, allow_infinity=True),
        )
    )
    if value is not None:
        item.value = value
    moment = draw(mostly(st.floats(min_value=NOW - 3600, max_value=NOW - 1), TIMES))
    if moment is not None:
        stamp = item.source_time if draw(st.booleans()) else item.read_time
        if isinstance(moment, float):
            stamp.FromMicroseconds(int(moment * MICROS))
        else:
            stamp.seconds = moment
            stamp.nanos = draw(st.sampled_from([0, 500]) | st.integers(-(2**31), 2**31 - 1))
    return item


@st.composite
def message(draw: st.DrawFn, device: str, index: int) -> bytes:
    if draw(st.integers(0, 19)) == 5:
        return draw(st.binary(max_size=200))
    batch = telemetry_pb2.TelemetryBatch(
        field=FIELD,
        site=SITE,
        device=draw(mostly(st.just(device), st.text(max_size=8))),
        agent_id=draw(mostly(st.text(PRINTABLE, max_size=10), st.text(max_size=10))),
        readings=draw(st.lists(reading(), max_size=12)),
    )
    label = draw(mostly(st.text(PRINTABLE, max_size=12), st.text(max_size=12)))
    # Unique across examples too: a batch id already stored is skipped, as it should be.
    batch.batch_id = draw(mostly(st.just(f"{label}#{device}/{index}"), st.just("")))
    return batch.SerializeToString()


# -- the oracle ---------------------------------------------------------------------------------


def plainly_good(item: telemetry_pb2.Reading, published: float) -> bool:
    """Good by the catalogue and the wire, decided here without the decoder's code."""
    metric = CATALOGUE.get(item.metric)
    if metric is None or item.unit != metric.unit or item.quality != 1:
        return False
    if not item.HasField("value") or math.isnan(item.value) or math.isinf(item.value):
        return False
    value = item.value
    if metric.minimum is not None and value < metric.minimum:
        return False
    if metric.maximum is not None and value > metric.maximum:
        return False
    if metric.value_type is not ValueType.FLOAT and value != math.floor(value):
        return False
    if metric.kind is MetricKind.STATE and int(value) not in metric.states:
        return False
    stamp = item.source_time if item.HasField("source_time") else item.read_time
    if not (0 <= stamp.nanos < 10**9):
        return False
    seconds = stamp.seconds + stamp.nanos / 1e9
    if seconds == 0:
        return True  # no time given: the arrival time
    return -62_135_596_800 <= seconds <= published + SKEW


def readings_of(data: bytes) -> list[telemetry_pb2.Reading]:
    try:
        return list(telemetry_pb2.TelemetryBatch.FromString(data).readings)
    except DecodeError:
        return []


async def stored(world: World, device: str) -> list[tuple[int, str | None]]:
    """Every stored point of ``device``: quality and reason, read beside the store."""
    rows = await fetch(
        world.url,
        "SELECT p.quality, p.reason FROM points AS p JOIN series AS s ON s.id = p.series_id "
        f"WHERE s.field = '{FIELD}' AND s.site = '{SITE}' AND s.device = '{device}'",
    )
    return [(int(quality), reason) for quality, reason in rows]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_every_message_and_reading_gets_a_verdict_and_it_all_adds_up(
    world: World, data: st.DataObject
) -> None:
    device = f"cam-{next(DEVICES)}"
    subject = f"city.telemetry.{FIELD}.{SITE}.{device}"
    payloads = [data.draw(message(device, index)) for index in range(data.draw(st.integers(1, 8)))]
    stats = world.ingest.consumer.stats
    before = (stats.handled, stats.deadlettered)
    published: dict[int, bytes] = {}
    moment = time.time()
    for payload in payloads:
        ack = await world.bus.jetstream_publish(subject, payload)
        published[ack.seq] = payload
    await eventually(
        lambda: stats.handled + stats.deadlettered == before[0] + before[1] + len(payloads),
        what="a verdict on every message",
    )
    rejected: dict[int, bytes] = {}
    while len(rejected) < stats.deadlettered - before[1]:
        with contextlib.suppress(TimeoutError):
            for letter in await world.letters.fetch(10, timeout=1):  # type: ignore[attr-defined]
                assert isinstance(letter, Msg)
                rejected[int(letter.headers[DEADLETTER_SEQUENCE_HEADER])] = letter.data
                await letter.ack()
    assert set(rejected) <= set(published)
    assert all(rejected[seq] == published[seq] for seq in rejected)
    accepted = [payload for seq, payload in published.items() if seq not in rejected]
    rows = await stored(world, device)
    readings_in = sum(len(readings_of(payload)) for payload in accepted)
    assert len(rows) == readings_in, "every reading of an accepted message is stored, once"
    good = sum(plainly_good(item, moment) for payload in accepted for item in readings_of(payload))
    assert sum(quality == 1 for quality, _ in rows) == good
    assert all(reason for quality, reason in rows if quality != 1), "every other verdict says why"
    assert not world.task.done()
    event(f"messages rejected: {'some' if rejected else 'none'}")
    event(f"readings stored GOOD: {'some' if good else 'none'}")
    event(f"other verdicts: {'some' if len(rows) > good else 'none'}")
