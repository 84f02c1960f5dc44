"""The records process: storage, the record types of the field plugins, the outbox publisher,
retention and the gRPC API, as a :class:`~smartcity.runtime.service.ServiceSpec` that the
runtime runs.

Several replicas may share one PostgreSQL: any of them answers any call, and each publishes
the outbox; an event two replicas both publish is stored once by the RECORDS stream (its
``Nats-Msg-Id`` is the event id).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from smartcity.fields import load_fields
from smartcity.runtime.config import Settings
from smartcity.runtime.logs import get_logger
from smartcity.runtime.service import ServiceContext, ServiceParts, ServiceSpec
from smartcity.runtime.storage.urls import store_url as default_store_url
from smartcity.services.records.access import AccessPolicy
from smartcity.services.records.events import OutboxPublisher
from smartcity.services.records.model import DAY, MICROS
from smartcity.services.records.schemas import Limits, TypeRegistry
from smartcity.services.records.server import DEFAULT_PORT, SERVICE_NAME, servicer
from smartcity.services.records.service import RecordsService
from smartcity.services.records.store import RecordStore, StoreError, open_store

__all__ = ["RECORDS", "build_service", "store_url"]

_log = get_logger(__name__)


def store_url(settings: Settings) -> str:
    """The configured storage URL, or SQLite in the data folder."""
    return default_store_url(settings.records.store_url, settings.data_dir, "records")


def build_service(
    store: RecordStore,
    types: TypeRegistry,
    settings: Settings,
    *,
    on_commit: Callable[[], None] | None = None,
    clock: Callable[[], int] | None = None,
) -> RecordsService:
    """The domain service as the settings configure it."""
    records = settings.records
    return RecordsService(
        store,
        types,
        policy=AccessPolicy(strong_within=records.strong_login_seconds),
        limits=Limits(max_bytes=records.max_record_bytes, max_depth=records.max_depth),
        retention=int(records.retention_days * DAY),
        on_commit=on_commit,
        clock=clock,
    )


async def _retention_loop(store: RecordStore, settings: Settings) -> None:
    while True:
        try:
            purged = await store.purge(int(time.time() * MICROS))
            if purged:
                _log.info("deleted records purged after their retention", records=purged)
        except StoreError as exc:
            _log.warning("retention failed; trying again at the next interval", error=str(exc))
        await asyncio.sleep(settings.records.retention_interval_seconds)


@contextlib.asynccontextmanager
async def _setup(context: ServiceContext) -> AsyncIterator[ServiceParts]:
    settings = context.settings
    types = TypeRegistry.from_fields(load_fields(settings.plugins))
    store = open_store(store_url(settings))
    await store.open()
    try:
        publisher = OutboxPublisher(context.bus, store)
        service = build_service(store, types, settings, on_commit=publisher.wake)

        async def storage() -> str | None:
            try:
                await store.ping()
            except StoreError as exc:
                return str(exc)
            return None

        async def events() -> str | None:
            return publisher.problem

        yield ServiceParts(
            registrations=[servicer(service)],
            service_names=[SERVICE_NAME],
            tasks={
                "events": publisher.run,
                "retention": lambda: _retention_loop(store, settings),
            },
            checks={"storage": storage, "events": events},
            details={"storage": store.url, "types": ", ".join(i.name for i in types.all())},
        )
    finally:
        await store.close()


RECORDS = ServiceSpec(name="records", default_port=DEFAULT_PORT, setup=_setup)
"""The records service, for :func:`smartcity.runtime.service.run_service`."""
