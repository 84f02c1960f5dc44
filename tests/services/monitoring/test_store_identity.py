"""What identifies a batch and a device record in the store: the field with the batch id,
the field with the site and device. Also the batches the service derives itself, what a
write reports as stored, the questions asked before a write or a query, and the migration
that made identity field-scoped, from a database an older release left behind. Both
backends, against the same expectations.
"""

from __future__ import annotations

from dataclasses import replace

from store_helpers import T0, create_at_version, dump, fetch, make_batches, one_batch

from smartcity.services.monitoring.model import (
    HOUR,
    MICROS,
    MINUTE,
    Aggregation,
    DeviceRecord,
    RangeQuery,
    Selector,
)
from smartcity.services.monitoring.store import TimeSeriesStore, open_store
from smartcity.services.monitoring.store.common import load_migrations

SECOND = MICROS


# -- field-scoped identity ------------------------------------------------------------------


async def test_the_same_batch_id_in_two_fields_is_two_batches(store: TimeSeriesStore) -> None:
    """A device that reports to two fields, whose agents number batches alike: each field's
    batch is stored, and the device has a record in each field."""
    same = "cau-do/station-1/1"
    drainage = one_batch(
        "drainage", "cau-do", "station-1", same, T0, ("level", 1.5, 1), agent_id="edge-d"
    )
    water = one_batch(
        "water_supply", "cau-do", "station-1", same, T0 + SECOND, ("ph", 7.0, 1), agent_id="edge-w"
    )
    assert (await store.write([drainage])).written == (drainage,)
    stats = await store.write([water, drainage])
    assert (stats.batches_written, stats.batches_skipped, stats.readings_written) == (1, 1, 1)
    assert stats.written == (water,)

    records = (await store.devices(site="cau-do", device="station-1")).items
    assert [(r.field, r.agent_id, r.last_seen, list(r.metrics)) for r in records] == [
        ("drainage", "edge-d", T0, ["level"]),
        ("water_supply", "edge-w", T0 + SECOND, ["ph"]),
    ]
    assert await store.device("drainage", "cau-do", "station-1") == records[0]
    assert await store.device("water_supply", "cau-do", "station-1") == records[1]
    assert (await store.devices(field="water_supply")).items == [records[1]]
    assert (await store.devices(device="station-1")).items == records

    # Both fields' batches with one id in one call: both stored, the copy skipped.
    other = "cau-do/station-1/2"
    both = [
        one_batch("drainage", "cau-do", "station-1", other, T0 + MINUTE, ("level", 1.75, 2)),
        one_batch("water_supply", "cau-do", "station-1", other, T0 + MINUTE, ("ph", 7.25, 2)),
    ]
    stats = await store.write([*both, both[0]])
    assert (stats.written, stats.batches_skipped) == (tuple(both), 1)
    latest = await store.latest(Selector(site="cau-do"))
    assert [(item.key.field, item.value) for item in latest.items] == [
        ("drainage", 1.75),
        ("water_supply", 7.25),
    ]


