"""Scale-out: two replicas share the durable consumer and one PostgreSQL; whichever gets a
device's batches and whichever runs the timers, every alert fires once: counted inside two
evaluators (so that both are seen to work), and in the ALERTS stream of two service
processes as ``smartcity serve alerts`` runs them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from pathlib import Path

import pytest
from alerts_support import SECOND, city_fields, install, opened_store, rule, settings
from support import eventually
from test_end_to_end import _alert_events, _count, _create_rule, _settings, running_alerts

from smartcity.alerts.v1 import alerts_pb2 as pb
from smartcity.fields import FieldHost
from smartcity.runtime.bus import Bus
from smartcity.runtime.config import ConsumerSettings, StreamsSettings
from smartcity.runtime.nats_server import EmbeddedNats
from smartcity.runtime.subjects import telemetry_subject
from smartcity.services.alerts.app import TelemetryEvaluation, timers
from smartcity.services.alerts.evaluator import Evaluator
from smartcity.services.alerts.rules import NoData
from smartcity.services.alerts.store import AlertStore
from smartcity.telemetry.v1 import telemetry_pb2

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

DEVICES = 12
READINGS = 8


def _batch(device: int, sequence: int, value: float, at: float) -> telemetry_pb2.TelemetryBatch:
    batch = telemetry_pb2.TelemetryBatch(
        field="water_supply",
        site="cau-do",
        device=f"tb-{device}",
        agent_id="edge-1",
        batch_id=f"cau-do/tb-{device}/{sequence}",
    )
    item = batch.readings.add(metric="turbidity", value=value, unit="NTU", quality=1)
    item.sequence = sequence
    item.source_time.FromNanoseconds(int(at * 1e9))
    return batch


async def _events(store: AlertStore) -> Counter[tuple[str, str, str]]:
    return Counter(
        (e.alert.labels["device"], e.alert.rule_id, e.type.value)
        for e in await store.events_after(0, 10_000)
    )


async def test_two_replicas_never_both_fire_one_alert(
    nats_server: EmbeddedNats, postgres_url: str
) -> None:
    agent = await Bus.connect(nats_server.client_settings(), name="agent")
    await agent.ensure_streams(StreamsSettings())
    options = settings(
        evaluation=ConsumerSettings(durable="alerts", fetch_batch=3, fetch_timeout_seconds=0.1)
    )
    async with opened_store(postgres_url) as first, opened_store(postgres_url) as second:
        await install(first, rule(), rule("offline", NoData(2 * SECOND), metric=""))
        buses = [await Bus.connect(nats_server.client_settings(), name=f"r{n}") for n in (1, 2)]
        evaluators = [Evaluator(store, options) for store in (first, second)]
        handlers = [
            TelemetryEvaluation(bus, evaluator, _fields(), options)
            for bus, evaluator in zip(buses, evaluators, strict=True)
        ]
        tasks = [asyncio.create_task(h.consumer.run()) for h in handlers]
        tasks += [asyncio.create_task(timers(e, 0.05)) for e in evaluators]
        try:
            now = time.time()
            for sequence in range(1, READINGS + 1):
                value = 3.0 if sequence >= 3 else 1.0  # fires at the third reading, stays
                for device in range(DEVICES):
                    batch = _batch(device, sequence, value, now + sequence * 0.01)
                    await agent.jetstream_publish(
                        telemetry_subject("water_supply", "cau-do", f"tb-{device}"),
                        batch.SerializeToString(),
                        msg_id=batch.batch_id,
                    )

            async def all_offline() -> bool:
                counted = await _events(first)
                return sum(1 for k in counted if k[1] == "offline") >= DEVICES

            await eventually(all_offline, within=30, what="every device offline")
            # Both replicas' timers run on: a few more rounds each must fire nothing again.
            marks = [e.ticks + 5 for e in evaluators]
            await eventually(
                lambda: all(e.ticks >= m for e, m in zip(evaluators, marks, strict=True)),
                what="five more ticks on each replica",
            )
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        counted = await _events(first)
        expected = Counter(
            {(f"tb-{d}", "turbidity_high", "firing"): 1 for d in range(DEVICES)}
            | {(f"tb-{d}", "offline", "firing"): 1 for d in range(DEVICES)}
        )
        assert counted == expected
        handled = [h.consumer.stats.handled for h in handlers]
        assert sum(handled) == DEVICES * READINGS
        assert all(handled), f"one replica did it all: {handled}"
        revisions = [e.revision for e in await first.events_after(0, 10_000)]
        assert revisions == sorted(set(revisions))
        for bus in buses:
            await bus.close()
    await agent.close()


def _fields() -> FieldHost:
    return city_fields()


async def test_two_service_processes_publish_each_event_once(
    nats_server: EmbeddedNats, postgres_url: str, tmp_path: Path
) -> None:
    agent = await Bus.connect(nats_server.client_settings(), name="agent")
    await agent.ensure_streams(StreamsSettings())
    first = _settings(nats_server, postgres_url, tmp_path / "one")
    second = _settings(nats_server, postgres_url, tmp_path / "two")
    try:
        async with running_alerts(first) as one, running_alerts(second):
            await _create_rule(one.grpc_address)
            now = time.time()
            for sequence in range(1, 5):
                for device in range(DEVICES):
                    batch = _batch(device, sequence, 3.0 if sequence >= 3 else 1.0, now)
                    await agent.jetstream_publish(
                        telemetry_subject("water_supply", "cau-do", f"tb-{device}"),
                        batch.SerializeToString(),
                        msg_id=batch.batch_id,
                    )
            await eventually(lambda: _count(agent, DEVICES), what="one firing per device")
            # Back below the threshold on one device: exactly one more event.
            back = _batch(0, 5, 1.0, now + 1)
            await agent.jetstream_publish(
                telemetry_subject("water_supply", "cau-do", "tb-0"),
                back.SerializeToString(),
                msg_id=back.batch_id,
            )
            await eventually(lambda: _count(agent, DEVICES + 1), what="the resolution")
        events = Counter((e.alert.labels["device"], e.type) for _, e in await _alert_events(agent))
        expected = Counter({(f"tb-{d}", pb.AlertEvent.TYPE_FIRING): 1 for d in range(DEVICES)})
        expected[("tb-0", pb.AlertEvent.TYPE_RESOLVED)] = 1
        assert events == expected
    finally:
        await agent.close()


async def test_a_rule_deleted_while_another_replica_fires_it_leaves_no_alert_open(
    postgres_url: str,
) -> None:
    """Replica B's evaluation opens an alert of a rule and has not committed when replica
    A deletes the rule: A waits for B's partition, then resolves that alert too, rather
    than leaving it firing for a rule that no longer exists."""
    import asyncpg
    from alerts_support import batch, reading

    from smartcity.services.alerts.store import AlertFilter

    reached, release = asyncio.Event(), asyncio.Event()
    async with opened_store(postgres_url) as first, opened_store(postgres_url) as second:
        await install(first, rule())
        plain = second.transaction

        @contextlib.asynccontextmanager
        async def held(partitions=()):  # B's transactions stop before they commit
            async with plain(partitions) as w:
                yield w
                reached.set()
                await release.wait()

        second.transaction = held  # type: ignore[method-assign]
        a, b = Evaluator(first, settings()), Evaluator(second, settings())
        now = int(time.time()) * SECOND
        firing = asyncio.create_task(b.evaluate([batch([reading("turbidity", 3.0, now, 1)])]))
        await asyncio.wait_for(reached.wait(), 10)

        async def delete(w) -> None:
            await w.delete_rule("turbidity_high")

        deleting = asyncio.create_task(a.retire("turbidity_high", "the rule was deleted", delete))
        watcher = await asyncpg.connect(postgres_url)
        try:

            async def waits_or_done() -> bool:
                waiting = await watcher.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                )
                return deleting.done() or waiting > 0

            await eventually(waits_or_done, what="the deletion waits for B's partition")
        finally:
            await watcher.close()
        release.set()
        (event,) = await firing
        assert event.type.value == "firing"
        await asyncio.wait_for(deleting, 10)
        left = await first.alerts(AlertFilter(rule_id="turbidity_high"), None, 10)
        assert [a for a in left if a.state.value != "resolved"] == []
        logged = [(e.alert.fingerprint, e.type.value) for e in await first.events_after(0, 100)]
        assert logged == [
            (event.alert.fingerprint, "firing"),
            (event.alert.fingerprint, "resolved"),
        ]
        assert await first.rule("turbidity_high") is None
