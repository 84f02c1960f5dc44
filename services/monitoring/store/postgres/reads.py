"""The PostgreSQL store's queries: the latest values, ranges and aggregates (from roll-ups
and raw points, as :mod:`smartcity.services.monitoring.store.ranges` plans them, in one
read-only snapshot), the counts of the KPIs and the device registry. The write statements
are :mod:`.statements`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from smartcity.services.monitoring.model import (
    Aggregation,
    DeviceRecord,
    LatestValue,
    Page,
    RangeQuery,
    RangeResult,
    Selector,
    SeriesKey,
    SeriesRange,
)
from smartcity.services.monitoring.store import common, ranges
from smartcity.services.monitoring.store.postgres.connection import PostgresStoreBase

_SERIES_COLUMNS = "s.field, s.site, s.device, s.metric"
_DEVICE_SELECT = (
    f"SELECT {common.DEVICE_KEY}, d.agent_id, d.first_seen, d.last_seen, d.poll_interval, "
    "d.last_sequence, array(SELECT s.metric FROM series AS s WHERE s.field = d.field "
    "AND s.site = d.site AND s.device = d.device ORDER BY s.metric) FROM devices AS d"
)


def _placeholder(number: int) -> str:
    return f"${number}"


@lru_cache(maxsize=64)
def _partials_sql(width: int, last: bool, bucketed: bool, series: str) -> str:
    """Partial aggregates ``(series_id, bucket, count, sum, min, max, last_time,
    last_sequence, last_value)`` of one segment: from raw points (``width`` 0) or a roll-up
    table, over the series that the condition ``series`` admits. Parameters: ``$1`` and
    ``$2`` the segment, ``$3`` the step when ``bucketed``, then those of ``series``."""
    if width:
        table, column = ranges.ROLLUP_TABLES[width], "bucket"
        count, total, low, high = "count", "sum", "min", "max"
        last_time, last_sequence, last_value = "last_time", "last_sequence", "last_value"
        good = ""
    else:
        table, column = "points", "time"
        count, total, low, high = "1", "value", "value", "value"
        last_time, last_sequence, last_value = "time", "sequence", "value"
        good = f" AND quality = {common.GOOD} AND value IS NOT NULL"
    bucket = ranges.bucket_sql(column, "$3::bigint") if bucketed else "0::bigint"
    where = f"{series} AND {column} >= $1 AND {column} < $2{good}"
    if not last:
        return (
            f"SELECT series_id, {bucket} AS b, sum({count})::bigint, sum({total}), min({low}), "
            f"max({high}), NULL::bigint, NULL::bigint, NULL::float8 FROM {table} "
            f"WHERE {where} GROUP BY series_id, b"
        )
    return (
        f"SELECT series_id, b, n, total, low, high, {last_time}, {last_sequence}, {last_value} "
        f"FROM (SELECT series_id, {bucket} AS b, {last_time}, {last_sequence}, {last_value}, "
        f"sum({count}) OVER w AS n, sum({total}) OVER w AS total, min({low}) OVER w AS low, "
        f"max({high}) OVER w AS high, row_number() OVER (w ORDER BY {last_time} DESC, "
        f"{last_sequence} DESC) AS position FROM {table} WHERE {where} "
        f"WINDOW w AS (PARTITION BY series_id, {bucket})) AS ranked WHERE position = 1"
    )


class PostgresReads(PostgresStoreBase):
    """Every query of the store."""

    async def latest(
        self, selector: Selector, *, page_size: int = 100, page_token: str | None = None
    ) -> Page[LatestValue]:
        common.check_page_size(page_size)
        after = common.decode_page_token(page_token, common.SERIES_PAGES, 4)
        conditions, params = _series_conditions(selector, after)
        rows = await self._fetch(
            f"SELECT {_SERIES_COLUMNS}, s.unit, l.value, l.quality, l.reason, l.time, "
            f"l.sequence FROM series AS s JOIN latest AS l ON l.series_id = s.id "
            f"{common.where(conditions)} ORDER BY {_SERIES_COLUMNS} LIMIT {page_size + 1}",
            *params,
        )
        items = [common.latest_value(row) for row in rows[:page_size]]
        return Page(items, common.next_page_token(rows, page_size, common.SERIES_PAGES, 4))

    async def count_series(self, selector: Selector, at_most: int) -> int:
        sql, params = common.count_series_sql(selector, at_most, _placeholder)
        return int((await self._fetch(sql, *params))[0][0])

    async def range(self, query: RangeQuery) -> RangeResult:
        common.check_range(query)
        after = common.decode_page_token(query.page_token, common.SERIES_PAGES, 4)
        segments = ranges.plan(query.start, query.end, query.step)
        last = query.aggregation is Aggregation.LAST
        conditions, params = _series_conditions(query.selector, after)
        partials: dict[tuple[int, int], ranges.Partial] = {}
        with self._errors():
            async with (
                self._connection() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                # One snapshot for the series and every segment: a write that lands in
                # between cannot show up in one segment and not in another.
                series = await conn.fetch(
                    f"SELECT s.id, {_SERIES_COLUMNS}, s.unit FROM series AS s "
                    f"{common.where(conditions)} ORDER BY {_SERIES_COLUMNS} "
                    f"LIMIT {query.page_size + 1}",
                    *params,
                )
                page = series[: query.page_size]
                ids = [row[0] for row in page]
                for segment in segments:
                    sql = _partials_sql(segment.width, last, True, "series_id = ANY($4::bigint[])")
                    rows = await conn.fetch(sql, segment.start, segment.end, query.step, ids)
                    ranges.merge_partials(rows, partials)
        buckets = ranges.buckets_by_series(query.aggregation, partials)
        return RangeResult(
            series=[
                SeriesRange(SeriesKey(*row[1:5]), row[5], buckets.get(row[0], [])) for row in page
            ],
            resolution=ranges.resolution(segments),
            next_page_token=common.next_page_token(
                [tuple(row)[1:] for row in series], query.page_size, common.SERIES_PAGES, 4
            ),
        )

    async def aggregate(
        self, selector: Selector, aggregation: Aggregation, start: int, end: int
    ) -> tuple[float | None, int]:
        common.check_interval(start, end)
        segments = ranges.plan(start, end, None)
        last = aggregation is Aggregation.LAST
        conditions, params = common.selector_filter(selector, "s", _placeholder, first=3)
        series = f"series_id IN (SELECT s.id FROM series AS s {common.where(conditions)})"
        partials: dict[tuple[int, int], ranges.Partial] = {}
        with self._errors():
            async with (
                self._connection() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                for segment in segments:
                    sql = _partials_sql(segment.width, last, False, series)
                    rows = await conn.fetch(sql, segment.start, segment.end, *params)
                    # One bucket for everything: fold the per-series rows into series 0.
                    ranges.merge_partials(((0, 0, *tuple(row)[2:]) for row in rows), partials)
        if not partials:
            return None, 0
        part = partials[(0, 0)]
        return ranges.final_value(aggregation, part), int(part[0])

    async def count_share(
        self,
        selector: Selector,
        start: int,
        end: int,
        *,
        at_most: float | None = None,
        at_least: float | None = None,
    ) -> tuple[int, int]:
        common.check_interval(start, end)
        common.check_bound("at_most", at_most)
        common.check_bound("at_least", at_least)
        conditions, params = common.selector_filter(selector, "s", _placeholder, first=5)
        rows = await self._fetch(
            "SELECT count(*) FILTER (WHERE ($3::float8 IS NULL OR value <= $3) "
            "AND ($4::float8 IS NULL OR value >= $4)), count(*) FROM points "
            f"WHERE series_id IN (SELECT s.id FROM series AS s {common.where(conditions)}) "
            f"AND time >= $1 AND time < $2 AND quality = {common.GOOD} AND value IS NOT NULL",
            start,
            end,
            at_most,
            at_least,
            *params,
        )
        return int(rows[0][0]), int(rows[0][1])

    async def readings_since(self, field: str, since: int) -> int:
        rows = await self._fetch(
            "SELECT count(*) FROM points WHERE series_id IN "
            "(SELECT id FROM series WHERE field = $1) AND time >= $2",
            field,
            since,
        )
        return int(rows[0][0])

    async def devices(
        self,
        *,
        field: str | None = None,
        site: str | None = None,
        device: str | None = None,
        page_size: int = 100,
        page_token: str | None = None,
    ) -> Page[DeviceRecord]:
        common.check_page_size(page_size)
        after = common.decode_page_token(page_token, common.DEVICE_PAGES, 3)
        conditions, params = common.device_filter(field, site, device, after, _placeholder)
        rows = await self._fetch(
            f"{_DEVICE_SELECT} {common.where(conditions)} ORDER BY {common.DEVICE_KEY} "
            f"LIMIT {page_size + 1}",
            *params,
        )
        return Page(
            [_device(row) for row in rows[:page_size]],
            common.next_page_token(rows, page_size, common.DEVICE_PAGES, 3),
        )

    async def device(self, field: str, site: str, device: str) -> DeviceRecord | None:
        rows = await self._fetch(
            f"{_DEVICE_SELECT} WHERE d.field = $1 AND d.site = $2 AND d.device = $3",
            field,
            site,
            device,
        )
        return _device(rows[0]) if rows else None


def _series_conditions(
    selector: Selector, after: tuple[str, ...] | None
) -> tuple[list[str], list[Any]]:
    conditions, params = common.selector_filter(selector, "s", _placeholder)
    if after is not None:
        first = len(params) + 1
        placeholders = ", ".join(f"${number}" for number in range(first, first + 4))
        conditions.append(f"({_SERIES_COLUMNS}) > ({placeholders})")
        params.extend(after)
    return conditions, params


def _device(row: Sequence[Any]) -> DeviceRecord:
    return common.device_record(row, list(row[8]))
