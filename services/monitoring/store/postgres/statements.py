"""The statements of a PostgreSQL write (see :mod:`.writes` for the path they take) and
the copies it makes: the points, and the latest values and roll-ups into a temporary table
(:data:`STAGE`) that one statement upserts them from. The queries are :mod:`.reads`'s.
"""

from __future__ import annotations

import asyncpg

from smartcity.services.monitoring.model import HOUR, MINUTE
from smartcity.services.monitoring.store import common, writes
from smartcity.services.monitoring.store.ranges import ROLLUP_TABLES

POINT_COLUMNS = ("series_id", "time", "sequence", "value", "quality", "reason")
PLAIN_COLUMNS = ("series_id", "time", "sequence", "value")

SELECT_BATCHES = """
SELECT b.field, b.batch_id FROM batches AS b
JOIN unnest($1::text[], $2::text[]) AS k(field, batch_id)
  ON b.field = k.field AND b.batch_id = k.batch_id
"""

INSERT_BATCHES = """
INSERT INTO batches(field, batch_id, received)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
ON CONFLICT DO NOTHING
RETURNING field, batch_id
"""
INSERT_POINTS = """
INSERT INTO points(series_id, time, sequence, value, quality, reason)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::float8[], $5::int2[],
                     $6::text[])
ON CONFLICT DO NOTHING
RETURNING series_id, time, sequence
"""

STAGE = "monitoring_summary"
"""A temporary table of each connection that a write's latest values and roll-ups are
copied into, to be upserted from in one statement: a binary ``COPY`` of its rows costs
the client a fraction of what the same values cost as array parameters."""
CREATE_STAGE = f"""
CREATE TEMPORARY TABLE IF NOT EXISTS {STAGE} (
    width bigint NOT NULL,
    series_id bigint NOT NULL,
    bucket bigint,
    count bigint,
    sum double precision,
    min double precision,
    max double precision,
    last_time bigint NOT NULL,
    last_sequence bigint NOT NULL,
    last_value double precision,
    quality smallint,
    reason text
) ON COMMIT DELETE ROWS"""
LATEST = 0
"""The ``width`` of the staged latest values; the roll-ups' is their bucket width."""


def _upsert_latest() -> str:
    return f"""
INSERT INTO latest AS l (series_id, time, sequence, value, quality, reason)
SELECT series_id, last_time, last_sequence, last_value, quality, reason
FROM {STAGE} WHERE width = {LATEST} ORDER BY series_id
ON CONFLICT (series_id) DO UPDATE SET
    time = excluded.time, sequence = excluded.sequence, value = excluded.value,
    quality = excluded.quality, reason = excluded.reason
WHERE (excluded.time, excluded.sequence) > (l.time, l.sequence)"""


def _upsert_rollup(width: int) -> str:
    newer = "(excluded.last_time, excluded.last_sequence) > (r.last_time, r.last_sequence)"
    return f"""
INSERT INTO {ROLLUP_TABLES[width]} AS r
    (series_id, bucket, count, sum, min, max, last_time, last_sequence, last_value)
SELECT series_id, bucket, count, sum, min, max, last_time, last_sequence, last_value
FROM {STAGE} WHERE width = {width} ORDER BY series_id, bucket
ON CONFLICT (series_id, bucket) DO UPDATE SET
    count = r.count + excluded.count,
    sum = r.sum + excluded.sum,
    min = least(r.min, excluded.min),
    max = greatest(r.max, excluded.max),
    last_time = CASE WHEN {newer} THEN excluded.last_time ELSE r.last_time END,
    last_sequence = CASE WHEN {newer} THEN excluded.last_sequence ELSE r.last_sequence END,
    last_value = CASE WHEN {newer} THEN excluded.last_value ELSE r.last_value END"""


SUMMARY_UPSERTS = (
    f"latest_rows AS ({_upsert_latest()}), "
    f"minute_rows AS ({_upsert_rollup(MINUTE)}), "
    f"hour_rows AS ({_upsert_rollup(HOUR)})"
)
"""A write's staged latest values and roll-ups upserted as the data-modifying parts of one
statement, in key order: one round trip, and the rows the next write waits for are locked
briefly."""

UPSERT_SUMMARY = f"WITH {SUMMARY_UPSERTS} SELECT 1"

WRITE_FRESH = f"""
WITH fresh AS (
    INSERT INTO batches(field, batch_id, received)
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
    ON CONFLICT DO NOTHING
    RETURNING 1
), {SUMMARY_UPSERTS}
SELECT count(*) FROM fresh"""
"""The batch ids and the staged summary of a write whose points are copied already, in one
statement; it answers how many of the batches were new."""

# One statement per batch (executemany, pipelined): several batches of one device in a write
# move the poll interval estimate one after the other, which one multi-row upsert cannot.
UPSERT_DEVICE = f"""
INSERT INTO devices AS d (field, site, device, agent_id, first_seen, last_seen, poll_interval,
                          last_sequence)
VALUES ($1, $2, $3, $4, $5, $5, 0, $6)
ON CONFLICT (field, site, device) DO UPDATE SET
    agent_id = excluded.agent_id,
    first_seen = least(d.first_seen, excluded.first_seen),
    poll_interval = CASE
        WHEN excluded.last_seen <= d.last_seen THEN d.poll_interval
        WHEN d.poll_interval = 0 THEN excluded.last_seen - d.last_seen
        ELSE d.poll_interval + (excluded.last_seen - d.last_seen - d.poll_interval)
             / {common.POLL_INTERVAL_WEIGHT}
    END,
    last_seen = greatest(d.last_seen, excluded.last_seen),
    last_sequence = greatest(d.last_sequence, excluded.last_sequence)
"""

INSERT_SERIES = """
INSERT INTO series(field, site, device, metric, unit)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
ORDER BY 1, 2, 3, 4
ON CONFLICT DO NOTHING
"""
SELECT_SERIES = """
SELECT s.id, s.field, s.site, s.device, s.metric
FROM series AS s
JOIN unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS k(field, site, device, metric)
  ON s.field = k.field AND s.site = k.site AND s.device = k.device AND s.metric = k.metric
"""


class AlreadyStored(Exception):  # noqa: N818 - control flow inside a write
    """A batch of a write that assumed none were stored is stored already."""


async def copy_points(conn: asyncpg.Connection, points: writes.Points) -> None:
    # GOOD readings without a reason go in with four columns: quality defaults to GOOD, and
    # COPY encodes a third less.
    if points.plain:
        await conn.copy_records_to_table("points", records=points.plain, columns=PLAIN_COLUMNS)
    if points.other:
        await conn.copy_records_to_table("points", records=points.other, columns=POINT_COLUMNS)


async def stage_summary(conn: asyncpg.Connection, summary: writes.Summary) -> None:
    """Copy ``summary`` into the connection's staging table (emptied at commit)."""
    staged = [(LATEST, *row[:1], None, None, None, None, None, *row[1:]) for row in summary.latest]
    for width, rows in ((MINUTE, summary.minute), (HOUR, summary.hour)):
        staged += [(width, *row, None, None) for row in rows]
    if staged:
        await conn.copy_records_to_table(STAGE, records=staged)
