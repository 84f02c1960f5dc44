"""``smartcity bench alerts``: how long a reading takes to become an alert event, under load.

Measured in one run, on this machine, with a real nats-server and the chosen store:

1. the raw NATS round trip: a message published to JetStream (stored, acknowledged) and
   received by a core subscriber on its subject, p50 and p99: the least any path from a
   reading to an event can cost;
2. the alerts path: ``rules`` threshold rules (one per device and metric of the background
   devices, never crossed) are installed; a separate process publishes background readings
   at ``rate`` readings/s (batches of one device's metrics over several poll steps, as an
   agent sends them); meanwhile this process publishes a probe reading every ``interval``
   on a device whose rule each probe fires or resolves, and times it from publish until its
   ``AlertEvent`` arrives on ``city.alerts.>``. Evaluation runs in this process as the
   service runs it: the durable consumer, one transaction per fetch, the outbox publishing
   events to the ALERTS stream. Rule evaluations/s counts the readings evaluated against a
   rule during the measured window.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from smartcity.runtime.config import AlertsSettings

TARGET_P99_MS = 100.0
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
PROBE_LIMIT = 10_000
"""The probe rule's threshold on flow_rate (0 to 20,000 m3/h): probe k reads
PROBE_LIMIT + k to fire and k to resolve, so that an event names its probe."""
STEPS = 10
"""Poll steps per background batch: a batch holds len(METRICS) x STEPS readings."""

Progress = Callable[[str], None]
T = TypeVar("T")


@dataclass
class AlertsFigures:
    store: str
    rules: int
    rate: float
    """Background readings/s asked for."""
    published_rate: float = 0.0
    """Background readings/s the load process actually published."""
    evaluations_per_second: float = 0.0
    """Rule evaluations/s over the measured window (bounded by the load offered)."""
    capacity_per_second: float = 0.0
    """Rule evaluations per second of evaluation time: what one process could keep up with."""
    raw_ms: list[float] = field(default_factory=list)
    alert_ms: list[float] = field(default_factory=list)
    lost: int = 0
    """Probes whose event did not arrive within the run."""

    @staticmethod
    def percentile(values: Sequence[float], share: float) -> float:
        if not values:
            return float("nan")
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _background(devices: int, seconds: float, rate: float) -> list[tuple[str, bytes]]:
    from smartcity.runtime.subjects import telemetry_subject
    from smartcity.telemetry.v1 import telemetry_pb2

    per_batch = len(METRICS) * STEPS
    batches = max(1, int(rate * seconds / per_batch))
    now = time.time()
    sequences = [0] * devices
    messages = []
    for number in range(batches):
        device = number % devices
        batch = telemetry_pb2.TelemetryBatch(
            field=FIELD, site="bench", device=f"dev-{device}", agent_id="bench"
        )
        first = sequences[device] + 1
        for step in range(STEPS):
            for metric, unit, value in METRICS:
                sequences[device] += 1
                item = batch.readings.add(metric=metric, unit=unit, value=value, quality=1)
                item.sequence = sequences[device]
                moment = now + ((number // devices) * STEPS + step) * 0.1
                item.source_time.FromNanoseconds(int(moment * 1e9))
        batch.batch_id = f"bench/dev-{device}/{first}"
        subject = telemetry_subject(FIELD, "bench", f"dev-{device}")
        messages.append((subject, batch.SerializeToString()))
    return messages


def _write(path: Path, messages: Sequence[tuple[str, bytes]]) -> None:
    with path.open("wb") as out:
        for subject, data in messages:
            encoded = subject.encode()
            out.write(struct.pack(">H", len(encoded)) + encoded)
            out.write(struct.pack(">I", len(data)) + data)


async def _load(url: str, path: Path, per_second: float) -> None:
    """The load process: publish the file's messages at ``per_second`` messages/s."""
    import nats

    from smartcity.bench.publisher import read_messages

    messages = list(read_messages(path))
    connection = await nats.connect(url)
    js = connection.jetstream()
    print("publishing", flush=True)
    started = time.perf_counter()
    pending = []
    for index, (subject, data) in enumerate(messages):
        pending.append(await js.publish_async(subject, data, headers={"Nats-Msg-Id": str(index)}))
        ahead = index / per_second - (time.perf_counter() - started)
        if ahead > 0.005:
            await asyncio.gather(*pending)
            pending.clear()
            await asyncio.sleep(ahead)
    await asyncio.gather(*pending)
    print(f"done {time.perf_counter() - started:.3f}", flush=True)
    await connection.close()


