"""What the monitoring service answers, independent of gRPC.

Requests arrive here already translated from protobuf; answers leave as the model's plain
types; refusals are :mod:`smartcity.runtime.errors` exceptions with a message written for
the caller. Paging rules are those of ``common.proto``: a page size of 0 means the default,
larger than the maximum is lowered to it, negative is refused; a page token is opaque and
only valid with the filters it was issued for.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from smartcity.fields import Field, FieldHost, Pillar
from smartcity.runtime.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from smartcity.runtime.subjects import SubjectError, token
from smartcity.services.monitoring.health import (
    DeviceHealth,
    HealthPolicy,
    count_states,
    device_health,
)
from smartcity.services.monitoring.kpis import KpiCalculator, KpiValue
from smartcity.services.monitoring.live import LiveHub, LiveReading
from smartcity.services.monitoring.model import (
    HOUR,
    MICROS,
    Aggregation,
    DeviceRecord,
    DeviceState,
    LatestValue,
    Page,
    RangeQuery,
    RangeResult,
    Selector,
    SeriesKey,
    StoredReading,
)
from smartcity.services.monitoring.store.base import InvalidQuery, StoreUnavailable, TimeSeriesStore

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


@dataclass(frozen=True, slots=True)
class PageRequest:
    """``size`` 0 asks for the default; ``token`` ``None`` (or empty) for the first page."""

    size: int = 0
    token: str | None = None


@dataclass(frozen=True, slots=True)
class QueryLimits:
    default_page_size: int = 100
    max_page_size: int = 1000
    max_steps: int = 11_000
    """Steps per series a range query may span (``monitoring.proto``)."""
    max_raw_points: int = 100_000
    """Readings a raw range query (step 0) may return across its series."""
    max_range_points: int = 100_000
    """Series times steps one page of a range query may span: about what fits a reply of
    4 MiB, and checked before any work is done."""
    stream_chunk: int = 1000
    """Readings per stream message at most."""
    device_scan_factor: int = 10
    """Filtering devices by state reads at most this many pages' worth of devices per page
    answered; what it could not fill comes back short, with a token to go on."""


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    record: DeviceRecord
    health: DeviceHealth


@dataclass(frozen=True, slots=True)
class FieldSummary:
    field: str
    states: dict[DeviceState, int]
    """Devices in each state; every state is present."""
    series_count: int
    readings_last_hour: int
    kpis: Sequence[KpiValue] = field(default_factory=list)

    @property
    def device_count(self) -> int:
        return sum(self.states.values())


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
        selector = _checked_selector(selector)
        size = self._page_size(page)
        with _store_errors():
            return await self.store.latest(selector, page_size=size, page_token=page.token or None)

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
        selector = _checked_selector(selector)
        size = self._page_size(page)
        if start is None:
            raise InvalidArgument("time_range.start_time is required")
        if end is None:
            end = self.clock()
        if start >= end:
            raise InvalidArgument(
                f"the time range is empty: start {_iso(start)} is not before end {_iso(end)}"
            )
        if step < 0:
            raise InvalidArgument(f"step must not be negative, not {_span(step)}")
        if step:
            steps = (end - 1) // step - start // step + 1
            if steps > self.limits.max_steps:
                least = -(-(end - start) // self.limits.max_steps)
                if least > MICROS:
                    least = -(-least // MICROS) * MICROS
                raise InvalidArgument(
                    f"the range {_iso(start)} to {_iso(end)} spans {steps:,} steps of "
                    f"{_span(step)} per series; at most {self.limits.max_steps:,} are allowed: "
                    f"use a step of at least {_span(least)} or a shorter range"
                )
            await self._check_range_size(selector, steps, size)
        else:
            with _store_errors():
                count = (await self.store.aggregate(selector, Aggregation.COUNT, start, end))[1]
            if count > self.limits.max_raw_points:
                raise InvalidArgument(
                    f"the range holds {count:,} raw readings; at most "
                    f"{self.limits.max_raw_points:,} are returned without aggregation: give a "
                    "step, or narrow the range or the selector"
                )
            # Stored times are whole microseconds, so one-microsecond steps are the readings
            # themselves (the store answers them from raw points, never from a roll-up).
            step, aggregation = 1, Aggregation.LAST
        query = RangeQuery(selector, start, end, step, aggregation, size, page.token or None)
        with _store_errors():
            return await self.store.range(query)

    async def _check_range_size(self, selector: Selector, steps: int, page_size: int) -> None:
        """Refuse a page of ``steps`` steps over up to ``page_size`` series whose size
        exceeds the limit, before the store builds any of it."""
        limit = self.limits.max_range_points
        if steps * page_size <= limit:
            return
        with _store_errors():
            series = await self.store.count_series(selector, page_size)
        if series * steps <= limit:
            return
        fits = limit // steps
        advice = (
            f"ask for page_size {fits} (or fewer) and page through the rest"
            if fits
            else "use wider steps"
        )
        raise InvalidArgument(
            f"one page would hold {series:,} series x {steps:,} steps = {series * steps:,} "
            f"points; at most {limit:,} are allowed: {advice}, or narrow the selector"
        )

    async def stream(
        self,
        selector: Selector,
        *,
        include_latest: bool = False,
    ) -> AsyncIterator[list[LiveReading]]:
        """Readings as they are stored, in chunks, until the caller stops iterating.

        With ``include_latest`` the latest reading of every matching series comes first.
        The subscription starts before the latest values are read, so nothing stored in
        between is missed, and a live reading already sent as a latest one is not repeated.
        Raises :class:`~smartcity.services.monitoring.live.StreamOverflow` when the caller
        falls too far behind, and ``ResourceExhausted`` when the replica serves its maximum
        of streams. (A stream ends when its caller's token expires or is revoked: the
        runtime's auth interceptor sees to that for every service.)
        """
        selector = _checked_selector(selector)
        chunk = self.limits.stream_chunk
        with self.hub.subscribe(selector) as subscription:
            sent: dict[SeriesKey, tuple[int, int]] = {}
            if include_latest:
                page_token: str | None = None
                while True:
                    with _store_errors():
                        page = await self.store.latest(
                            selector, page_size=chunk, page_token=page_token
                        )
                    readings = [(item.key, _stored(item)) for item in page.items]
                    sent.update((key, (r.sequence, r.time)) for key, r in readings)
                    if readings:
                        yield readings
                    page_token = page.next_page_token
                    if not page_token:
                        break
            while True:
                try:
                    readings = await subscription.next_chunk(chunk)
                except StopAsyncIteration:
                    return
                if sent:
                    readings = _after(readings, sent)
                if readings:
                    yield readings

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
        field = _checked_token(field, "field")
        site = _checked_token(site, "site")
        size = self._page_size(page)
        now = self.clock()
        wanted = frozenset(states)
        found: list[DeviceStatus] = []
        page_token = page.token or None
        budget = size * self.limits.device_scan_factor
        while True:
            # Asking for exactly what is missing makes the store's token point just past
            # the last device answered, so nothing is skipped or repeated.
            ask = size - len(found) if not wanted else min(size - len(found), budget)
            with _store_errors():
                batch = await self.store.devices(
                    field=field, site=site, page_size=ask, page_token=page_token
                )
            if not batch.items:
                return Page(found, batch.next_page_token or None)
            budget -= len(batch.items)
            for record in batch.items:
                status = DeviceStatus(record, device_health(record, now, self.health))
                if not wanted or status.health.state in wanted:
                    found.append(status)
            page_token = batch.next_page_token or None
            if page_token is None or len(found) >= size or budget <= 0:
                return Page(found, page_token)

    async def device(self, site: str, device: str, field: str | None = None) -> DeviceStatus:
        """One device with its health. ``field`` may be left out when the device reports to
        one field only; a device reporting to several is refused, naming them."""
        site_token = _checked_token(site, "site")
        device_token = _checked_token(device, "device")
        field_token = _checked_token(field, "field")
        if site_token is None or device_token is None:
            raise InvalidArgument("site and device are both required")
        with _store_errors():
            if field_token is not None:
                record = await self.store.device(field_token, site_token, device_token)
                records = [] if record is None else [record]
            else:
                found = await self.store.devices(site=site_token, device=device_token, page_size=20)
                records = list(found.items)
        if not records:
            where = f" in field {field!r}" if field_token else ""
            raise NotFound(f"no device {device!r} at site {site!r}{where} has sent a reading")
        if len(records) > 1:
            fields = ", ".join(record.field for record in records)
            raise FailedPrecondition(
                f"device {device!r} at site {site!r} reports to several fields ({fields}): "
                "name the field"
            )
        record = records[0]
        return DeviceStatus(record, device_health(record, self.clock(), self.health))

    # -- fields ------------------------------------------------------------------------------

    async def field_summary(self, field_id: str) -> FieldSummary:
        """Device counts by state, series, recent readings and KPIs of one field."""
        field = self.field(field_id)
        now = self.clock()
        healths: list[DeviceHealth] = []
        series = 0
        page_token: str | None = None
        while True:
            with _store_errors():
                batch = await self.store.devices(
                    field=field.id, page_size=self.limits.max_page_size, page_token=page_token
                )
            for record in batch.items:
                healths.append(device_health(record, now, self.health))
                series += len(record.metrics)
            page_token = batch.next_page_token or None
            if page_token is None:
                break
        with _store_errors():
            readings_last_hour = await self.store.readings_since(field.id, now - HOUR)
            kpis = await self.kpis.compute(field, now)
        return FieldSummary(
            field=field.id,
            states=count_states(healths),
            series_count=series,
            readings_last_hour=readings_last_hour,
            kpis=kpis,
        )

    def field(self, field_id: str) -> Field:
        if not field_id:
            raise InvalidArgument("field is required")
        if field_id not in self.fields:
            known = ", ".join(sorted(item.id for item in self.fields)) or "none"
            raise NotFound(f"no field {field_id!r} is installed (installed: {known})")
        return self.fields[field_id]

    def list_fields(
        self,
        *,
        pillar: Pillar | None = None,
        page: PageRequest,
        visible: Callable[[str], bool] | None = None,
    ) -> Page[Field]:
        """The installed fields ordered by id, optionally of one pillar, and only those
        ``visible`` accepts (by id) when it is given."""
        size = self._page_size(page)
        after = _field_cursor(page.token, pillar)
        chosen = sorted(
            (
                item
                for item in self.fields
                if (pillar is None or item.pillar is pillar)
                and (visible is None or visible(item.id))
            ),
            key=lambda item: item.id,
        )
        remaining = [item for item in chosen if after is None or item.id > after]
        items = remaining[:size]
        more = len(remaining) > size
        return Page(items, _field_token(items[-1].id, pillar) if more else None)

    def _page_size(self, page: PageRequest) -> int:
        if page.size < 0:
            raise InvalidArgument(f"page_size must not be negative, not {page.size}")
        if page.size == 0:
            return self.limits.default_page_size
        return min(page.size, self.limits.max_page_size)


# -- helpers -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _store_errors() -> Iterator[None]:
    """Storage refusals as what they mean to the caller: the request is wrong
    (INVALID_ARGUMENT; the service checks everything but page tokens before, so that is
    what it is about), or storage is unavailable now (UNAVAILABLE: retry later). Anything
    else is the service's fault and stays an internal error."""
    try:
        yield
    except InvalidQuery as exc:
        raise InvalidArgument(
            f"page_token is not one this service issued for these filters; start again "
            f"without it ({exc})"
        ) from None
    except StoreUnavailable:
        raise Unavailable("the monitoring storage is unavailable just now; retry shortly") from None


def _checked_token(value: str | None, what: str) -> str | None:
    if not value:
        return None
    try:
        return token(value, what)
    except SubjectError as exc:
        raise InvalidArgument(str(exc)) from None


def _checked_selector(selector: Selector) -> Selector:
    return Selector(
        field=_checked_token(selector.field, "field"),
        site=_checked_token(selector.site, "site"),
        device=_checked_token(selector.device, "device"),
        metric=_checked_token(selector.metric, "metric"),
    )


def _stored(value: LatestValue) -> StoredReading:
    return StoredReading(
        value.key.metric,
        value.unit,
        value.value,
        value.quality,
        value.reason,
        value.time,
        value.sequence,
    )


def _after(
    readings: list[LiveReading], sent: dict[SeriesKey, tuple[int, int]]
) -> list[LiveReading]:
    """Live readings newer than the latest ones already sent; a series is forgotten once a
    newer reading of it passed, since ingest order keeps later ones newer still."""
    kept: list[LiveReading] = []
    for key, reading in readings:
        position = sent.get(key)
        if position is not None:
            if (reading.sequence, reading.time) <= position:
                continue
            del sent[key]
        kept.append((key, reading))
    return kept


_FIELD_TOKEN_PREFIX = "fields:"


def _field_token(last_id: str, pillar: Pillar | None) -> str:
    text = f"{_FIELD_TOKEN_PREFIX}{pillar.value if pillar else ''}:{last_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _field_cursor(page_token: str | None, pillar: Pillar | None) -> str | None:
    if not page_token:
        return None
    problem = InvalidArgument(
        "page_token is not one this service issued for these filters; start again without it"
    )
    try:
        text = base64.urlsafe_b64decode(page_token + "=" * (-len(page_token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise problem from None
    if not text.startswith(_FIELD_TOKEN_PREFIX):
        raise problem
    issued_for, _, last_id = text[len(_FIELD_TOKEN_PREFIX) :].partition(":")
    if issued_for != (pillar.value if pillar else "") or not last_id:
        raise problem
    return last_id


def _iso(micros: int) -> str:
    return datetime.fromtimestamp(micros / MICROS, UTC).isoformat().replace("+00:00", "Z")


def _span(micros: int) -> str:
    """A duration for people: ``90s``, ``1m30s``, ``250ms``."""
    if micros < 0:
        return f"-{_span(-micros)}"
    if micros % MICROS:
        return f"{micros / 1000:g}ms" if micros < MICROS else f"{micros / MICROS:g}s"
    seconds = micros // MICROS
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"
