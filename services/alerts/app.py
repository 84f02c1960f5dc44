"""The alerts process: storage, the plugins' rules, evaluation of the telemetry stream, the
timers, agent heartbeats, the outbox and the gRPC API, as a
:class:`~smartcity.runtime.service.ServiceSpec` that the runtime runs.

Telemetry comes through the runtime's consumer (durable ``alerts.evaluation.durable``,
default ``alerts``) on the TELEMETRY stream, shared by every replica; a message that can
never be a batch is dead-lettered with the reason; every reading of a batch is judged by
monitoring's decoder (:meth:`smartcity.fields.Metric.check`), so a reading a rule sees has
the same verdict that monitoring stored. Replicas share one PostgreSQL and evaluate devices
partition by partition (see :mod:`.store.base`). An alert event is published in the trace of
the reading that raised it (:class:`~.outbox.EventTraces`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from opentelemetry import context as otel_context
from opentelemetry.context import Context

from smartcity.fields import FieldHost, load_fields
from smartcity.readings.decode import TelemetryDecoder, tune_for_ingest
from smartcity.readings.model import IngestBatch
from smartcity.runtime.bus import TELEMETRY_STREAM, Bus
from smartcity.runtime.config import AlertsSettings, Settings
from smartcity.runtime.consumer import JetStreamConsumer
from smartcity.runtime.logs import get_logger
from smartcity.runtime.service import ServiceContext, ServiceParts, ServiceSpec
from smartcity.runtime.storage.urls import store_url as default_store_url
from smartcity.runtime.subjects import AGENTS, ALL_ALERTS, ALL_TELEMETRY, SubjectError, token
from smartcity.services.alerts.defaults import plugin_rules
from smartcity.services.alerts.evaluator import Evaluator
from smartcity.services.alerts.messages import event_message
from smartcity.services.alerts.model import MICROS, Event
from smartcity.services.alerts.outbox import EventTraces, Outbox
from smartcity.services.alerts.server import DEFAULT_PORT, SERVICE_NAME, servicer
from smartcity.services.alerts.service import AlertsService
from smartcity.services.alerts.store import StoreError, StoreUnavailable, open_store
from smartcity.telemetry.v1 import telemetry_pb2

__all__ = ["ALERTS", "Heartbeats", "TelemetryEvaluation", "store_url", "timers"]

_log = get_logger(__name__)


def store_url(settings: Settings) -> str:
    """The configured storage URL, or SQLite in the data folder."""
    return default_store_url(settings.alerts.store_url, settings.data_dir, "alerts")


@dataclass(frozen=True, slots=True)
class TracedBatch:
    """A decoded batch and the trace context of the message it came in."""

    batch: IngestBatch
    context: Context


class TelemetryEvaluation:
    """The consumer's handler: decode a telemetry message, evaluate a fetch in one
    transaction. Commits run one at a time and in fetch order, so that a later fetch never
    moves a device's sequence past readings an earlier one has not evaluated yet. The events
    a fetch raises are handed to ``traces`` with the context of the message that raised
    each."""

    def __init__(
        self,
        bus: Bus,
        evaluator: Evaluator,
        fields: FieldHost,
        settings: AlertsSettings,
        *,
        traces: EventTraces | None = None,
    ) -> None:
        self.evaluator = evaluator
        self.decoder = TelemetryDecoder(fields)
        self.traces = traces if traces is not None else EventTraces()
        self._order = asyncio.Lock()
        self.consumer: JetStreamConsumer[TracedBatch] = JetStreamConsumer(
            bus,
            stream=TELEMETRY_STREAM,
            subject=ALL_TELEMETRY,
            settings=settings.evaluation,
            handler=self,
        )

    def decode(self, msg: Msg) -> TracedBatch:
        # The consumer makes the message's span current while it decodes.
        return TracedBatch(self.decoder.decode(msg), otel_context.get_current())

    async def commit(self, items: Sequence[TracedBatch]) -> None:
        async with self._order:
            self.traces.expect(
                ((b.field, b.site, b.device), *_time_span(b), item.context)
                for item in items
                if (b := item.batch).readings
            )
            events: Sequence[Event] = ()
            try:
                events = await self.evaluator.evaluate([item.batch for item in items])
            finally:
                self.traces.settle(events)

    def is_transient(self, error: Exception) -> bool:
        return isinstance(error, StoreUnavailable)


def _time_span(batch: IngestBatch) -> tuple[int, int]:
    """The first and last time of the batch's readings (µs)."""
    times = [reading.time for reading in batch.readings]
    return min(times), max(times)