async def test_batches_the_service_derives_leave_the_registry_alone(
    store: TimeSeriesStore,
) -> None:
    polls = [
        one_batch(
            "environment",
            "lien-chieu",
            "aq-1",
            f"lien-chieu/aq-1/{n}",
            T0 + n * 5 * MINUTE,
            ("pm25", 10.0 + n, n),
        )
        for n in range(1, 4)
    ]
    await store.write(polls)
    before = await store.device("environment", "lien-chieu", "aq-1")
    assert before is not None
    assert (before.last_seen, before.poll_interval, before.last_sequence) == (
        T0 + 15 * MINUTE,
        5 * MINUTE,
        3,
    )

    hourly = one_batch(
        "environment",
        "lien-chieu",
        "aq-1",
        f"hourly/lien-chieu/aq-1/{T0}",
        T0 + HOUR,
        ("vn_aqi", 42.0, 99),
        agent_id="monitoring",
        from_device=False,
    )
    assert (await store.write([hourly])).written == (hourly,)
    # Stored as any reading: latest value and roll-ups...
    latest = await store.latest(Selector(metric="vn_aqi"))
    assert [(item.value, item.time) for item in latest.items] == [(42.0, T0 + HOUR)]
    hours = await store.range(
        RangeQuery(Selector(metric="vn_aqi"), T0, T0 + 2 * HOUR, HOUR, Aggregation.MAX)
    )
    assert hours.resolution == HOUR
    assert [(b.start, b.value, b.count) for b in hours.series[0].buckets] == [(T0 + HOUR, 42.0, 1)]
    # ...but the record keeps what the device's own batches said (its metrics are its series).
    after = await store.device("environment", "lien-chieu", "aq-1")
    assert after == replace(before, metrics=["pm25", "vn_aqi"])

    # A second replica computing the same value: gated by the id, stored once.
    again = await store.write([hourly])
    assert (again.written, again.batches_skipped) == ((), 1)
    assert await store.aggregate(Selector(metric="vn_aqi"), Aggregation.COUNT, 0, 2**62) == (
        1.0,
        1,
    )

    # Next to the device's own batch in one write: only the device's batch moves the record.
    poll = one_batch(
        "environment",
        "lien-chieu",
        "aq-1",
        "lien-chieu/aq-1/4",
        T0 + 20 * MINUTE,
        ("pm25", 14.0, 4),
    )
    later = replace(hourly, batch_id=f"hourly/lien-chieu/aq-1/{T0 + HOUR}", received=T0 + 2 * HOUR)
    assert (await store.write([later, poll])).batches_written == 2
    moved = await store.device("environment", "lien-chieu", "aq-1")
    assert moved is not None
    assert (moved.last_seen, moved.poll_interval, moved.last_sequence) == (
        T0 + 20 * MINUTE,
        5 * MINUTE,
        4,
    )

    # A derived batch of a device the registry has never seen makes no record.
    orphan = replace(hourly, batch_id="hourly/lien-chieu/aq-2/0", device="aq-2")
    assert (await store.write([orphan])).batches_written == 1
    assert await store.device("environment", "lien-chieu", "aq-2") is None
    assert [d.device for d in (await store.devices(site="lien-chieu")).items] == ["aq-1"]


# -- what a write reports, and what is asked before one -------------------------------------


async def test_written_lists_the_batches_stored_in_call_order(store: TimeSeriesStore) -> None:
    a, b, c, d = make_batches(end=T0 + 10 * MINUTE)[:4]
    await store.write([b, d])
    stats = await store.write([c, b, a, c, d])
    assert stats.written == (c, a)
    assert (stats.batches_written, stats.batches_skipped) == (2, 3)
    assert stats.readings_written == len(c.readings) + len(a.readings)
    assert (await store.write([])).written == ()


async def test_has_batches_names_the_stored_pairs(store: TimeSeriesStore) -> None:
    batches = make_batches(end=T0 + 20 * MINUTE)
    stored, fresh = batches[::2], batches[1::2]
    await store.write(stored)
    assert await store.has_batches([]) == set()
    keys = [(b.field, b.batch_id) for b in batches]
    elsewhere = [("drainage", b.batch_id) for b in stored]
    assert await store.has_batches([*keys, *elsewhere]) == {(b.field, b.batch_id) for b in stored}
    assert await store.has_batches([(fresh[0].field, fresh[0].batch_id)]) == set()
    # Many keys at once: still one statement, still exact.
    many = [*keys, *((f"f{n}", f"id{n}") for n in range(5_000))]
    assert len(await store.has_batches(many)) == len(stored)


async def test_count_series_stops_at_the_limit(store: TimeSeriesStore) -> None:
    await store.write(make_batches(end=T0 + 10 * MINUTE))  # 3 devices x 3 metrics
    for selector, total in (
        (Selector(), 9),
        (Selector(field="water_supply"), 6),
        (Selector(metric="ph"), 2),
        (Selector(field="electricity", site="hoa-khanh-110kv", device="bay-1"), 3),
        (Selector(site="nowhere"), 0),
    ):
        assert await store.count_series(selector, 1_000) == total, selector
        assert await store.count_series(selector, 4) == min(total, 4), selector
        assert await store.count_series(selector, 0) == 0


# -- migration 2: identity becomes field-scoped ---------------------------------------------

