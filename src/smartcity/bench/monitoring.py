"""``smartcity bench monitoring``: readings/s from NATS into storage, and query latency.

Measured in one run, on this machine:

1. the transport: plain nats-py publishing the benchmark's batches to JetStream and a pull
   consumer fetching and acknowledging them, with nothing else done;
2. the storage engines alone (:mod:`.ceilings`): the very rows ingest writes to ``points``,
   by a plain ``executemany`` into SQLite and a binary ``COPY`` into PostgreSQL, in
   transactions of one ingest fetch each;
3. ingest end to end, per backend: the same batches published while the monitoring ingest
   consumes them (decode, a verdict on every reading, derived values, one transaction per
   fetch with points, latest values, roll-ups, batch ids and the device registry, then the
   acknowledgement), with one live stream that selects every reading and ten that select
   other devices attached throughout; the clock runs from the end of the warm-up (the first
   tenth of the batches) until the last batch is durable. Its ratio to (2) is the figure to
   compare across machines. (2) and (3) are measured one after the other in each of
   ``rounds`` rounds, each ingest into an empty store, and the medians are reported with
   the spread of the per-round ratios: on a small machine one run of either varies by a
   fifth;
4. query latency, per backend, over a store preloaded with ``query_points`` points (10
   million by default): p50 and p99 of "latest values of a device" and of range queries over
   a day (1 h steps, from the roll-up) and over an hour (raw, 1 min steps).

Batches are published from a separate process, as agents publish, so that the process being
measured does not also pay for producing its input. Only the devices' own readings are
counted, not the values plugins derive from them.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from smartcity.bench.ceilings import point_rows, postgres_copy_rate, sqlite_executemany_rate
from smartcity.bench.postgres import temporary_schema
from smartcity.bench.publisher import write_messages
from smartcity.runtime.config import MonitoringSettings
from smartcity.services.monitoring.model import (
    HOUR,
    MICROS,
    MINUTE,
    Aggregation,
    IngestBatch,
    Quality,
    RangeQuery,
    Selector,
    StoredReading,
)
from smartcity.services.monitoring.store import TimeSeriesStore, open_store
from smartcity.telemetry.v1 import telemetry_pb2

TARGET_RATIO = {"sqlite": 0.60, "postgresql": 0.50}
"""Ingest as a share of the storage engine alone doing the same inserts."""
TARGET_P99_MS = 20.0
NON_MATCHING_STREAMS = 10

FIELD = "water_supply"
METRICS = (
    ("flow_rate", "m3/h", 800.0),
    ("pressure", "bar", 3.0),
    ("tank_level", "m", 4.0),
    ("turbidity", "NTU", 0.5),
    ("ph", "pH", 7.2),
    ("residual_chlorine", "mg/L", 0.5),
    ("conductivity", "uS/cm", 300.0),
    ("water_temperature", "degC", 27.0),
)

Progress = Callable[[str], None]


@dataclass
class BackendFigures:
    name: str
    ingest_readings_per_second: float = 0.0
    """The median over the rounds."""
    engine_readings_per_second: float = 0.0
    """The storage engine alone writing the same ``points`` rows (see :mod:`.ceilings`);
    the median over the rounds."""
    ratios: list[float] = field(default_factory=list)
    """Ingest over the engine, one per round (each round measures both, one after the
    other, so that a machine busy with something else weighs on both sides alike)."""
    streamed: int = 0
    """Readings the matching live stream received during the ingest run."""
    latest_ms: tuple[float, float] = (0.0, 0.0)
    range_day_ms: tuple[float, float] = (0.0, 0.0)
    range_hour_ms: tuple[float, float] = (0.0, 0.0)
    preloaded: int = 0
    preload_readings_per_second: float = 0.0


@dataclass
class MonitoringBenchResult:
    batches: int
    readings: int
    ceiling_readings_per_second: float
    backends: list[BackendFigures] = field(default_factory=list)


def make_payloads(devices: int, batches: int, per_batch: int) -> list[tuple[str, bytes]]:
    """``(subject, TelemetryBatch)`` for ``devices`` water stations, each device's batches in
    sequence order and the devices interleaved, as agents polling at once publish them."""
    start = int(time.time()) - batches * per_batch
    streams = []
    for device in range(devices):
        name = f"station-{device:03d}"
        subject = f"city.telemetry.{FIELD}.bench.{name}"
        sequence = 1
        payloads = []
        for _ in range(batches):
            batch = telemetry_pb2.TelemetryBatch(
                field=FIELD,
                site="bench",
                device=name,
                agent_id="bench",
                batch_id=f"bench/{name}/{sequence}",
                first_sequence=sequence,
                last_sequence=sequence + per_batch - 1,
            )
            for offset in range(per_batch):
                metric, unit, base = METRICS[offset % len(METRICS)]
                moment = start + sequence // len(METRICS)
                reading = batch.readings.add(
                    metric=metric,
                    unit=unit,
                    value=base * (1 + 0.01 * ((sequence * 7) % 13)),
                    quality=1,
                    sequence=sequence,
                )
                reading.read_time.seconds = moment
                sequence += 1
            payloads.append((subject, batch.SerializeToString()))
        streams.append(payloads)
    return [payload for round_ in zip(*streams, strict=True) for payload in round_]


async def _publish(url: str, messages: Path, started: asyncio.Future[float]) -> None:
    """Publish the prepared messages from another process (see ``bench.publisher``);
    ``started`` gets the moment the first message goes out."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "smartcity.bench.publisher",
        url,
        str(messages),
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    await process.stdout.readline()
    started.set_result(time.perf_counter())
    if await process.wait() != 0:
        raise RuntimeError("the benchmark's publisher failed")