class Heartbeats:
    """Agent heartbeats (core NATS, ``city.agents.<site>.<agent>``): the devices an agent
    polls start their no-data timers even before their first reading. A heartbeat that
    cannot be read is dropped with a log line; only fresh ones matter."""

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator
        self.received = 0
        self.refused = 0

    async def __call__(self, msg: Msg) -> None:
        try:
            beat = telemetry_pb2.AgentHeartbeat.FromString(msg.data)
            site = token(beat.site, "site")
            devices = [
                (
                    token(d.field, "field"),
                    token(d.device, "device"),
                    d.last_success_time.ToMicroseconds()
                    if d.HasField("last_success_time")
                    else None,
                )
                for d in beat.devices
            ]
        except (DecodeError, SubjectError, ValueError, OverflowError) as exc:
            self.refused += 1
            _log.info("heartbeat ignored", subject=msg.subject, reason=str(exc))
            return
        self.received += 1
        try:
            await self.evaluator.heartbeat(site, devices)
        except StoreError as exc:
            _log.warning("heartbeat not applied; the next one will be", error=str(exc))


async def timers(evaluator: Evaluator, seconds: float, keep_days: float = 0) -> None:
    """Run the clock's side of evaluation every ``seconds`` until cancelled; once an hour,
    forget published events older than ``keep_days`` (0 keeps them)."""
    forget_at = 0.0
    while True:
        try:
            await evaluator.tick()
            if keep_days and time.monotonic() >= forget_at:
                horizon = evaluator.now() - int(keep_days * 86400 * MICROS)
                await evaluator.store.forget_events(horizon)
                forget_at = time.monotonic() + 3600
        except StoreError as exc:
            _log.warning("timers wait for storage", error=str(exc))
        await asyncio.sleep(seconds)


async def _dispatcher(settings: Settings) -> Any:
    """The receivers' dispatcher when ``alerts.receivers_file`` names receivers."""
    options = settings.alerts
    if options.receivers_file is None:
        _log.warning("no receivers configured: notifications are recorded, not delivered")
        return None
    from smartcity.services.alerts.receivers import Dispatcher, ReceiversConfig

    config = ReceiversConfig.model_validate(
        yaml.safe_load(options.receivers_file.read_text(encoding="utf-8")) or {}
    )
    dispatcher = Dispatcher(config, Path(settings.data_dir) / "alerts-outbox.db")
    await dispatcher.start()
    return dispatcher


def _notification(data: dict[str, Any]) -> Any:
    from smartcity.services.alerts.receivers import Notification

    return Notification.from_dict(data)


@contextlib.asynccontextmanager
async def _setup(context: ServiceContext) -> AsyncIterator[ServiceParts]:
    settings = context.settings
    options = settings.alerts
    tune_for_ingest()  # the same hot path as monitoring's ingest: decode, then a store write
    fields = load_fields(settings.plugins)
    store = open_store(store_url(settings))
    await store.open()
    dispatcher = None
    try:
        wake: list[Any] = []

        def changed(events: Sequence[Event]) -> None:
            for listener in wake:
                listener()

        evaluator = Evaluator(store, options, on_events=changed)
        traces = EventTraces()
        service = AlertsService(store, fields, evaluator)
        if options.plugin_rules:
            installed = await service.rules.install_plugin_rules(plugin_rules(fields))
            _log.info("plugin rules installed", changed=installed)
        dispatcher = await _dispatcher(settings)
        outbox = Outbox(
            store,
            context.bus,
            encode=lambda event: event_message(event).SerializeToString(),
            submitter=dispatcher,
            build=_notification,
            traces=traces,
        )
        wake += [outbox.wake, service.notify_watchers]
        # Events of other replicas wake this replica's watches as they are published.
        await context.bus.subscribe(ALL_ALERTS, lambda msg: _wake(service))
        await context.bus.subscribe(f"{AGENTS}.>", Heartbeats(evaluator))
        evaluation = TelemetryEvaluation(context.bus, evaluator, fields, options, traces=traces)

        async def storage() -> str | None:
            try:
                await store.ping()
            except StoreError as exc:
                return str(exc)
            return None

        async def consuming() -> str | None:
            return evaluation.consumer.problem

        yield ServiceParts(
            registrations=[servicer(service)],
            service_names=[SERVICE_NAME],
            tasks={
                "evaluate": evaluation.consumer.run,
                "timers": lambda: timers(evaluator, options.tick_seconds, options.history_days),
                "outbox": outbox.run,
            },
            checks={"storage": storage, "evaluation": consuming},
            details={"storage": store.url},
        )
    finally:
        if dispatcher is not None:
            await dispatcher.close()
        await store.close()


async def _wake(service: AlertsService) -> None:
    service.notify_watchers()


ALERTS = ServiceSpec(name="alerts", default_port=DEFAULT_PORT, setup=_setup)
"""The alerts service, for :func:`smartcity.runtime.service.run_service`."""
