"""VN_AQI through ingest, on both backends: each completed hour of an air station is derived
once, from the whole hour as stored, also when hours of backlog arrive at once after an
outage and when two replicas share the work. The expected values come from the plugin's
``derive`` handed hourly means computed here from the published readings."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import pytest
from monitoring_support import city_fields, opened_store
from support import eventually

from smartcity.fields import HourlyHistory, Quality
from smartcity.runtime.bus import Bus
from smartcity.runtime.config import ConsumerSettings, MonitoringSettings, StreamsSettings
from smartcity.runtime.nats_server import EmbeddedNats
from smartcity.services.monitoring.hourly import HourlyDeriver
from smartcity.services.monitoring.ingest import TelemetryIngest
from smartcity.services.monitoring.model import (
    HOUR,
    MICROS,
    MINUTE,
    Aggregation,
    RangeQuery,
    Selector,
)
from smartcity.services.monitoring.store import TimeSeriesStore
from smartcity.telemetry.v1 import telemetry_pb2

SITE, DEVICE = "lien-chieu", "air-1"
START = 1_795_305_600 * MICROS - 6 * HOUR  # six hours before 2026-11-22T00:00Z
HOURS = 6
EVERY = 5 * MINUTE


def settings(fetch_batch: int) -> MonitoringSettings:
    return MonitoringSettings(
        max_future_skew_seconds=10 * 365 * 86400,  # the test's clock is not the readings'
        ingest=ConsumerSettings(
            durable="monitoring", fetch_batch=fetch_batch, fetch_timeout_seconds=0.2
        ),
    )


def pm(moment: int) -> tuple[float, float]:
    """PM2.5 and PM10 at ``moment``: rising through the morning, a different mean each hour."""
    step = (moment - START) // EVERY
    return 20.0 + step * 0.75, 45.0 + (step % 7) * 3.0


def batches() -> list[telemetry_pb2.TelemetryBatch]:
    """One batch per five minutes over six hours and one reading into the seventh."""
    made = []
    sequence = 0
    for moment in range(START, START + HOURS * HOUR + EVERY, EVERY):
        batch = telemetry_pb2.TelemetryBatch(
            field="environment",
            site=SITE,
            device=DEVICE,
            agent_id="edge-1",
            batch_id=f"{SITE}/{DEVICE}/{sequence + 1}",
        )
        for metric, value in zip(("pm2_5", "pm10"), pm(moment), strict=True):
            sequence += 1
            reading = batch.readings.add(
                metric=metric, unit="ug/m3", value=value, quality=1, sequence=sequence
            )
            reading.source_time.FromMicroseconds(moment)
        made.append(batch)
    return made


def expected() -> dict[int, float]:
    """VN_AQI per hour end, from hourly means computed here."""
    means: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for batch in batches():
        for reading in batch.readings:
            hour = reading.source_time.ToMicroseconds() // HOUR * HOUR
            means[reading.metric][hour].append(reading.value)
    field = city_fields()["environment"]
    answers = {}
    for end in range(START + HOUR, START + HOURS * HOUR + 1, HOUR):
        window = {
            metric: [
                statistics.fmean(by_hour[h]) if by_hour.get(h) else None
                for h in range(end - 24 * HOUR, end, HOUR)
            ]
            for metric, by_hour in means.items()
        }
        history = HourlyHistory(datetime.fromtimestamp(end / MICROS, UTC), window)
        (aqi,) = [r for r in field.derive(SITE, DEVICE, [], hourly=history) if r.metric == "vn_aqi"]
        if aqi.quality is Quality.GOOD:  # the first hours lack the NowCast's history
            answers[end] = float(aqi.value)
    assert len(answers) >= HOURS - 2
    return answers


async def _reads(store: TimeSeriesStore) -> tuple[dict[int, int], dict[int, float]]:
    """The vn_aqi roll-up counts and raw values by hour end, read one after the other (a
    replica may store an hour in between)."""
    selector = Selector("environment", SITE, DEVICE, "vn_aqi")
    span = (START, START + 48 * HOUR)
    per_hour = await store.range(RangeQuery(selector, *span, HOUR, Aggregation.COUNT))
    counts = {b.start: b.count for series in per_hour.series for b in series.buckets}
    raw = await store.range(RangeQuery(selector, *span, 1, Aggregation.LAST))
    found = {b.start: b.value for series in raw.series for b in series.buckets}
    return counts, found


async def hours_stored(store: TimeSeriesStore) -> int:
    """How many hours are stored, raw and in the roll-up alike (for polling)."""
    counts, found = await _reads(store)
    return len(found) if sorted(found) == sorted(counts) else -1


async def vn_aqi(store: TimeSeriesStore) -> dict[int, float]:
    """The stored vn_aqi values by hour end, once nothing is being stored; an hour counted
    twice in the roll-up fails."""
    counts, found = await _reads(store)
    assert all(count == 1 for count in counts.values()), f"an hour stored twice: {counts}"
    assert sorted(found) == sorted(counts)
    return found


@contextlib.asynccontextmanager
async def replicas(
    nats: EmbeddedNats, url: str, count: int, fetch_batch: int
) -> AsyncIterator[list[TelemetryIngest]]:
    async with contextlib.AsyncExitStack() as stack:
        running: list[TelemetryIngest] = []
        tasks: list[asyncio.Task[None]] = []
        for number in range(count):
            bus = await Bus.connect(nats.client_settings(), name=f"replica-{number}")
            stack.push_async_callback(bus.close)
            store = await stack.enter_async_context(opened_store(url))
            ingest = TelemetryIngest(bus, store, city_fields(), settings(fetch_batch))
            running.append(ingest)
            tasks.append(asyncio.create_task(ingest.run()))
        try:
            yield running
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def publish_backlog(nats: EmbeddedNats, made: Sequence[telemetry_pb2.TelemetryBatch]) -> None:
    """Six hours an agent buffered during an outage, replayed at once, in order."""
    async with await Bus.connect(nats.client_settings(), name="agent") as agent:
        await agent.ensure_streams(StreamsSettings())
        for batch in made:
            await agent.jetstream_publish(
                f"city.telemetry.environment.{SITE}.{DEVICE}", batch.SerializeToString()
            )


async def test_a_backlog_yields_every_hour_once_from_the_whole_hour(
    nats_server: EmbeddedNats, store_url: str
) -> None:
    await publish_backlog(nats_server, batches())
    want = expected()
    async with replicas(nats_server, store_url, 1, fetch_batch=4) as (ingest,):
        await eventually(lambda: ingest.hourly.stats.hours_derived == HOURS, within=30)
        async with opened_store(store_url) as store:
            stored = await vn_aqi(store)
    assert stored == pytest.approx(want)


@pytest.mark.postgres
async def test_two_replicas_store_each_hour_once(
    nats_server: EmbeddedNats, postgres_url: str
) -> None:
    await publish_backlog(nats_server, batches())
    want = expected()
    async with replicas(nats_server, postgres_url, 2, fetch_batch=2) as running:
        await eventually(
            lambda: sum(r.stats.batches_written for r in running) == len(batches()), within=30
        )
        assert all(r.stats.batches_written for r in running), "one replica did it all"
        async with opened_store(postgres_url) as store:

            async def all_hours() -> bool:
                return await hours_stored(store) == len(want)

            await eventually(all_hours, within=30, what="every hour derived")
            stored = await vn_aqi(store)
    assert stored == pytest.approx(want)


async def test_a_restarted_replica_derives_the_hours_it_had_not_finished(
    nats_server: EmbeddedNats, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = batches()
    await publish_backlog(nats_server, made)
    want = expected()

    async def stopped_before_deriving(self: HourlyDeriver) -> None:
        await asyncio.Event().wait()

    # The first run stores everything but is stopped before any hour is derived.
    with monkeypatch.context() as patched:
        patched.setattr(HourlyDeriver, "run", stopped_before_deriving)
        async with replicas(nats_server, store_url, 1, fetch_batch=8) as (ingest,):
            await eventually(lambda: ingest.stats.batches_written == len(made), within=30)
    async with opened_store(store_url) as store:
        assert await vn_aqi(store) == {}
    # One more batch after the restart: the replica meets the device again and looks back.
    late = telemetry_pb2.TelemetryBatch()
    late.CopyFrom(made[-1])
    late.batch_id = f"{SITE}/{DEVICE}/late"
    for reading in late.readings:
        reading.sequence += 1000
        reading.source_time.FromMicroseconds(reading.source_time.ToMicroseconds() + MINUTE)
    await publish_backlog(nats_server, [late])
    async with replicas(nats_server, store_url, 1, fetch_batch=8) as (ingest,):
        await eventually(lambda: ingest.hourly.stats.hours_derived == HOURS, within=30)
        async with opened_store(store_url) as store:
            stored = await vn_aqi(store)
    assert stored == pytest.approx(want)