async def _ceiling(
    payloads: Sequence[tuple[str, bytes]], messages: Path, per_batch: int, workdir: Path
) -> float:
    from nats.js.api import AckPolicy, ConsumerConfig

    from smartcity.runtime.bus import TELEMETRY_STREAM, Bus
    from smartcity.runtime.config import NatsSettings, StreamsSettings
    from smartcity.runtime.nats_server import EmbeddedNats
    from smartcity.runtime.subjects import ALL_TELEMETRY

    async with EmbeddedNats(NatsSettings(data_dir=workdir / "ceiling", port=0)) as nats:
        bus = await Bus.connect(nats.client_settings(), name="ceiling")
        await bus.ensure_streams(StreamsSettings())
        sub = await bus.js.pull_subscribe(
            ALL_TELEMETRY,
            durable="ceiling",
            stream=TELEMETRY_STREAM,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_ack_pending=100_000),
        )
        began: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        publishing = asyncio.create_task(_publish(nats.url, messages, began))
        received = 0
        while received < len(payloads):
            with contextlib.suppress(TimeoutError):
                for msg in await sub.fetch(256, timeout=1):
                    telemetry_pb2.TelemetryBatch.FromString(msg.data)
                    await msg.ack()
                    received += 1
        elapsed = time.perf_counter() - await began
        await publishing
        await bus.close()
    return received * per_batch / elapsed


