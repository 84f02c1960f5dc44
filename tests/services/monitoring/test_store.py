"""The time-series store, both backends against the same expectations: SQLite in the test's
folder and PostgreSQL in a fresh schema of the server at SMARTCITY_TEST_POSTGRES_URL.

Expected answers are computed in Python straight from the readings written (see
``store_helpers``), never copied from a store's output.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from dataclasses import replace
from pathlib import Path

import pytest
from store_helpers import (
    T0,
    dump,
    execute,
    expected_latest,
    expected_poll_interval,
    expected_range,
    make_batches,
    order,
    readings_of,
    value_of,
    with_id,
)

from smartcity.services.monitoring.model import (
    HOUR,
    MICROS,
    MINUTE,
    Aggregation,
    IngestBatch,
    Quality,
    RangeQuery,
    Retention,
    Selector,
    SeriesKey,
    StoredReading,
)
from smartcity.services.monitoring.store import (
    InvalidQuery,
    StoreError,
    StoreUnavailable,
    TimeSeriesStore,
    open_store,
)
from smartcity.services.monitoring.store.common import (
    decode_page_token,
    encode_page_token,
    load_migrations,
    mask_url,
    parse_migrations,
    plan,
)
from smartcity.services.monitoring.store.postgres import PostgresStore
from smartcity.services.monitoring.store.sqlite import SqliteStore, sqlite_path

SECOND = MICROS


@pytest.fixture(scope="module")
def batches() -> list[IngestBatch]:
    return make_batches()


async def write_in_chunks(store: TimeSeriesStore, batches: list[IngestBatch], size: int = 25):
    written = skipped = readings = 0
    for first in range(0, len(batches), size):
        stats = await store.write(batches[first : first + size])
        written += stats.batches_written
        skipped += stats.batches_skipped
        readings += stats.readings_written
    return written, skipped, readings


def as_lists(result) -> dict[SeriesKey, list[tuple[int, float, int]]]:
    return {
        series.key: [(bucket.start, bucket.value, bucket.count) for bucket in series.buckets]
        for series in result.series
        if series.buckets
    }


# -- write, then every kind of question -----------------------------------------------------


async def test_written_batches_are_answered(store: TimeSeriesStore, batches) -> None:
    total = sum(len(batch.readings) for batch in batches)
    assert await write_in_chunks(store, batches) == (len(batches), 0, total)

    latest = await store.latest(Selector(), page_size=100)
    expected = expected_latest(batches)
    assert [item.key for item in latest.items] == sorted(expected, key=order)
    for item in latest.items:
        reading = expected[item.key]
        assert (item.value, item.quality, item.reason, item.time, item.sequence) == (
            reading.value,
            reading.quality,
            reading.reason,
            reading.time,
            reading.sequence,
        )
    assert latest.next_page_token is None

    only_ph = await store.latest(Selector(field="water_supply", metric="ph"))
    assert [item.key.device for item in only_ph.items] == ["station-1", "station-2"]
    assert {item.unit for item in only_ph.items} == {"pH"}

    for field in ("water_supply", "electricity"):
        since = T0 + HOUR
        assert await store.readings_since(field, since) == sum(
            1 for key, r in readings_of(batches) if key.field == field and r.time >= since
        )


async def test_a_write_larger_than_one_statement(store: TimeSeriesStore) -> None:
    """Many readings of few series in one write: several multi-row statements per table."""
    readings = tuple(
        StoredReading("flow", "m3/h", float(n % 97), Quality.GOOD, "", T0 + n * SECOND, n)
        for n in range(9_000)
    )
    big = IngestBatch("cau-do/pump-1/0", "water_supply", "cau-do", "pump-1", "agent-1",
                      readings, T0 + 9_001 * SECOND)  # fmt: skip
    assert (await store.write([big])).readings_written == len(readings)
    selector = Selector(device="pump-1")
    assert await store.aggregate(selector, Aggregation.COUNT, 0, 2**62) == (9_000.0, 9_000)
    assert await store.aggregate(selector, Aggregation.SUM, T0, T0 + HOUR) == (
        float(sum(n % 97 for n in range(3_600))),
        3_600,
    )
    hours = await store.range(RangeQuery(selector, T0, T0 + 3 * HOUR, HOUR, Aggregation.LAST))
    assert as_lists(hours) == expected_range(
        [big], selector, T0, T0 + 3 * HOUR, HOUR, Aggregation.LAST
    )


async def test_devices_registry_follows_the_batches(store: TimeSeriesStore, batches) -> None:
    await write_in_chunks(store, batches)
    page = await store.devices(page_size=100)
    assert [(d.field, d.site, d.device) for d in page.items] == [
        ("electricity", "hoa-khanh-110kv", "bay-1"),
        ("water_supply", "cau-do", "station-1"),
        ("water_supply", "cau-do", "station-2"),
    ]
    for record in page.items:
        own = [b for b in batches if (b.site, b.device) == (record.site, record.device)]
        received = [b.received for b in own]
        assert record.agent_id == own[0].agent_id
        assert record.first_seen == min(received)
        assert record.last_seen == max(received)
        assert record.last_sequence == max(r.sequence for b in own for r in b.readings)
        assert record.poll_interval == expected_poll_interval(received)
        assert record.poll_interval > 0
        assert list(record.metrics) == sorted({r.metric for b in own for r in b.readings})
        assert await store.device(record.field, record.site, record.device) == record
        # Keyed by the field too: the same device asked for in another field is not there.
        assert await store.device("drainage", record.site, record.device) is None

    assert await store.device("water_supply", "cau-do", "no-such-device") is None
    water = await store.devices(field="water_supply")
    assert [d.device for d in water.items] == ["station-1", "station-2"]
    by_site = await store.devices(site="hoa-khanh-110kv")
    assert [d.device for d in by_site.items] == ["bay-1"]
    by_device = await store.devices(site="cau-do", device="station-2")
    assert [(d.field, d.device) for d in by_device.items] == [("water_supply", "station-2")]


STEPS = [
    # (step, start, end, resolution)
    (10 * SECOND, T0 + 7 * SECOND, T0 + 2 * HOUR + 3 * SECOND, 0),
    (90 * SECOND, T0 - 10 * MINUTE, T0 + HOUR, 0),
    (MINUTE, T0, T0 + 3 * HOUR, MINUTE),
    (5 * MINUTE, T0 + 2 * MINUTE, T0 + 2 * HOUR + 31 * MINUTE, MINUTE),
    (MINUTE, T0 + 7 * SECOND, T0 + 30 * MINUTE + 11 * SECOND, MINUTE),
    (HOUR, T0 - HOUR, T0 + 4 * HOUR, HOUR),
    (HOUR, T0 + 17 * MINUTE + 23 * SECOND, T0 + 2 * HOUR + 41 * MINUTE + 7 * SECOND, HOUR),
    (2 * HOUR, T0 - 13 * MINUTE, T0 + 3 * HOUR + 17 * MINUTE, HOUR),
    (HOUR, T0 + 5 * MINUTE, T0 + 55 * MINUTE, MINUTE),
]


async def test_range_aggregations_equal_a_computation_over_the_raw_points(
    store: TimeSeriesStore, batches
) -> None:
    await write_in_chunks(store, batches)
    selectors = [Selector(), Selector(field="water_supply", metric="ph")]
    for step, start, end, resolution in STEPS:
        for aggregation in Aggregation:
            for selector in selectors:
                query = RangeQuery(selector, start, end, step, aggregation, page_size=100)
                result = await store.range(query)
                what = f"{aggregation} step={step} [{start - T0}, {end - T0}) {selector}"
                assert result.resolution == resolution, what
                expected = expected_range(batches, selector, start, end, step, aggregation)
                assert expected, what
                assert as_lists(result) == expected, what
                assert result.next_page_token is None


async def test_aggregate_and_count_share_over_every_matching_series(
    store: TimeSeriesStore, batches
) -> None:
    await write_in_chunks(store, batches)
    intervals = [(T0 - HOUR, T0 + 4 * HOUR), (T0 + 3 * MINUTE + 5 * SECOND, T0 + 2 * HOUR)]
    for selector in (Selector(field="water_supply"), Selector(metric="frequency")):
        for start, end in intervals:
            good = [
                (r.time, r.sequence, r.value)
                for key, r in readings_of(batches)
                if selector.matches(key)
                and r.quality is Quality.GOOD
                and r.value is not None
                and start <= r.time < end
            ]
            for aggregation in Aggregation:
                value, count = await store.aggregate(selector, aggregation, start, end)
                assert (value, count) == (value_of(aggregation, good), len(good)), aggregation
            within = sum(1 for _, _, v in good if -200 <= v <= 300)
            assert await store.count_share(selector, start, end, at_most=300, at_least=-200) == (
                within,
                len(good),
            )
            assert await store.count_share(selector, start, end) == (len(good), len(good))
    assert await store.aggregate(Selector(site="nowhere"), Aggregation.AVG, T0, T0 + HOUR) == (
        None,
        0,
    )


async def test_paging_returns_every_series_once(store: TimeSeriesStore, batches) -> None:
    await write_in_chunks(store, batches)
    every = sorted(expected_latest(batches), key=order)

    seen, token, pages = [], None, 0
    while True:
        page = await store.latest(Selector(), page_size=2, page_token=token)
        seen += [item.key for item in page.items]
        pages += 1
        token = page.next_page_token
        if token is None:
            break
    assert seen == every
    assert pages == (len(every) + 1) // 2

    seen, token = [], None
    query = RangeQuery(Selector(), T0, T0 + HOUR, MINUTE, Aggregation.MAX, page_size=4)
    while True:
        result = await store.range(replace(query, page_token=token))
        assert len(result.series) <= 4
        seen += [series.key for series in result.series]
        token = result.next_page_token
        if token is None:
            break
    assert seen == every

    devices, token = [], None
    while True:
        page = await store.devices(page_size=1, page_token=token)
        devices += [(d.site, d.device) for d in page.items]
        token = page.next_page_token
        if token is None:
            break
    assert len(devices) == len(set(devices)) == 3


async def test_bad_arguments_are_refused_clearly(store: TimeSeriesStore) -> None:
    with pytest.raises(InvalidQuery, match="invalid page token"):
        await store.latest(Selector(), page_token="not-a-token!")
    device_token = encode_page_token("d", ["f", "s", "d"])
    with pytest.raises(InvalidQuery, match="does not belong"):
        await store.latest(Selector(), page_token=device_token)
    with pytest.raises(InvalidQuery, match="invalid page token"):
        await store.devices(page_token="not-a-token!")
    with pytest.raises(InvalidQuery, match="page_size"):
        await store.devices(page_size=0)
    with pytest.raises(InvalidQuery, match="empty"):
        await store.range(RangeQuery(Selector(), T0, T0, MINUTE, Aggregation.AVG))
    with pytest.raises(InvalidQuery, match="empty"):
        await store.aggregate(Selector(), Aggregation.AVG, T0 + HOUR, T0)
    with pytest.raises(InvalidQuery, match="step"):
        await store.range(RangeQuery(Selector(), T0, T0 + HOUR, 0, Aggregation.AVG))
    with pytest.raises(InvalidQuery, match="finite"):
        await store.count_share(Selector(), T0, T0 + HOUR, at_most=float("nan"))
    with pytest.raises(InvalidQuery, match="at_most"):
        await store.count_series(Selector(), -1)


# -- idempotence ----------------------------------------------------------------------------


async def test_redelivered_batches_change_nothing(
    store: TimeSeriesStore, store_url: str, batches
) -> None:
    await write_in_chunks(store, batches)
    before = await dump(store_url)
    assert len(before["points"]) == sum(len(b.readings) for b in batches)

    shuffled = list(batches)
    random.Random(3).shuffle(shuffled)
    assert await write_in_chunks(store, shuffled, size=40) == (0, len(batches), 0)
    assert await dump(store_url) == before

    # The same batch twice in one call, next to a new one: the new one only, once.
    new = with_id(batches[0], "cau-do/station-1/new", readings=(
        StoredReading("ph", "pH", 7.25, Quality.GOOD, "", T0 + 5 * HOUR, 99_999),
    ))  # fmt: skip
    stats = await store.write([new, batches[1], new])
    assert (stats.batches_written, stats.batches_skipped, stats.readings_written) == (1, 2, 1)
    assert stats.written == (new,)
    after = await dump(store_url)
    assert len(after["points"]) == len(before["points"]) + 1
    assert len(after["batches"]) == len(before["batches"]) + 1


async def test_points_already_stored_by_another_batch_count_once(
    store: TimeSeriesStore, batches
) -> None:
    """A batch id never seen, carrying readings that are already stored (same series, time
    and sequence): only its new reading is stored, and roll-ups still equal raw points."""
    await write_in_chunks(store, batches)
    source = next(b for b in batches if len(b.readings) > 3)
    extra = StoredReading("ph", "pH", 1.5, Quality.GOOD, "", source.readings[0].time, 77_777)
    repeat = with_id(source, "replayed-under-a-new-id", readings=(*source.readings, extra))
    stats = await store.write([repeat])
    assert (stats.batches_written, stats.readings_written) == (1, 1)
    everything = [*batches, with_id(source, "x", readings=(extra,))]
    for step, resolution in ((MINUTE, MINUTE), (HOUR, HOUR), (10 * SECOND, 0)):
        query = RangeQuery(Selector(), T0 - HOUR, T0 + 4 * HOUR, step, Aggregation.SUM)
        result = await store.range(query)
        assert result.resolution == resolution
        assert as_lists(result) == expected_range(
            everything, Selector(), T0 - HOUR, T0 + 4 * HOUR, step, Aggregation.SUM
        )


async def test_a_stored_batch_is_skipped_even_when_its_points_are_gone(
    store: TimeSeriesStore, store_url: str, batches
) -> None:
    """Retention deletes points by their time and batch ids by arrival: a batch that came
    days after its readings keeps its id once its points are gone, and is still skipped when
    it is delivered again; so is a batch without readings."""
    arrival = T0 + 10 * 24 * HOUR
    late = with_id(batches[0], "late", received=arrival)
    empty = with_id(batches[1], "empty", readings=(), received=arrival)
    assert (await store.write([late, empty])).batches_written == 2
    await store.apply_retention(arrival, Retention(raw=24 * HOUR, minute=0, hour=0))
    before = await dump(store_url)
    assert len(before["points"]) == 0
    assert len(before["batches"]) == 2

    stats = await store.write([late, empty])
    assert (stats.batches_written, stats.batches_skipped, stats.readings_written) == (0, 2, 0)
    assert await dump(store_url) == before


async def test_a_batch_with_a_value_that_is_not_finite_changes_nothing(
    store: TimeSeriesStore, store_url: str, batches
) -> None:
    await write_in_chunks(store, batches[:20])
    before = await dump(store_url)
    poisoned = with_id(batches[30], "poisoned", readings=(
        StoredReading("new_metric", "m", 1.0, Quality.GOOD, "", T0, 1),
        StoredReading("ph", "pH", float("nan"), Quality.GOOD, "", T0, 2),
    ))  # fmt: skip
    with pytest.raises(StoreError, match="has the value nan") as refused:
        await store.write([batches[20], poisoned])
    # Refused data: retrying cannot help, and the request itself was well formed.
    assert not isinstance(refused.value, (StoreUnavailable, InvalidQuery))
    assert await dump(store_url) == before
    # The series that the failed write created is forgotten with it: the next write that
    # names the metric creates it again and stores the reading.
    healed = with_id(poisoned, "healed", readings=poisoned.readings[:1])
    assert (await store.write([healed])).readings_written == 1
    latest = await store.latest(Selector(metric="new_metric"))
    assert [item.value for item in latest.items] == [1.0]


async def test_concurrent_writers_store_each_batch_once(store_url: str, batches) -> None:
    """Two store instances (two replicas) write the same batches at once, in different
    orders and groupings; every batch and every reading ends up stored exactly once."""
    first, second = open_store(store_url), open_store(store_url)
    await first.open()
    await second.open()
    try:
        backwards = list(reversed(batches))
        results = await asyncio.gather(
            write_in_chunks(first, batches, size=30), write_in_chunks(second, backwards, size=17)
        )
    finally:
        await first.close()
        await second.close()
    total = sum(len(b.readings) for b in batches)
    assert sum(written for written, _, _ in results) == len(batches)
    assert sum(skipped for _, skipped, _ in results) == len(batches)
    assert sum(readings for _, _, readings in results) == total
    contents = await dump(store_url)
    assert len(contents["points"]) == total
    assert len(contents["batches"]) == len(batches)
    reader = open_store(store_url)
    await reader.open()
    try:
        for step, resolution in ((MINUTE, MINUTE), (HOUR, HOUR)):
            query = RangeQuery(Selector(), T0 - HOUR, T0 + 4 * HOUR, step, Aggregation.AVG)
            result = await reader.range(query)
            assert result.resolution == resolution
            assert as_lists(result) == expected_range(
                batches, Selector(), T0 - HOUR, T0 + 4 * HOUR, step, Aggregation.AVG
            )
    finally:
        await reader.close()


# -- retention ------------------------------------------------------------------------------


async def test_retention_deletes_only_what_is_old(
    store: TimeSeriesStore, store_url: str, batches
) -> None:
    await write_in_chunks(store, batches)
    before = await dump(store_url)
    now = T0 + 4 * HOUR
    retention = Retention(raw=2 * HOUR, minute=3 * HOUR, hour=0)
    raw_cutoff, minute_cutoff = now - retention.raw, now - retention.minute

    stats = await store.apply_retention(now, retention)

    after = await dump(store_url)
    assert stats.raw_deleted == sum(1 for row in before["points"] if row[1] < raw_cutoff) > 0
    assert after["points"] == [row for row in before["points"] if row[1] >= raw_cutoff]
    assert stats.minute_deleted == sum(1 for r in before["rollup_1m"] if r[1] < minute_cutoff) > 0
    assert after["rollup_1m"] == [row for row in before["rollup_1m"] if row[1] >= minute_cutoff]
    assert stats.hour_deleted == 0
    assert after["rollup_1h"] == before["rollup_1h"]
    assert stats.batch_ids_deleted == sum(1 for b in batches if b.received < raw_cutoff) > 0
    # batches: (field, batch_id, received)
    assert after["batches"] == [row for row in before["batches"] if row[2] >= raw_cutoff]
    for table in ("series", "latest", "devices"):
        assert after[table] == before[table], table

    # What is left still answers exactly: raw points after the cutoff, hours from the start.
    recent = await store.range(
        RangeQuery(Selector(), raw_cutoff, now, 10 * SECOND, Aggregation.MAX)
    )
    assert as_lists(recent) == expected_range(
        batches, Selector(), raw_cutoff, now, 10 * SECOND, Aggregation.MAX
    )
    hours = await store.range(RangeQuery(Selector(), T0 - HOUR, now, HOUR, Aggregation.COUNT))
    assert as_lists(hours) == expected_range(
        batches, Selector(), T0 - HOUR, now, HOUR, Aggregation.COUNT
    )

    keep_all = await store.apply_retention(now + 100 * HOUR, Retention(raw=0, minute=0, hour=0))
    assert (keep_all.raw_deleted, keep_all.minute_deleted, keep_all.hour_deleted) == (0, 0, 0)
    assert keep_all.batch_ids_deleted == 0
    assert await dump(store_url) == after


# -- migrations -----------------------------------------------------------------------------


async def test_migrations_are_recorded_and_applied_once(store_url: str) -> None:
    backend = "sqlite" if store_url.startswith("sqlite") else "postgres"
    known = load_migrations(backend)
    assert [m.version for m in known] == list(range(1, len(known) + 1))

    # Two processes opening a new database at the same moment: one migrates, one waits.
    first, second = open_store(store_url), open_store(store_url)
    await asyncio.gather(first.open(), second.open())
    assert await first.schema_version() == await second.schema_version() == len(known)
    await first.close()
    await second.close()
    applied = (await dump(store_url))["schema_migrations"]
    assert [(row[0], row[1]) for row in applied] == [(m.version, m.name) for m in known]

    again = open_store(store_url)
    await again.open()
    await again.close()
    assert (await dump(store_url))["schema_migrations"] == applied

    await execute(
        store_url,
        "INSERT INTO schema_migrations(version, name, applied_at) VALUES (999, 'future', 0)",
    )
    newer = open_store(store_url)
    with pytest.raises(StoreError, match="schema version 999, newer than"):
        await newer.open()


def test_migration_files_must_be_numbered_without_gaps() -> None:
    assert [m.version for m in parse_migrations([("0002_b.sql", ""), ("0001_a.sql", "")])] == [1, 2]
    with pytest.raises(StoreError, match="without gaps"):
        parse_migrations([("0001_a.sql", ""), ("0003_c.sql", "")])
    with pytest.raises(StoreError, match="without gaps"):
        parse_migrations([("0001_a.sql", ""), ("0001_again.sql", "")])
    with pytest.raises(StoreError, match=r"NNNN_description\.sql"):
        parse_migrations([("initial.sql", "")])


# -- URLs -----------------------------------------------------------------------------------


def test_storage_urls_are_checked() -> None:
    with pytest.raises(StoreError, match="unknown storage URL 'mysql'"):
        open_store("mysql://root@127.0.0.1/city")
    with pytest.raises(StoreError, match="in-memory"):
        open_store("sqlite:///:memory:")
    with pytest.raises(StoreError, match="names a host"):
        SqliteStore("sqlite://server/monitoring.db")
    with pytest.raises(StoreError, match="names no file"):
        SqliteStore("sqlite:///data/")
    with pytest.raises(StoreError, match="unknown option"):
        SqliteStore("sqlite:///monitoring.db?journal=off")
    assert sqlite_path("sqlite:///data/monitoring.db") == (Path("data/monitoring.db"), "NORMAL")
    assert sqlite_path("sqlite:////var/lib/smartcity/m.db?synchronous=full") == (
        Path("/var/lib/smartcity/m.db"),
        "FULL",
    )
    with pytest.raises(StoreError, match="not a PostgreSQL URL"):
        PostgresStore("mysql://root@127.0.0.1/city")


async def test_passwords_never_show() -> None:
    url = "postgresql://monitoring:s3cret-pw@127.0.0.1:1/city?search_path=tenant"
    assert mask_url(url) == "postgresql://monitoring:***@127.0.0.1:1/city?search_path=tenant"
    assert mask_url("postgresql://monitoring@127.0.0.1/city") == (
        "postgresql://monitoring@127.0.0.1/city"
    )
    store = PostgresStore(url)
    assert "s3cret" not in store.url
    # Nothing listens on port 1: the error names the server, without the password.
    with pytest.raises(
        StoreError, match="cannot connect to postgresql://monitoring:\\*\\*\\*@"
    ) as caught:
        await store.open()
    assert "s3cret" not in str(caught.value)


async def test_a_closed_store_says_so(tmp_path: Path) -> None:
    store = SqliteStore(f"sqlite:///{tmp_path / 'm.db'}")
    with pytest.raises(StoreUnavailable, match="is not open"):
        await store.latest(Selector())
    await store.open()
    await store.close()
    with pytest.raises(StoreUnavailable, match="is not open"):
        await store.write(make_batches(end=T0)[:1])
    with pytest.raises(StoreUnavailable, match="is not open"):
        await store.ping()


def test_page_tokens_round_trip_and_plans_cover_the_range() -> None:
    token = encode_page_token("s", ["water_supply", "cầu-đỏ", "trạm 1", "pH"])
    assert decode_page_token(token, "s", 4) == ("water_supply", "cầu-đỏ", "trạm 1", "pH")
    assert decode_page_token(None, "s", 4) is None
    for step in (10 * SECOND, MINUTE, 5 * MINUTE, HOUR, 3 * HOUR):
        for start, end in ((T0 + 7 * SECOND, T0 + 5 * HOUR + 3 * SECOND), (T0, T0 + HOUR)):
            segments = plan(start, end, step)
            assert segments[0].start == start
            assert segments[-1].end == end
            assert all(a.end == b.start for a, b in itertools.pairwise(segments))
            for segment in segments:
                if segment.width:
                    assert step % segment.width == 0
                    assert segment.start % segment.width == segment.end % segment.width == 0
