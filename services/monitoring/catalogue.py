"""The installed fields as the monitoring service answers for them: one field looked up, the
catalogue in pages (with its own page tokens, since it is not stored), and a field's
summary of device states, series, recent readings and KPIs."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from smartcity.fields import Field, FieldHost, Pillar
from smartcity.runtime.errors import InvalidArgument, NotFound
from smartcity.services.monitoring.checks import store_errors
from smartcity.services.monitoring.health import (
    DeviceHealth,
    HealthPolicy,
    count_states,
    device_health,
)
from smartcity.services.monitoring.kpis import KpiCalculator, KpiValue
from smartcity.services.monitoring.limits import PageRequest, QueryLimits, page_size
from smartcity.services.monitoring.model import HOUR, DeviceState, Page
from smartcity.services.monitoring.store.base import TimeSeriesStore

__all__ = ["FieldSummary", "field_summary", "find_field", "list_fields"]


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


def find_field(fields: FieldHost, field_id: str) -> Field:
    """The installed field ``field_id``; refused naming the installed ones when it is not."""
    if not field_id:
        raise InvalidArgument("field is required")
    if field_id not in fields:
        known = ", ".join(sorted(item.id for item in fields)) or "none"
        raise NotFound(f"no field {field_id!r} is installed (installed: {known})")
    return fields[field_id]


async def field_summary(
    store: TimeSeriesStore,
    fields: FieldHost,
    kpis: KpiCalculator,
    limits: QueryLimits,
    policy: HealthPolicy,
    clock: Callable[[], int],
    field_id: str,
) -> FieldSummary:
    """Device counts by state, series, recent readings and KPIs of one field, now (by
    ``clock``)."""
    field = find_field(fields, field_id)
    now = clock()
    healths: list[DeviceHealth] = []
    series = 0
    page_token: str | None = None
    while True:
        with store_errors():
            batch = await store.devices(
                field=field.id, page_size=limits.max_page_size, page_token=page_token
            )
        for record in batch.items:
            healths.append(device_health(record, now, policy))
            series += len(record.metrics)
        page_token = batch.next_page_token or None
        if page_token is None:
            break
    with store_errors():
        readings_last_hour = await store.readings_since(field.id, now - HOUR)
        values = await kpis.compute(field, now)
    return FieldSummary(
        field=field.id,
        states=count_states(healths),
        series_count=series,
        readings_last_hour=readings_last_hour,
        kpis=values,
    )


def list_fields(
    fields: FieldHost,
    limits: QueryLimits,
    *,
    pillar: Pillar | None = None,
    page: PageRequest,
    visible: Callable[[str], bool] | None = None,
) -> Page[Field]:
    """The installed fields ordered by id, optionally of one pillar, and only those
    ``visible`` accepts (by id) when it is given."""
    size = page_size(page, limits)
    after = _field_cursor(page.token, pillar)
    chosen = sorted(
        (
            item
            for item in fields
            if (pillar is None or item.pillar is pillar) and (visible is None or visible(item.id))
        ),
        key=lambda item: item.id,
    )
    remaining = [item for item in chosen if after is None or item.id > after]
    items = remaining[:size]
    more = len(remaining) > size
    return Page(items, _field_token(items[-1].id, pillar) if more else None)


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
