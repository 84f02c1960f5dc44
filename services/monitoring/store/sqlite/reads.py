"""The SQLite store's queries, each run in a reader thread: the latest values, ranges and
aggregates (from roll-ups and raw points, as :mod:`smartcity.services.monitoring.store.ranges`
plans them), the counts of the KPIs and the device registry. The write statements are
:mod:`.statements`'s.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from smartcity.runtime.storage.sqlite import snapshot
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
from smartcity.services.monitoring.store.sqlite.connection import SqliteStoreBase


def _placeholder(number: int) -> str:
    return f"?{number}"


def _named(number: int) -> str:
    return f":s{number}"


_SERIES_COLUMNS = "s.field, s.site, s.device, s.metric"
_IDS = "(SELECT j.value FROM json_each(:ids) AS j)"


@lru_cache(maxsize=64)
def _partials_sql(width: int, last: bool, bucketed: bool, series: str) -> str:
    """Partial aggregates ``(series_id, bucket, count, sum, min, max, last_time,
    last_sequence, last_value)`` of one segment: from raw points (``width`` 0) or a roll-up
    table, over the series that the SQL ``series`` lists. Named parameters: ``start`` and
    ``end`` of the segment, ``step`` (when ``bucketed``) and those of ``series``."""
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
    bucket = ranges.bucket_sql(column, ":step") if bucketed else "0"
    where = f"series_id IN {series} AND {column} >= :start AND {column} < :end{good}"
    if not last:
        return (
            f"SELECT series_id, {bucket} AS b, sum({count}), sum({total}), min({low}), "
            f"max({high}), NULL, NULL, NULL FROM {table} WHERE {where} GROUP BY series_id, b"
        )
    return (
        f"SELECT series_id, b, n, total, low, high, {last_time}, {last_sequence}, {last_value} "
        f"FROM (SELECT series_id, {bucket} AS b, {last_time}, {last_sequence}, {last_value}, "
        f"sum({count}) OVER w AS n, sum({total}) OVER w AS total, min({low}) OVER w AS low, "
        f"max({high}) OVER w AS high, row_number() OVER (w ORDER BY {last_time} DESC, "
        f"{last_sequence} DESC) AS position FROM {table} WHERE {where} "
        f"WINDOW w AS (PARTITION BY series_id, {bucket})) WHERE position = 1"
    )


class SqliteReads(SqliteStoreBase):
    """Every query of the store, on a reader connection."""

    async def latest(
        self, selector: Selector, *, page_size: int = 100, page_token: str | None = None
    ) -> Page[LatestValue]:
        common.check_page_size(page_size)
        after = common.decode_page_token(page_token, common.SERIES_PAGES, 4)
        conditions, params = common.selector_filter(selector, "s", _placeholder)
        if after is not None:
            # A bare ? is numbered one past the largest ?n before it: after the selector's.
            conditions.append(f"({_SERIES_COLUMNS}) > (?, ?, ?, ?)")
            params.extend(after)
        sql = (
            f"SELECT {_SERIES_COLUMNS}, s.unit, l.value, l.quality, l.reason, l.time, "
            f"l.sequence FROM series AS s JOIN latest AS l ON l.series_id = s.id "
            f"{common.where(conditions)} ORDER BY {_SERIES_COLUMNS} LIMIT {page_size + 1}"
        )
        rows = await self._read(lambda db: db.execute(sql, params).fetchall())
        items = [common.latest_value(row) for row in rows[:page_size]]
        return Page(items, common.next_page_token(rows, page_size, common.SERIES_PAGES, 4))

    async def count_series(self, selector: Selector, at_most: int) -> int:
        sql, params = common.count_series_sql(selector, at_most, _placeholder)
        return await self._read(lambda db: int(db.execute(sql, params).fetchone()[0]))

    async def range(self, query: RangeQuery) -> RangeResult:
        common.check_range(query)
        after = common.decode_page_token(query.page_token, common.SERIES_PAGES, 4)
        segments = ranges.plan(query.start, query.end, query.step)
        last = query.aggregation is Aggregation.LAST
        return await self._read(self._range, query, after, segments, last)

    def _range(
        self,
        db: sqlite3.Connection,
        query: RangeQuery,
        after: tuple[str, ...] | None,
        segments: list[ranges.Segment],
        last: bool,
    ) -> RangeResult:
        conditions, params = common.selector_filter(query.selector, "s", _placeholder)
        if after is not None:
            conditions.append(f"({_SERIES_COLUMNS}) > (?, ?, ?, ?)")
            params.extend(after)
        partials: dict[tuple[int, int], ranges.Partial] = {}
        # One snapshot for the series and every segment: a write that lands in between
        # cannot show up in one segment and not in another.
        with snapshot(db):
            series = db.execute(
                f"SELECT s.id, {_SERIES_COLUMNS}, s.unit FROM series AS s "
                f"{common.where(conditions)} "
                f"ORDER BY {_SERIES_COLUMNS} LIMIT {query.page_size + 1}",
                params,
            ).fetchall()
            page = series[: query.page_size]
            ids = json.dumps([row[0] for row in page])
            for segment in segments:
                sql = _partials_sql(segment.width, last, True, _IDS)
                arguments = {
                    "ids": ids,
                    "start": segment.start,
                    "end": segment.end,
                    "step": query.step,
                }
                ranges.merge_partials(db.execute(sql, arguments), partials)
        buckets = ranges.buckets_by_series(query.aggregation, partials)
        return RangeResult(
            series=[
                SeriesRange(SeriesKey(*row[1:5]), row[5], buckets.get(row[0], [])) for row in page
            ],
            resolution=ranges.resolution(segments),
            next_page_token=common.next_page_token(
                [row[1:] for row in series], query.page_size, common.SERIES_PAGES, 4
            ),
        )

    async def aggregate(
        self, selector: Selector, aggregation: Aggregation, start: int, end: int
    ) -> tuple[float | None, int]:
        common.check_interval(start, end)
        segments = ranges.plan(start, end, None)
        last = aggregation is Aggregation.LAST
        conditions, params = common.selector_filter(selector, "s", _named)
        series = f"(SELECT s.id FROM series AS s {common.where(conditions)})"
        named = {f"s{number}": value for number, value in enumerate(params, start=1)}

        def compute(db: sqlite3.Connection) -> dict[tuple[int, int], ranges.Partial]:
            partials: dict[tuple[int, int], ranges.Partial] = {}
            with snapshot(db):
                for segment in segments:
                    sql = _partials_sql(segment.width, last, False, series)
                    rows = db.execute(sql, {**named, "start": segment.start, "end": segment.end})
                    # One bucket for everything: fold the per-series rows into series 0.
                    ranges.merge_partials(((0, 0, *row[2:]) for row in rows), partials)
            return partials

        partials = await self._read(compute)
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
        sql = (
            "SELECT coalesce(sum(iif((?3 IS NULL OR value <= ?3) AND (?4 IS NULL OR value >= ?4), "
            "1, 0)), 0), count(*) FROM points "
            f"WHERE series_id IN (SELECT s.id FROM series AS s {common.where(conditions)}) "
            f"AND time >= ?1 AND time < ?2 AND quality = {common.GOOD} AND value IS NOT NULL"
        )
        row = await self._read(
            lambda db: db.execute(sql, [start, end, at_most, at_least, *params]).fetchone()
        )
        return int(row[0]), int(row[1])

    async def readings_since(self, field: str, since: int) -> int:
        sql = (
            "SELECT count(*) FROM points WHERE series_id IN "
            "(SELECT id FROM series WHERE field = ?) AND time >= ?"
        )
        return await self._read(lambda db: int(db.execute(sql, (field, since)).fetchone()[0]))

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
        sql = (
            f"{_DEVICE_SELECT} {common.where(conditions)} ORDER BY {common.DEVICE_KEY} "
            f"LIMIT {page_size + 1}"
        )
        rows = await self._read(lambda db: db.execute(sql, params).fetchall())
        return Page(
            [_device(row) for row in rows[:page_size]],
            common.next_page_token(rows, page_size, common.DEVICE_PAGES, 3),
        )

    async def device(self, field: str, site: str, device: str) -> DeviceRecord | None:
        sql = f"{_DEVICE_SELECT} WHERE d.field = ? AND d.site = ? AND d.device = ?"
        row = await self._read(lambda db: db.execute(sql, (field, site, device)).fetchone())
        return None if row is None else _device(row)


_DEVICE_SELECT = (
    f"SELECT {common.DEVICE_KEY}, d.agent_id, d.first_seen, d.last_seen, d.poll_interval, "
    "d.last_sequence, (SELECT group_concat(s.metric, char(31)) FROM series AS s "
    "WHERE s.field = d.field AND s.site = d.site AND s.device = d.device) FROM devices AS d"
)


def _device(row: Sequence[Any]) -> DeviceRecord:
    return common.device_record(row, sorted(row[8].split("\x1f")) if row[8] else [])