V1_DEVICES = [
    # site, device, field, agent_id, first_seen, last_seen, poll_interval, last_sequence
    ("cau-do", "station-1", "water_supply", "agent-cau-do", T0, T0 + MINUTE, MINUTE, 41),
    ("hoa-khanh-110kv", "bay-1", "electricity", "agent-hk", T0, T0 + 2 * SECOND, SECOND, 9),
    ("son-tra", "gauge", "flood", "agent-st", T0, T0, 0, 3),
    ("son-tra", "gauge/2", "drainage", "agent-st", T0, T0, 0, 5),
]
V1_BATCHES = {
    # batch_id: the field it is expected to get
    "cau-do/station-1/1": "water_supply",
    "cau-do/station-1/41": "water_supply",
    "hoa-khanh-110kv/bay-1/9": "electricity",
    "son-tra/gauge/3": "flood",
    "son-tra/gauge/2/5": "drainage",  # the longest registered prefix
    "cau-do/station-9/3": "",  # no such device
    "cau-do/station-1": "",  # no "/" after the device
    "manual-import": "",
}
V1_DATA = {
    "series": [(1, "water_supply", "cau-do", "station-1", "ph", "pH")],
    "points": [(1, T0, 1, 7.25, 1, None), (1, T0 + MINUTE, 41, 7.5, 1, None)],
    "latest": [(1, T0 + MINUTE, 41, 7.5, 1, None)],
    "rollup_1m": [
        (1, T0, 1, 7.25, 7.25, 7.25, T0, 1, 7.25),
        (1, T0 + MINUTE, 1, 7.5, 7.5, 7.5, T0 + MINUTE, 41, 7.5),
    ],
    "rollup_1h": [(1, T0, 2, 14.75, 7.25, 7.5, T0 + MINUTE, 41, 7.5)],
    "devices": V1_DEVICES,
    "batches": [(batch_id, T0 + n) for n, batch_id in enumerate(V1_BATCHES)],
}


async def test_a_schema_1_database_is_carried_over(store_url: str) -> None:
    await create_at_version(store_url, 1, V1_DATA)
    store = open_store(store_url)
    await store.open()
    try:
        backend = "sqlite" if store_url.startswith("sqlite") else "postgres"
        assert await store.schema_version() == len(load_migrations(backend)) >= 2
        contents = await dump(store_url)
        for table in ("series", "points", "latest", "rollup_1m", "rollup_1h"):
            assert contents[table] == sorted(V1_DATA[table]), table
        assert contents["batches"] == sorted(
            (V1_BATCHES[batch_id], batch_id, received) for batch_id, received in V1_DATA["batches"]
        )
        for site, device, field, agent, first, last, interval, sequence in V1_DEVICES:
            metrics = ["ph"] if device == "station-1" else []
            assert await store.device(field, site, device) == DeviceRecord(
                field, site, device, agent, first, last, interval, sequence, metrics
            )
        assert await _indexes(store_url, "devices") == {"devices_by_device"}
        assert await _indexes(store_url, "batches") == {"batches_by_received"}

        # A stored id of another field is a new batch now; of the same field, a redelivery.
        drainage = one_batch(
            "drainage", "cau-do", "station-1", "cau-do/station-1/1", T0 + HOUR, ("level", 0.5, 1)
        )
        redelivered = one_batch(
            "water_supply", "cau-do", "station-1", "cau-do/station-1/41", T0 + HOUR, ("ph", 9.0, 41)
        )
        stats = await store.write([drainage, redelivered])
        assert (stats.written, stats.batches_skipped) == ((drainage,), 1)
        records = (await store.devices(site="cau-do", device="station-1")).items
        assert [(r.field, r.last_seen) for r in records] == [
            ("drainage", T0 + HOUR),
            ("water_supply", T0 + MINUTE),
        ]
    finally:
        await store.close()


async def _indexes(url: str, table: str) -> set[str]:
    """The secondary indexes of ``table`` (not its primary key)."""
    if url.startswith("sqlite:"):
        sql = f"SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = '{table}'"
    else:
        sql = (
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
            f"AND tablename = '{table}' AND indexname <> '{table}_pkey'"
        )
    return {row[0] for row in await fetch(url, sql)}
