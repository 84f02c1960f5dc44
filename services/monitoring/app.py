"""The monitoring process: storage, the plugins, NATS, ingest, retention and the gRPC API,
started in order and stopped in reverse.

With no ``nats.url`` configured (and ``nats.embedded`` on) the process runs its own
``nats-server``; in a city deployment it joins the JetStream cluster. Several replicas may
run against one PostgreSQL: they share the durable consumer, so each batch is stored by one
of them, and any of them answers queries.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from smartcity.fields import load_fields
from smartcity.runtime.bus import Bus
from smartcity.runtime.config import Settings
from smartcity.runtime.nats_server import EmbeddedNats
from smartcity.runtime.tokens import TokenVerifier
from smartcity.services.monitoring.health import HealthPolicy
from smartcity.services.monitoring.ingest import Ingest
from smartcity.services.monitoring.live import LiveHub
from smartcity.services.monitoring.model import HOUR, MICROS, Retention
from smartcity.services.monitoring.server import build_server
from smartcity.services.monitoring.service import MonitoringService
from smartcity.services.monitoring.store import TimeSeriesStore, open_store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Running:
    """Where a started monitoring process can be reached."""

    grpc_address: str
    nats_url: str
    store_url: str


INGEST_SWITCH_INTERVAL = 0.001
"""Seconds between the interpreter's thread switches in the monitoring process. Storage
writes run in their own thread while the event loop decodes the next fetch; at Python's
default 5 ms that thread waits for the busy loop most of the time."""

INGEST_GC_THRESHOLDS = (50_000, 20, 20)
"""Ingest allocates a few tuples per reading, hundreds of thousands a second, nearly all of
them gone within one fetch and none of them in reference cycles. With Python's default
(700 allocations) the cyclic collector runs thousands of times a second for nothing; it
measured as a fifth of ingest's time."""


def tune_for_ingest() -> None:
    """Interpreter settings for a process whose hot path is ingest (see the constants)."""
    sys.setswitchinterval(INGEST_SWITCH_INTERVAL)
    gc.set_threshold(*INGEST_GC_THRESHOLDS)


def store_url(settings: Settings) -> str:
    """The configured storage URL, or SQLite in the data folder."""
    if settings.monitoring.store_url:
        return settings.monitoring.store_url
    path = (Path(settings.data_dir) / "monitoring.db").absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


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
            log.info("retention applied: %s", stats)
        except Exception:
            log.exception("retention failed; trying again at the next interval")
        await asyncio.sleep(settings.monitoring.retention_interval_seconds)


async def run_monitoring(
    settings: Settings,
    stop: asyncio.Event,
    *,
    on_ready: Callable[[Running], None] | None = None,
) -> None:
    """Run the monitoring service until ``stop`` is set."""
    tune_for_ingest()
    fields = load_fields(settings.plugins)
    store = open_store(store_url(settings))
    await store.open()
    embedded: EmbeddedNats | None = None
    try:
        nats = settings.nats
        if nats.url is None:
            embedded = EmbeddedNats(nats)
            await embedded.astart()
            nats = embedded.client_settings()
        bus = await Bus.connect(nats, name="monitoring")
        await bus.ensure_streams(settings.nats.streams)
        hub = LiveHub()
        service = MonitoringService(
            store,
            fields,
            hub,
            health=HealthPolicy(
                settings.monitoring.stale_after_intervals,
                settings.monitoring.offline_after_intervals,
            ),
        )
        auth = settings.auth
        verifier = TokenVerifier.from_settings(auth) if auth.jwks_file or auth.public_keys else None
        server = build_server(settings.grpc, service, verifier)
        await server.start()
        ingest = Ingest(bus, store, fields, settings.monitoring, live=hub)
        tasks = [
            asyncio.create_task(ingest.run(), name="ingest"),
            asyncio.create_task(_retention_loop(store, settings), name="retention"),
        ]
        if on_ready is not None:
            on_ready(Running(server.address, str(nats.url), store.url))
        try:
            stopped = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopped and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            hub.close()  # open streams end now (UNAVAILABLE) instead of holding up the stop
            await server.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await bus.close()
    finally:
        await store.close()
        if embedded is not None:
            with contextlib.suppress(Exception):
                await embedded.astop()