async def _said(process: asyncio.subprocess.Process, what: str, within: float) -> str:
    """The load process's next line, which must start with ``what``; its error otherwise."""
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), within)).decode()
    except TimeoutError:
        process.kill()
        line = ""
    if not line.startswith(what):
        _, errors = await _ended(process)
        error = errors.decode(errors="replace").strip()
        raise RuntimeError(f"the load process did not say {what!r}: {error[-2000:] or line}")
    return line


async def _ended(process: asyncio.subprocess.Process, within: float = 20) -> tuple[bytes, bytes]:
    """What the load process still writes, read to its end while waiting for it to exit (a
    child blocked on a full stderr pipe would never exit otherwise); killed after
    ``within`` seconds."""
    try:
        return await asyncio.wait_for(process.communicate(), within)
    except TimeoutError:
        process.kill()
        return await process.communicate()


async def _within(awaitable: Awaitable[T], seconds: float, what: str) -> T:
    """``awaitable``'s result, or an error naming the step that did not finish: a bench that
    hangs says where instead of sitting silent until its caller gives up."""
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        raise RuntimeError(f"the bench's {what} did not finish within {seconds:g} s") from None


async def _stopped(tasks: Sequence[asyncio.Task[None]], within: float = 15) -> None:
    """Cancel ``tasks`` and wait, with a bound, for them to end; an error names those that
    would not stop."""
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=within)
    if pending:
        names = ", ".join(sorted(task.get_name() for task in pending))
        raise RuntimeError(f"{names} did not stop within {within:g} s of being cancelled")


async def _raw_round_trip(bus: object, samples: int) -> list[float]:
    subject = "city.alerts.bench.raw"  # captured by the ALERTS stream, read by nobody else
    arrived: asyncio.Queue[float] = asyncio.Queue()
    subscription = await bus.subscribe(subject, lambda msg: arrived.put(time.perf_counter()))  # type: ignore[attr-defined]
    figures = []
    try:
        for index in range(samples):
            started = time.perf_counter()
            await bus.jetstream_publish(subject, b"x" * 200, msg_id=f"raw-{index}")  # type: ignore[attr-defined]
            figures.append((await asyncio.wait_for(arrived.get(), 5) - started) * 1000)
    finally:
        await subscription.unsubscribe()
    return figures