async def _ingest_rate(
    url: str,
    payloads: Sequence[tuple[str, bytes]],
    messages: Path,
    per_batch: int,
    workdir: Path,
) -> tuple[float, int]:
    """Readings/s after the warm-up, and the readings the matching live stream got."""
    from smartcity.fields import load_fields
    from smartcity.readings.decode import tune_for_ingest
    from smartcity.runtime.bus import Bus
    from smartcity.runtime.config import MonitoringSettings, NatsSettings, StreamsSettings
    from smartcity.runtime.nats_server import EmbeddedNats
    from smartcity.services.monitoring.ingest import IngestStats, TelemetryIngest
    from smartcity.services.monitoring.live import LiveHub

    tune_for_ingest()  # as the service process does

    fields = load_fields()
    warm_up = max(1, len(payloads) // 10)
    hub = LiveHub(max_pending=1_000_000)
    watching = hub.subscribe(Selector(field=FIELD))
    others = [
        hub.subscribe(Selector(field=FIELD, device=f"elsewhere-{n}"))
        for n in range(NON_MATCHING_STREAMS)
    ]
    streamed = 0

    async def watch() -> None:  # a client reading its stream as fast as it comes
        nonlocal streamed
        while True:
            streamed += len(await watching.next_chunk(10_000))

    async with (
        _opened(url) as store,
        EmbeddedNats(
            NatsSettings(data_dir=workdir / f"nats-{uuid.uuid4().hex[:6]}", port=0)
        ) as nats,
    ):
        bus = await Bus.connect(nats.client_settings(), name="bench")
        await bus.ensure_streams(StreamsSettings())
        done = asyncio.Event()
        marks: dict[str, float] = {}

        def stored(stats: IngestStats) -> None:  # called after each durable write
            # batches, not readings: derived readings are written too and must not count
            if "warm" not in marks and stats.batches_written >= warm_up:
                marks["warm"] = time.perf_counter()
                marks["warm_batches"] = stats.batches_written
            if stats.batches_written >= len(payloads):
                marks["done"] = time.perf_counter()
                done.set()

        ingest = TelemetryIngest(
            bus, store, fields, MonitoringSettings(), live=hub, on_stored=stored
        )
        consuming = asyncio.create_task(ingest.run())
        reading = asyncio.create_task(watch())
        began: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        await _publish(nats.url, messages, began)
        await done.wait()
        consuming.cancel()
        reading.cancel()
        await asyncio.gather(consuming, reading, return_exceptions=True)
        await bus.close()
    for subscription in (watching, *others):
        subscription.close()
    measured = (len(payloads) - marks["warm_batches"]) * per_batch
    return measured / (marks["done"] - marks["warm"]), streamed


@contextlib.asynccontextmanager
async def _opened(url: str) -> AsyncIterator[TimeSeriesStore]:
    store = open_store(url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def _preload(store: TimeSeriesStore, points: int, progress: Progress) -> tuple[int, float]:
    """``points`` readings: 100 devices x 10 metrics every 10 s, ending now."""
    devices, metrics, spacing = 100, 10, 10 * MICROS
    per_series = max(1, points // (devices * metrics))
    end = int(time.time()) * MICROS // MINUTE * MINUTE
    start = end - per_series * spacing
    written = 0
    started = time.perf_counter()
    chunk = 50  # time steps per batch: 500 readings a batch
    for step in range(0, per_series, chunk):
        batches = []
        for device in range(devices):
            readings = [
                StoredReading(
                    f"m{metric}",
                    "u",
                    float((device + metric + moment) % 97),
                    Quality.GOOD,
                    "",
                    start + moment * spacing,
                    moment * metrics + metric,
                )
                for moment in range(step, min(per_series, step + chunk))
                for metric in range(metrics)
            ]
            batches.append(
                IngestBatch(
                    f"load/d{device}/{step}",
                    "bench",
                    "load",
                    f"d{device:03d}",
                    "bench",
                    readings,
                    start + step * spacing,
                )
            )
        written += sum(len(b.readings) for b in batches)
        await store.write(batches)
        if step % (chunk * 20) == 0:
            progress(f"preloading {store.url}: {written:,} of {points:,} points")
    return written, written / (time.perf_counter() - started)


async def _latency(store: TimeSeriesStore, end: int) -> tuple[tuple, tuple, tuple]:
    def percentiles(samples: list[float]) -> tuple[float, float]:
        ordered = sorted(samples)
        return statistics.median(ordered), ordered[int(len(ordered) * 0.99) - 1]

    latest, day, hour = [], [], []
    for n in range(200):
        device = f"d{n % 100:03d}"
        t0 = time.perf_counter()
        await store.latest(Selector(site="load", device=device))
        latest.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        await store.range(
            RangeQuery(
                Selector(site="load", device=device, metric=f"m{n % 10}"),
                end - 24 * HOUR,
                end,
                HOUR,
                Aggregation.AVG,
            )
        )
        day.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        await store.range(
            RangeQuery(
                Selector(site="load", device=device, metric=f"m{n % 10}"),
                end - HOUR,
                end,
                MINUTE,
                Aggregation.MAX,
            )
        )
        hour.append((time.perf_counter() - t0) * 1000)
    return percentiles(latest), percentiles(day), percentiles(hour)


async def run_monitoring_bench_async(
    *,
    devices: int,
    batches: int,
    per_batch: int,
    query_points: int,
    postgres: str | None,
    progress: Progress,
    rounds: int = 5,
) -> MonitoringBenchResult:
    payloads = make_payloads(devices, batches, per_batch)
    readings = len(payloads) * per_batch
    with tempfile.TemporaryDirectory(prefix="smartcity-bench-") as folder:
        workdir = Path(folder)
        messages = workdir / "messages.bin"
        write_messages(messages, payloads)
        progress(f"ceiling: plain nats-py, {len(payloads):,} batches")
        result = MonitoringBenchResult(
            len(payloads), readings, await _ceiling(payloads, messages, per_batch, workdir)
        )
        backends = [("sqlite", f"sqlite:///{workdir / 'ingest.db'}")]
        if postgres:
            backends.append(("postgresql", postgres))
        rows = point_rows(payloads)
        per_transaction = MonitoringSettings().ingest.fetch_batch * per_batch
        for name, base in backends:
            figures = BackendFigures(name)
            async with contextlib.AsyncExitStack() as scope:
                url = base
                if name == "postgresql":
                    url = await scope.enter_async_context(temporary_schema(base))
                engine_rates, ingest_rates = [], []
                for round_ in range(1, rounds + 1):
                    of = f"round {round_} of {rounds}"
                    progress(f"{name}, {of}: the engine alone, {len(rows):,} rows")
                    if name == "sqlite":
                        engine = await sqlite_executemany_rate(
                            workdir / f"raw-{round_}.db", rows, per_transaction
                        )
                    else:
                        async with temporary_schema(base) as raw_url:
                            engine = await postgres_copy_rate(raw_url, rows, per_transaction)
                    progress(f"{name}, {of}: ingest of {readings:,} readings")
                    async with contextlib.AsyncExitStack() as fresh:
                        # Every round ingests into an empty store, as the first does.
                        ingest_url = (
                            f"sqlite:///{workdir / f'ingest-{round_}.db'}"
                            if name == "sqlite"
                            else await fresh.enter_async_context(temporary_schema(base))
                        )
                        ingest, figures.streamed = await _ingest_rate(
                            ingest_url, payloads, messages, per_batch, workdir
                        )
                    engine_rates.append(engine)
                    ingest_rates.append(ingest)
                    figures.ratios.append(ingest / engine)
                figures.engine_readings_per_second = statistics.median(engine_rates)
                figures.ingest_readings_per_second = statistics.median(ingest_rates)
                query_url = f"sqlite:///{workdir / 'query.db'}" if name == "sqlite" else url
                async with _opened(query_url) as store:
                    figures.preloaded, figures.preload_readings_per_second = await _preload(
                        store, query_points, progress
                    )
                    progress(f"{name}: query latency")
                    end = int(time.time()) * MICROS // MINUTE * MINUTE
                    figures.latest_ms, figures.range_day_ms, figures.range_hour_ms = await _latency(
                        store, end
                    )
            result.backends.append(figures)
    return result
