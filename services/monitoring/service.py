"""What the monitoring service answers, independent of gRPC.

Requests arrive here already translated from protobuf; answers leave as the model's plain
types; refusals are :mod:`smartcity.runtime.errors` exceptions with a message written for
the caller. Paging rules are those of ``common.proto``: a page size of 0 means the default,
larger than the maximum is lowered to it, negative is refused; a page token is opaque and
only valid with the filters it was issued for.

:class:`MonitoringService` holds what the answers need and hands each kind of question to
its module: :mod:`.queries` (latest values and ranges), :mod:`.streams` (live readings),
:mod:`.devices` (devices and their health) and :mod:`.catalogue` (the fields, their
summaries and KPIs); what a request may ask for is in :mod:`.limits`, and the checks every
request goes through in :mod:`.checks`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence

from smartcity.fields import Field, FieldHost, Pillar
from smartcity.services.monitoring import catalogue, queries
from smartcity.services.monitoring.catalogue import FieldSummary
from smartcity.services.monitoring.devices import DeviceStatus, find_device, list_devices
from smartcity.services.monitoring.health import HealthPolicy
from smartcity.services.monitoring.kpis import KpiCalculator
from smartcity.services.monitoring.limits import PageRequest, QueryLimits
from smartcity.services.monitoring.live import LiveHub, LiveReading
from smartcity.services.monitoring.model import (
    Aggregation,
    DeviceState,
    LatestValue,
    Page,
    RangeResult,
    Selector,
)
from smartcity.services.monitoring.store.base import TimeSeriesStore
from smartcity.services.monitoring.streams import stream_readings

__all__ = [
    "DeviceStatus",
    "FieldSummary",
    "MonitoringService",
    "PageRequest",
    "QueryLimits",
    "now_micros",
]


def now_micros() -> int:
    return time.time_ns() // 1000


class MonitoringService:
    """The monitoring service's domain logic over a store, the field plugins and the live hub.

    ``clock`` gives the current time in µs since the epoch; tests pass a fixed one.
    """

    def __init__(
        self,
        store: TimeSeriesStore,
        fields: FieldHost,
        hub: LiveHub,
        *,
        health: HealthPolicy | None = None,
        kpis: KpiCalculator | None = None,
        limits: QueryLimits | None = None,
        clock: Callable[[], int] = now_micros,
    ) -> None:
        self.store = store
        self.fields = fields
        self.hub = hub
        self.health = health or HealthPolicy()
        self.kpis = kpis or KpiCalculator(store)
        self.limits = limits or QueryLimits()
        self.clock = clock

    # -- readings ----------------------------------------------------------------------------

    async def latest(self, selector: Selector, page: PageRequest) -> Page[LatestValue]:
        """The newest reading of each series ``selector`` matches."""
        return await queries.latest(self.store, self.limits, selector, page)

    async def range(
        self,
        selector: Selector,
        *,
        start: int | None,
        end: int | None,
        step: int,
        aggregation: Aggregation,
        page: PageRequest,
    ) -> RangeResult:
        """The matching series over ``[start, end)`` (``end`` ``None``: now), in steps of
        ``step`` µs combined by ``aggregation``; step 0 returns the raw GOOD readings."""
        return await queries.query_range(
            self.store,
            self.limits,
            self.clock,
            selector,
            start=start,
            end=end,
            step=step,
            aggregation=aggregation,
            page=page,
        )

    def stream(
        self,
        selector: Selector,
        *,
        include_latest: bool = False,
    ) -> AsyncIterator[list[LiveReading]]:
        """Readings as they are stored, in chunks, until the caller stops iterating; with
        ``include_latest`` the latest reading of every matching series first (see
        :func:`~smartcity.services.monitoring.streams.stream_readings`)."""
        return stream_readings(
            self.store,
            self.hub,
            selector,
            chunk=self.limits.stream_chunk,
            include_latest=include_latest,
        )

    # -- devices -----------------------------------------------------------------------------

    async def devices(
        self,
        *,
        field: str | None = None,
        site: str | None = None,
        states: Sequence[DeviceState] = (),
        page: PageRequest,
    ) -> Page[DeviceStatus]:
        """Devices ordered by field, site and device, with their health; ``states`` keeps
        only devices in one of them."""
        return await list_devices(
            self.store,
            self.limits,
            self.health,
            self.clock,
            field=field,
            site=site,
            states=states,
            page=page,
        )

    async def device(self, site: str, device: str, field: str | None = None) -> DeviceStatus:
        """One device with its health. ``field`` may be left out when the device reports to
        one field only; a device reporting to several is refused, naming them."""
        return await find_device(self.store, self.health, self.clock, site, device, field)

    # -- fields ------------------------------------------------------------------------------

    async def field_summary(self, field_id: str) -> FieldSummary:
        """Device counts by state, series, recent readings and KPIs of one field."""
        return await catalogue.field_summary(
            self.store, self.fields, self.kpis, self.limits, self.health, self.clock, field_id
        )

    def field(self, field_id: str) -> Field:
        return catalogue.find_field(self.fields, field_id)

    def list_fields(
        self,
        *,
        pillar: Pillar | None = None,
        page: PageRequest,
        visible: Callable[[str], bool] | None = None,
    ) -> Page[Field]:
        """The installed fields ordered by id, optionally of one pillar, and only those
        ``visible`` accepts (by id) when it is given."""
        return catalogue.list_fields(
            self.fields, self.limits, pillar=pillar, page=page, visible=visible
        )