async def run_alerts_bench(
    *,
    rate: float = 50_000,
    rules: int = 10_000,
    seconds: float = 10.0,
    interval: float = 0.05,
    store_url: str | None = None,
    progress: Progress = lambda message: None,
) -> AlertsFigures:
    from smartcity.alerts.v1 import alerts_pb2
    from smartcity.bench.postgres import temporary_schema
    from smartcity.fields import load_fields
    from smartcity.readings.decode import tune_for_ingest
    from smartcity.runtime.bus import Bus
    from smartcity.runtime.config import NatsSettings, StreamsSettings
    from smartcity.runtime.nats_server import EmbeddedNats
    from smartcity.runtime.subjects import ALL_ALERTS, telemetry_subject
    from smartcity.services.alerts.app import TelemetryEvaluation, timers
    from smartcity.services.alerts.evaluator import Evaluator
    from smartcity.services.alerts.messages import event_message
    from smartcity.services.alerts.model import Severity
    from smartcity.services.alerts.outbox import Outbox
    from smartcity.services.alerts.rules import Comparison, Rule, Threshold
    from smartcity.services.alerts.store import open_store
    from smartcity.telemetry.v1 import telemetry_pb2

    tune_for_ingest()  # as the alerts process does
    devices = max(1, rules // len(METRICS))
    async with contextlib.AsyncExitStack() as scope:
        root = Path(scope.enter_context(tempfile.TemporaryDirectory(prefix="smartcity-bench-")))
        url = store_url or f"sqlite:///{root / 'alerts.db'}"
        if url.startswith("postgres"):  # a schema of this run's own, dropped afterwards
            url = await scope.enter_async_context(temporary_schema(url, "bench_alerts"))
        figures = AlertsFigures(store=url.split(":", 1)[0], rules=rules, rate=rate)
        server = EmbeddedNats(NatsSettings(data_dir=root / "nats", port=0))
        await server.astart()
        store = open_store(url)
        await store.open()
        bus = await Bus.connect(server.client_settings(), name="bench-alerts")
        tasks: list[asyncio.Task[None]] = []
        try:
            await _within(bus.ensure_streams(StreamsSettings()), 30, "stream setup")
            progress("raw NATS round trip")
            figures.raw_ms = await _within(_raw_round_trip(bus, 200), 60, "raw round trip")
            progress(f"installing {rules:,} rules")
            high = Threshold(Comparison.GT, 1e9)
            async with store.transaction() as w:
                for number in range(devices * len(METRICS)):
                    metric = METRICS[number % len(METRICS)][0]
                    device = f"dev-{number // len(METRICS)}"
                    await w.put_rule(
                        Rule(f"r{number}", f"r{number}", FIELD, high, Severity.INFO,
                             site="bench", device=device, metric=metric)
                    )  # fmt: skip
                await w.put_rule(
                    Rule("probe", "probe", FIELD, Threshold(Comparison.GT, PROBE_LIMIT),
                         Severity.WARNING, device="probe", metric="flow_rate")
                )  # fmt: skip
            # The service's own consumer settings; a short fetch timeout only makes the
            # bench's stop prompt (a fetch returns what is there at once anyway).
            defaults = AlertsSettings().evaluation
            options = AlertsSettings(
                evaluation=defaults.model_copy(update={"fetch_timeout_seconds": 0.05}),
                group_wait_seconds=3600,
            )
            outbox_ready: list[Outbox] = []
            evaluator = Evaluator(
                store, options, on_events=lambda events: [o.wake() for o in outbox_ready]
            )
            outbox = Outbox(store, bus, encode=lambda e: event_message(e).SerializeToString())
            outbox_ready.append(outbox)
            handler = TelemetryEvaluation(bus, evaluator, load_fields(), options)
            tasks = [
                asyncio.create_task(handler.consumer.run(), name="the evaluation consumer"),
                asyncio.create_task(outbox.run(), name="the outbox"),
                asyncio.create_task(timers(evaluator, 1.0), name="the timers"),
            ]
            arrivals: dict[int, float] = {}
            all_arrived = asyncio.Event()
            expected: list[int] = [0]

            async def on_event(msg: object) -> None:
                event = alerts_pb2.AlertEvent.FromString(msg.data)  # type: ignore[attr-defined]
                if event.alert.labels.get("device") == "probe":
                    arrivals[round(event.alert.value) % PROBE_LIMIT] = time.perf_counter()
                    if len(arrivals) >= expected[0] > 0:
                        all_arrived.set()

            await bus.subscribe(ALL_ALERTS, on_event)
            load = root / "load.bin"
            messages = _background(devices, seconds, rate)
            _write(load, messages)
            per_message = len(METRICS) * STEPS
            progress(f"background load {rate:,.0f} readings/s for {seconds:g} s")
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "smartcity.bench.alerts", str(server.url), str(load),
                str(rate / per_message), stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            await _said(process, "publishing", 20)
            evaluated_before = evaluator.readings_evaluated
            busy_before = evaluator.busy_seconds
            started = time.perf_counter()
            sent: dict[int, float] = {}
            number = 0
            subject = telemetry_subject(FIELD, "bench", "probe")
            while time.perf_counter() - started < seconds and number < PROBE_LIMIT - 1:
                number += 1
                probe = telemetry_pb2.TelemetryBatch(
                    field=FIELD, site="bench", device="probe", agent_id="bench",
                    batch_id=f"bench/probe/{number}",
                )  # fmt: skip
                # Odd probes fire, even ones resolve; the value names the probe either way.
                value = float(PROBE_LIMIT + number if number % 2 else number)
                item = probe.readings.add(metric="flow_rate", unit="m3/h", value=value, quality=1)
                item.sequence = number
                item.source_time.FromNanoseconds(time.time_ns())
                sent[number] = time.perf_counter()
                await bus.jetstream_publish(
                    subject, probe.SerializeToString(), msg_id=probe.batch_id, timeout=10
                )
                await asyncio.sleep(interval)
            line = (await _said(process, "done", seconds + 20)).split()
            await _ended(process)
            elapsed = time.perf_counter() - started
            evaluated = evaluator.readings_evaluated - evaluated_before
            figures.evaluations_per_second = evaluated / elapsed
            busy = evaluator.busy_seconds - busy_before
            figures.capacity_per_second = evaluated / busy if busy else 0.0
            if len(line) == 2:
                figures.published_rate = len(messages) * per_message / float(line[1])
            expected[0] = len(sent)
            if len(arrivals) < len(sent):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(all_arrived.wait(), 10 + seconds)
            figures.alert_ms = [
                (arrivals[n] - sent[n]) * 1000 for n in sorted(sent) if n in arrivals
            ]
            figures.lost = len(sent) - len(figures.alert_ms)
        finally:
            try:
                await _stopped(tasks)
            finally:
                with contextlib.suppress(Exception):
                    await _within(bus.close(), 15, "NATS connection's close")
                await _within(store.close(), 15, "store's close")
                await _within(server.astop(), 15, "nats-server's stop")
    return figures


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


if __name__ == "__main__":
    asyncio.run(_load(sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])))
