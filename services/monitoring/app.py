"""The monitoring process: storage, the plugins, ingest, live fan-out, retention and the gRPC
API, as a :class:`~smartcity.runtime.service.ServiceSpec` that the runtime runs.

With no ``nats.url`` configured (and ``nats.embedded`` on) the process runs its own
``nats-server``; in a city deployment it joins the JetStream cluster. Several replicas may
run against one PostgreSQL: they share the durable consumer, so each batch is stored by one
of them, any of them answers queries, and their live streams see every replica's readings.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from smartcity.fields import load_fields
from smartcity.readings import tune_for_ingest
from smartcity.runtime.config import Settings
from smartcity.runtime.logs import get_logger
from smartcity.runtime.service import ServiceContext, ServiceParts, ServiceSpec
from smartcity.runtime.storage.urls import store_url as default_store_url
from smartcity.services.monitoring.fanout import LiveFanout
from smartcity.services.monitoring.health import HealthPolicy
from smartcity.services.monitoring.ingest import TelemetryIngest
from smartcity.services.monitoring.live import LiveHub
from smartcity.services.monitoring.model import HOUR, MICROS, Retention
from smartcity.services.monitoring.server import DEFAULT_PORT, SERVICE_NAME, servicer
from smartcity.services.monitoring.service import MonitoringService, QueryLimits
from smartcity.services.monitoring.store import StoreError, TimeSeriesStore, open_store

__all__ = ["MONITORING", "store_url"]

_log = get_logger(__name__)


def store_url(settings: Settings) -> str:
    """The configured storage URL, or SQLite in the data folder."""
    return default_store_url(settings.monitoring.store_url, settings.data_dir, "monitoring")


def retention(settings: Settings) -> Retention:
    day = 24 * HOUR
    options = settings.monitoring
    return Retention(
        raw=int(options.retention_raw_days * day),
        minute=int(options.retention_minute_days * day),
        hour=int(options.retention_hour_days * day),
    )


async def _retention_loop(store: TimeSeriesStore, settings: Settings) -> None:
    policy = retention(settings)
    while True:
        try:
            stats = await store.apply_retention(int(time.time() * MICROS), policy)
            _log.info("retention applied", stats=str(stats))
        except StoreError as exc:
            _log.warning("retention failed; trying again at the next interval", error=str(exc))
        await asyncio.sleep(settings.monitoring.retention_interval_seconds)


@contextlib.asynccontextmanager
async def _setup(context: ServiceContext) -> AsyncIterator[ServiceParts]:
    settings = context.settings
    options = settings.monitoring
    tune_for_ingest()
    fields = load_fields(settings.plugins)
    store = open_store(store_url(settings))
    await store.open()
    try:
        hub = LiveHub(max_subscribers=options.max_streams)
        fanout = LiveFanout(context.bus, hub)
        service = MonitoringService(
            store,
            fields,
            hub,
            health=HealthPolicy.from_settings(options),
            limits=QueryLimits(max_range_points=options.max_range_points),
        )
        ingest = TelemetryIngest(context.bus, store, fields, options, live=hub, fanout=fanout)

        async def storage() -> str | None:
            try:
                await store.ping()
            except StoreError as exc:
                return str(exc)
            return None

        async def consuming() -> str | None:
            return ingest.consumer.problem

        yield ServiceParts(
            registrations=[servicer(service)],
            service_names=[SERVICE_NAME],
            tasks={
                "ingest": ingest.run,
                "fanout": fanout.run,
                "retention": lambda: _retention_loop(store, settings),
            },
            checks={"storage": storage, "ingest": consuming},
            on_stop=hub.close,  # open streams end now (UNAVAILABLE), not at the grace's end
            details={"storage": store.url},
        )
    finally:
        await store.close()


MONITORING = ServiceSpec(name="monitoring", default_port=DEFAULT_PORT, setup=_setup)
"""The monitoring service, for :func:`smartcity.runtime.service.run_service`."""
