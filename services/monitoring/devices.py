"""Devices as the monitoring service answers for them: each stored device record with its
health (ONLINE, STALE, OFFLINE) at the time of asking, listed or looked up one at a time."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from smartcity.runtime.errors import FailedPrecondition, InvalidArgument, NotFound
from smartcity.services.monitoring.checks import checked_token, store_errors
from smartcity.services.monitoring.health import DeviceHealth, HealthPolicy, device_health
from smartcity.services.monitoring.limits import PageRequest, QueryLimits, page_size
from smartcity.services.monitoring.model import DeviceRecord, DeviceState, Page
from smartcity.services.monitoring.store.base import TimeSeriesStore

__all__ = ["DeviceStatus", "find_device", "list_devices"]


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    record: DeviceRecord
    health: DeviceHealth


async def list_devices(
    store: TimeSeriesStore,
    limits: QueryLimits,
    policy: HealthPolicy,
    clock: Callable[[], int],
    *,
    field: str | None = None,
    site: str | None = None,
    states: Sequence[DeviceState] = (),
    page: PageRequest,
) -> Page[DeviceStatus]:
    """Devices ordered by field, site and device, with their health now (by ``clock``);
    ``states`` keeps only devices in one of them."""
    field = checked_token(field, "field")
    site = checked_token(site, "site")
    size = page_size(page, limits)
    now = clock()
    wanted = frozenset(states)
    found: list[DeviceStatus] = []
    page_token = page.token or None
    budget = size * limits.device_scan_factor
    while True:
        # Asking for exactly what is missing makes the store's token point just past
        # the last device answered, so nothing is skipped or repeated.
        ask = size - len(found) if not wanted else min(size - len(found), budget)
        with store_errors():
            batch = await store.devices(
                field=field, site=site, page_size=ask, page_token=page_token
            )
        if not batch.items:
            return Page(found, batch.next_page_token or None)
        budget -= len(batch.items)
        for record in batch.items:
            status = DeviceStatus(record, device_health(record, now, policy))
            if not wanted or status.health.state in wanted:
                found.append(status)
        page_token = batch.next_page_token or None
        if page_token is None or len(found) >= size or budget <= 0:
            return Page(found, page_token)


async def find_device(
    store: TimeSeriesStore,
    policy: HealthPolicy,
    clock: Callable[[], int],
    site: str,
    device: str,
    field: str | None = None,
) -> DeviceStatus:
    """One device with its health now (by ``clock``). ``field`` may be left out when the
    device reports to one field only; a device reporting to several is refused, naming
    them."""
    site_token = checked_token(site, "site")
    device_token = checked_token(device, "device")
    field_token = checked_token(field, "field")
    if site_token is None or device_token is None:
        raise InvalidArgument("site and device are both required")
    with store_errors():
        if field_token is not None:
            record = await store.device(field_token, site_token, device_token)
            records = [] if record is None else [record]
        else:
            found = await store.devices(site=site_token, device=device_token, page_size=20)
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
    return DeviceStatus(record, device_health(record, clock(), policy))
