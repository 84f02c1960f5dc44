"""The monitoring service's domain logic over a real SQLite store, without any network."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from monitoring_support import (
    SECOND,
    T0,
    Clock,
    batch,
    city_fields,
    opened_store,
    reading,
    series_batches,
)

from smartcity.fields import Pillar
from smartcity.runtime.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from smartcity.services.monitoring.live import LiveHub, StreamOverflow
from smartcity.services.monitoring.model import (
    MINUTE,
    Aggregation,
    DeviceState,
    Quality,
    Selector,
    SeriesKey,
)
from smartcity.services.monitoring.service import MonitoringService, PageRequest, QueryLimits
from smartcity.services.monitoring.store.base import TimeSeriesStore

FIRST = PageRequest()
TURBIDITY = [round(0.1 * n, 1) for n in range(60)]  # 0.0 .. 5.9 NTU, one every 10 s
WATER_END = T0 + 60 * 10 * SECOND


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[TimeSeriesStore]:
    async with opened_store(store_url) as opened:
        # One batch every 10 s with both of the analyser's metrics.
        water = [
            batch(
                "water_supply", "cau-do", "analyser-1",
                [
                    reading("turbidity", "NTU", value, T0 + n * 10 * SECOND, 2 * n + 1),
                    reading("ph", "pH", 7.0 + n / 100, T0 + n * 10 * SECOND, 2 * n + 2),
                ],
            )
            for n, value in enumerate(TURBIDITY)
        ]  # fmt: skip
        # A second analyser heard from once: no poll interval yet.
        lone = series_batches(
            "water_supply", "cau-do", "analyser-2", "turbidity", "NTU", [0.3],
            start=T0 + 5 * SECOND, interval=SECOND,
        )  # fmt: skip
        substation = series_batches(
            "electricity", "hoa-khanh-110kv", "bay-1-meter", "voltage_an", "kV",
            [22.0 + n / 10 for n in range(30)], start=T0, interval=SECOND,
        )  # fmt: skip
        faulty = series_batches(
            "electricity", "hoa-khanh-110kv", "bay-1-meter", "frequency", "Hz",
            [50.0, None], start=T0 + 40 * SECOND, interval=SECOND, first_sequence=500,
        )  # fmt: skip
        await opened.write([*water, *lone, *substation, *faulty])
        yield opened


@pytest.fixture
def clock() -> Clock:
    return Clock(WATER_END + 5 * SECOND)


@pytest.fixture
def service(store: TimeSeriesStore, clock: Clock) -> MonitoringService:
    return MonitoringService(store, city_fields(), LiveHub(), clock=clock)


# -- latest ----------------------------------------------------------------------------------


async def test_latest_answers_each_matching_series_in_order(service: MonitoringService) -> None:
    page = await service.latest(Selector(field="water_supply"), FIRST)
    keys = [(item.key.device, item.key.metric) for item in page.items]
    assert keys == [("analyser-1", "ph"), ("analyser-1", "turbidity"), ("analyser-2", "turbidity")]
    turbidity = page.items[1]
    assert (turbidity.value, turbidity.unit, turbidity.quality) == (5.9, "NTU", Quality.GOOD)
    assert turbidity.time == T0 + 59 * 10 * SECOND
    assert page.next_page_token is None

    bad = (await service.latest(Selector(metric="frequency"), FIRST)).items
    assert [(item.value, item.quality, item.reason) for item in bad] == [
        (None, Quality.BAD, "sensor fault")
    ]


async def test_latest_pages_through_everything_once(service: MonitoringService) -> None:
    seen: list[SeriesKey] = []
    token: str | None = None
    while True:
        page = await service.latest(Selector(), PageRequest(size=2, token=token))
        assert len(page.items) <= 2
        seen.extend(item.key for item in page.items)
        token = page.next_page_token
        if token is None:
            break
    assert len(seen) == len(set(seen)) == 5
    assert seen == sorted(seen, key=lambda k: (k.field, k.site, k.device, k.metric))


@pytest.mark.parametrize(
    ("selector", "page", "message"),
    [
        (Selector(site="cau.do"), FIRST, r"site 'cau.do' cannot be a NATS subject token"),
        (Selector(metric="ph>"), FIRST, r"metric 'ph>'"),
        (Selector(), PageRequest(size=-1), r"page_size must not be negative, not -1"),
        (Selector(), PageRequest(token="not-a-token"), r"page_token is not one this service"),
    ],
)
async def test_latest_refuses_bad_requests(
    service: MonitoringService, selector: Selector, page: PageRequest, message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        await service.latest(selector, page)


async def test_page_size_is_defaulted_and_capped(store: TimeSeriesStore, clock: Clock) -> None:
    limits = QueryLimits(default_page_size=1, max_page_size=3)
    service = MonitoringService(store, city_fields(), LiveHub(), limits=limits, clock=clock)
    assert len((await service.latest(Selector(), PageRequest(size=0))).items) == 1
    assert len((await service.latest(Selector(), PageRequest(size=500))).items) == 3


# -- range -----------------------------------------------------------------------------------


async def test_range_aggregates_steps_like_the_raw_points(service: MonitoringService) -> None:
    selector = Selector(field="water_supply", device="analyser-1", metric="turbidity")
    for aggregation, combine in [
        (Aggregation.AVG, lambda values: sum(values) / len(values)),
        (Aggregation.MIN, min),
        (Aggregation.MAX, max),
        (Aggregation.LAST, lambda values: values[-1]),
        (Aggregation.COUNT, len),
        (Aggregation.SUM, sum),
    ]:
        result = await service.range(
            selector, start=T0, end=WATER_END, step=MINUTE, aggregation=aggregation, page=FIRST
        )
        (series,) = result.series
        expected = [combine(TURBIDITY[i : i + 6]) for i in range(0, 60, 6)]
        assert [b.start for b in series.buckets] == [T0 + i * MINUTE for i in range(10)]
        assert [b.value for b in series.buckets] == pytest.approx(expected), aggregation
        assert [b.count for b in series.buckets] == [6] * 10


async def test_range_without_end_runs_to_now(service: MonitoringService, clock: Clock) -> None:
    clock.now = T0 + 95 * SECOND
    result = await service.range(
        Selector(metric="turbidity", device="analyser-1"),
        start=T0,
        end=None,
        step=MINUTE,
        aggregation=Aggregation.COUNT,
        page=FIRST,
    )
    assert [b.value for b in result.series[0].buckets] == [6, 4]  # up to T0+90s inclusive


async def test_step_zero_returns_the_raw_good_readings(service: MonitoringService) -> None:
    result = await service.range(
        Selector(metric="frequency"),
        start=T0,
        end=WATER_END,
        step=0,
        aggregation=Aggregation.AVG,
        page=FIRST,
    )
    (series,) = result.series
    assert [(b.start, b.value, b.count) for b in series.buckets] == [(T0 + 40 * SECOND, 50.0, 1)]
    assert result.resolution == 0


@pytest.mark.parametrize(
    ("start", "end", "step", "message"),
    [
        (None, T0, MINUTE, r"time_range.start_time is required"),
        (
            T0,
            T0,
            MINUTE,
            r"the time range is empty: start 2026-11-22T00:00:00Z is not before end "
            r"2026-11-22T00:00:00Z",
        ),
        (T0 + SECOND, T0, MINUTE, r"is not before end"),
        (T0, T0 + MINUTE, -SECOND, r"step must not be negative, not -1s"),
        (
            T0,
            T0 + 7 * 86_400 * SECOND,
            SECOND,
            r"spans 604,800 steps of 1s per series; at most 11,000 are allowed: use a step of "
            r"at least 55s",
        ),
    ],
)
async def test_range_refuses_bad_ranges_with_the_numbers(
    service: MonitoringService, start: int | None, end: int, step: int, message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        await service.range(
            Selector(), start=start, end=end, step=step, aggregation=Aggregation.AVG, page=FIRST
        )


async def test_raw_ranges_are_bounded(store: TimeSeriesStore, clock: Clock) -> None:
    service = MonitoringService(
        store, city_fields(), LiveHub(), limits=QueryLimits(max_raw_points=50), clock=clock
    )
    with pytest.raises(InvalidArgument, match=r"the range holds 60 raw readings; at most 50"):
        await service.range(
            Selector(metric="turbidity", device="analyser-1"),
            start=T0,
            end=WATER_END,
            step=0,
            aggregation=Aggregation.AVG,
            page=FIRST,
        )


async def test_a_range_page_too_large_is_refused_before_any_work(
    store: TimeSeriesStore, clock: Clock
) -> None:
    service = MonitoringService(
        store, city_fields(), LiveHub(), limits=QueryLimits(max_range_points=100), clock=clock
    )
    # Three turbidity/ph series of water_supply match; 60 steps of 10 s each.
    with pytest.raises(
        InvalidArgument,
        match=r"one page would hold 3 series x 60 steps = 180 points; at most 100 are allowed: "
        r"ask for page_size 1 \(or fewer\)",
    ):
        await service.range(
            Selector(field="water_supply"),
            start=T0,
            end=WATER_END,
            step=10 * SECOND,
            aggregation=Aggregation.AVG,
            page=FIRST,
        )
    one = await service.range(
        Selector(field="water_supply"),
        start=T0,
        end=WATER_END,
        step=10 * SECOND,
        aggregation=Aggregation.AVG,
        page=PageRequest(size=1),
    )
    assert len(one.series) == 1
    assert one.next_page_token


async def test_storage_refusals_say_what_they_mean(service: MonitoringService) -> None:
    with pytest.raises(InvalidArgument, match="page_token is not one this service issued"):
        await service.latest(Selector(), PageRequest(token="bm90IGEgdG9rZW4"))
    await service.store.close()
    with pytest.raises(Unavailable, match="storage is unavailable just now; retry shortly"):
        await service.latest(Selector(), FIRST)


async def test_range_pages_series(service: MonitoringService) -> None:
    keys = []
    token: str | None = None
    while True:
        result = await service.range(
            Selector(field="water_supply"),
            start=T0,
            end=WATER_END,
            step=MINUTE,
            aggregation=Aggregation.MAX,
            page=PageRequest(size=1, token=token),
        )
        keys.extend((s.key.device, s.key.metric) for s in result.series)
        token = result.next_page_token
        if token is None:
            break
    assert keys == [("analyser-1", "ph"), ("analyser-1", "turbidity"), ("analyser-2", "turbidity")]


# -- devices ---------------------------------------------------------------------------------


async def test_devices_carry_health_from_their_own_poll_interval(
    service: MonitoringService,
) -> None:
    page = await service.devices(page=FIRST)
    states = {(s.record.site, s.record.device): s.health.state for s in page.items}
    assert states == {
        ("cau-do", "analyser-1"): DeviceState.ONLINE,  # 10 s interval, 5 s silent
        ("cau-do", "analyser-2"): DeviceState.UNKNOWN,  # one batch: no interval yet
        ("hoa-khanh-110kv", "bay-1-meter"): DeviceState.OFFLINE,  # 1 s interval, minutes silent
    }
    analyser = page.items[1].record
    assert analyser.device == "analyser-1"
    assert analyser.metrics == ["ph", "turbidity"]
    assert analyser.poll_interval > 0


async def test_devices_filter_by_state_and_page(service: MonitoringService, clock: Clock) -> None:
    clock.now = WATER_END + 60 * SECOND  # analyser-1 is now six intervals silent
    stale = await service.devices(states=[DeviceState.STALE], page=FIRST)
    assert [s.record.device for s in stale.items] == ["analyser-1"]
    assert stale.items[0].health.since is not None

    names = []
    token: str | None = None
    while True:
        page = await service.devices(
            states=[DeviceState.STALE, DeviceState.OFFLINE],
            page=PageRequest(size=1, token=token),
        )
        names.extend(s.record.device for s in page.items)
        token = page.next_page_token
        if token is None:
            break
    assert names == ["bay-1-meter", "analyser-1"]  # electricity before water_supply

    only_water = await service.devices(field="water_supply", site="cau-do", page=FIRST)
    assert [s.record.device for s in only_water.items] == ["analyser-1", "analyser-2"]


async def test_one_device_or_not_found(service: MonitoringService) -> None:
    status = await service.device("hoa-khanh-110kv", "bay-1-meter")
    assert status.record.field == "electricity"
    assert status.health.state is DeviceState.OFFLINE
    with pytest.raises(NotFound, match=r"no device 'bay-9' at site 'hoa-khanh-110kv'"):
        await service.device("hoa-khanh-110kv", "bay-9")
    with pytest.raises(InvalidArgument, match="site and device are both required"):
        await service.device("", "bay-1-meter")
    with pytest.raises(NotFound, match=r"no device 'bay-1-meter' at site 'hoa-khanh-110kv' in"):
        await service.device("hoa-khanh-110kv", "bay-1-meter", "lighting")


async def test_a_device_reporting_to_two_fields_needs_the_field(
    service: MonitoringService,
) -> None:
    await service.store.write(
        series_batches(
            "energy", "hoa-khanh-110kv", "bay-1-meter", "power_demand", "kW", [1500.0],
            start=T0, interval=SECOND,
        )
    )  # fmt: skip
    with pytest.raises(
        FailedPrecondition, match=r"reports to several fields \(electricity, energy"
    ):
        await service.device("hoa-khanh-110kv", "bay-1-meter")
    energy = await service.device("hoa-khanh-110kv", "bay-1-meter", "energy")
    assert (energy.record.field, energy.record.metrics) == ("energy", ["power_demand"])
    power = await service.device("hoa-khanh-110kv", "bay-1-meter", "electricity")
    assert power.record.metrics == ["frequency", "voltage_an"]


# -- fields ----------------------------------------------------------------------------------


async def test_field_summary_counts_devices_series_and_readings(
    service: MonitoringService, clock: Clock
) -> None:
    summary = await service.field_summary("water_supply")
    assert summary.device_count == 2
    assert summary.states[DeviceState.ONLINE] == 1
    assert summary.states[DeviceState.UNKNOWN] == 1
    assert summary.series_count == 3
    assert summary.readings_last_hour == 121
    kpis = {item.kpi.id: item.value for item in summary.kpis}
    # 21 of the 60 turbidity readings (0.0 .. 2.0 NTU) are at or below the 2 NTU limit,
    # and analyser-2's 0.3 NTU as well.
    assert kpis["turbidity_compliance"] == pytest.approx(100 * 22 / 61)
    assert kpis["volume_supplied"] is None  # no meter reported: no value, not zero
    with pytest.raises(NotFound, match=r"no field 'sewage' is installed"):
        await service.field_summary("sewage")


async def test_list_fields_pages_by_id_and_filters(service: MonitoringService) -> None:
    ids = []
    token: str | None = None
    while True:
        page = service.list_fields(page=PageRequest(size=5, token=token))
        ids.extend(item.id for item in page.items)
        token = page.next_page_token
        if token is None:
            break
    assert ids == sorted(item.id for item in city_fields())
    assert len(ids) == 16

    environment = service.list_fields(pillar=Pillar.ENVIRONMENT, page=FIRST).items
    assert [item.id for item in environment] == [
        "electricity", "energy", "environment", "lighting", "water_supply"
    ]  # fmt: skip
    visible = service.list_fields(page=FIRST, visible=lambda field: field == "traffic").items
    assert [item.id for item in visible] == ["traffic"]

    token = service.list_fields(page=PageRequest(size=2)).next_page_token
    assert token is not None
    with pytest.raises(InvalidArgument, match="page_token is not one this service issued"):
        service.list_fields(pillar=Pillar.ECONOMY, page=PageRequest(token=token))
    with pytest.raises(InvalidArgument, match="page_token"):
        service.list_fields(page=PageRequest(token="%%%"))


# -- streams ---------------------------------------------------------------------------------


async def test_stream_starts_with_the_latest_and_never_repeats_it(
    service: MonitoringService,
) -> None:
    stream = service.stream(Selector(field="water_supply", metric="turbidity"), include_latest=True)
    first = await anext(stream)
    assert [(key.device, r.value) for key, r in first] == [("analyser-1", 5.9), ("analyser-2", 0.3)]
    assert service.hub.subscriber_count == 1

    key = SeriesKey("water_supply", "cau-do", "analyser-1", "turbidity")
    already_sent = first[0][1]
    newer = reading("turbidity", "NTU", 1.5, WATER_END, already_sent.sequence + 2)
    other = reading("ph", "pH", 7, 1, 1)
    # A batch stored before the stream read the latest values reaches the hub after it.
    service.hub.publish([batch("water_supply", "cau-do", "analyser-1", [already_sent, other])])
    service.hub.publish([batch("water_supply", "cau-do", "analyser-1", [newer])])
    live = await asyncio.wait_for(anext(stream), 5)
    assert live == [(key, newer)]
    await stream.aclose()
    assert service.hub.subscriber_count == 0


async def test_a_slow_stream_is_cut_off(store: TimeSeriesStore, clock: Clock) -> None:
    service = MonitoringService(store, city_fields(), LiveHub(max_pending=5), clock=clock)
    stream = service.stream(Selector())
    pending = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    counts = [reading("vehicle_count", "{vehicle}", n, T0 + n, n) for n in range(1, 10)]
    service.hub.publish([batch("traffic", "cross-1", "cam-1", counts[:1])])
    assert len(await asyncio.wait_for(pending, 5)) == 1
    service.hub.publish([batch("traffic", "cross-1", "cam-1", counts[1:])])
    with pytest.raises(StreamOverflow):
        await anext(stream)
