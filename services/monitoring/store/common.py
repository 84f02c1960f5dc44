"""What both storage backends share: they must give the same answers, so everything that does
not talk to a database lives here once.

- what a write stores (point, latest-value, roll-up and registry rows) is worked out in
  :mod:`.writes` and :mod:`.summary`;
- the range plan (which roll-up serves which part of ``[start, end)``) and the merge of the
  partial aggregates are :mod:`.ranges`'s, re-exported here;
- here: the selector and device registry filters, keyed by field, site and device, and the
  registry and latest-value rows; argument checks (:class:`~.base.InvalidQuery`) and where
  the migration files are. Page tokens, URL masking and the migration runner are
  :mod:`smartcity.runtime.storage`'s.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from smartcity.runtime.storage import migrations
from smartcity.runtime.storage.errors import mask_url as mask_url
from smartcity.runtime.storage.migrations import Migration
from smartcity.runtime.storage.migrations import parse_migrations as parse_migrations
from smartcity.runtime.storage.paging import decode_page_token as decode_page_token
from smartcity.runtime.storage.paging import encode_page_token
from smartcity.services.monitoring.model import (
    DeviceRecord,
    LatestValue,
    Quality,
    RangeQuery,
    Selector,
    SeriesKey,
)
from smartcity.services.monitoring.store.base import InvalidQuery
from smartcity.services.monitoring.store.ranges import ROLLUP_TABLES as ROLLUP_TABLES
from smartcity.services.monitoring.store.ranges import Partial as Partial
from smartcity.services.monitoring.store.ranges import Segment as Segment
from smartcity.services.monitoring.store.ranges import bucket_sql as bucket_sql
from smartcity.services.monitoring.store.ranges import buckets_by_series as buckets_by_series
from smartcity.services.monitoring.store.ranges import final_value as final_value
from smartcity.services.monitoring.store.ranges import merge_partials as merge_partials
from smartcity.services.monitoring.store.ranges import plan as plan
from smartcity.services.monitoring.store.ranges import resolution as resolution

GOOD = int(Quality.GOOD)
MAX_PAGE_SIZE = 10_000

BatchKey = tuple[str, str]
"""``(field, batch_id)``: a batch id is unique within its field only."""


# -- Errors, URLs and page tokens ------------------------------------------------------------


SERIES_PAGES = "s"
DEVICE_PAGES = "d"


def check_page_size(page_size: int) -> int:
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidQuery(f"page_size must be between 1 and {MAX_PAGE_SIZE}, not {page_size}")
    return page_size


def check_interval(start: int, end: int) -> None:
    if end <= start:
        raise InvalidQuery(f"the time range is empty: end ({end}) must be after start ({start})")


# -- Selectors ------------------------------------------------------------------------------


def selector_filter(
    selector: Selector, alias: str, placeholder: Callable[[int], str], first: int = 1
) -> tuple[list[str], list[str]]:
    """SQL conditions on the series table (``alias``) for the parts of ``selector`` that
    are set, and their parameters; ``placeholder(n)`` spells the n-th parameter."""
    conditions: list[str] = []
    params: list[str] = []
    for column in ("field", "site", "device", "metric"):
        value = getattr(selector, column)
        if value:
            conditions.append(f"{alias}.{column} = {placeholder(first + len(params))}")
            params.append(value)
    return conditions, params


def count_series_sql(
    selector: Selector, at_most: int, placeholder: Callable[[int], str]
) -> tuple[str, list[str]]:
    """The statement counting the series ``selector`` matches, up to ``at_most``, and its
    parameters: the count stops at the limit instead of visiting every series."""
    if at_most < 0:
        raise InvalidQuery(f"at_most must not be negative, not {at_most}")
    conditions, params = selector_filter(selector, "s", placeholder)
    sql = (
        f"SELECT count(*) FROM (SELECT 1 FROM series AS s {where(conditions)} "
        f"LIMIT {int(at_most)}) AS matching"
    )
    return sql, params


DEVICE_KEY = "d.field, d.site, d.device"
"""The registry's key, in its order: listings are sorted and paged by it."""


def device_filter(
    field: str | None,
    site: str | None,
    device: str | None,
    after: tuple[str, ...] | None,
    placeholder: Callable[[int], str],
) -> tuple[list[str], list[str]]:
    """SQL conditions on the device registry (alias ``d``) for the filters that are set and
    the page token's key, and their parameters."""
    conditions: list[str] = []
    params: list[str] = []
    for column, value in (("field", field), ("site", site), ("device", device)):
        if value:
            params.append(value)
            conditions.append(f"d.{column} = {placeholder(len(params))}")
    if after is not None:
        numbers = range(len(params) + 1, len(params) + 1 + len(after))
        conditions.append(f"({DEVICE_KEY}) > ({', '.join(map(placeholder, numbers))})")
        params.extend(after)
    return conditions, params


# -- Device registry ------------------------------------------------------------------------


POLL_INTERVAL_WEIGHT = 4
"""The poll interval estimate moves a quarter of the way towards each new batch spacing:
steady enough to ride out one late batch, quick enough to follow a changed poll rate."""


# -- Range query arguments ------------------------------------------------------------------


def check_range(query: RangeQuery) -> None:
    check_interval(query.start, query.end)
    if query.step <= 0:
        raise InvalidQuery(f"step must be a positive number of microseconds, not {query.step}")
    check_page_size(query.page_size)


def check_bound(name: str, bound: float | None) -> None:
    if bound is not None and not math.isfinite(bound):
        raise InvalidQuery(f"{name} must be a finite number, not {bound}")


# -- Migrations -----------------------------------------------------------------------------


def load_migrations(backend: str) -> list[Migration]:
    """The migrations shipped for ``backend`` (``sqlite`` or ``postgres``)."""
    return migrations.load_migrations(f"smartcity.services.monitoring.store.migrations.{backend}")


def where(conditions: Sequence[str]) -> str:
    """``WHERE a AND b``, or nothing when there is no condition."""
    return f"WHERE {' AND '.join(conditions)}" if conditions else ""


def next_page_token(
    rows: Sequence[Sequence[Any]], page_size: int, kind: str, arity: int
) -> str | None:
    """The token of the page after ``rows`` (one more row than a page was fetched), from the
    key (its first ``arity`` columns) of the last row shown."""
    if len(rows) <= page_size:
        return None
    return encode_page_token(kind, [str(part) for part in tuple(rows[page_size - 1])[:arity]])


def latest_value(row: Sequence[Any]) -> LatestValue:
    """A ``latest`` row: field, site, device, metric, unit, value, quality, reason, time,
    sequence."""
    return LatestValue(
        key=SeriesKey(*row[:4]),
        unit=row[4],
        value=row[5],
        quality=Quality(row[6]),
        reason=row[7] or "",
        time=row[8],
        sequence=row[9],
    )


def device_record(row: Sequence[Any], metrics: Sequence[str]) -> DeviceRecord:
    """A ``devices`` row (field, site, device, agent id, first seen, last seen, poll interval,
    last sequence) and the device's metrics."""
    return DeviceRecord(
        field=row[0],
        site=row[1],
        device=row[2],
        agent_id=row[3],
        first_seen=row[4],
        last_seen=row[5],
        poll_interval=row[6],
        last_sequence=row[7],
        metrics=metrics,
    )
