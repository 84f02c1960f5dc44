"""The monitoring gRPC API on a real grpc.aio server (loopback, port 0) over a real SQLite
store, called through a real channel: every RPC, paging, argument errors, tokens and roles,
and live streams fed through the hub, including a client too slow to keep up."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import grpc.aio
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from monitoring_support import (
    SECOND,
    T0,
    Clock,
    batch,
    city_fields,
    reading,
    series_batches,
    sqlite_store,
)
from support import eventually
from token_support import ISSUER, Signer

from smartcity.common.v1 import common_pb2
from smartcity.monitoring.v1 import monitoring_pb2, monitoring_pb2_grpc
from smartcity.runtime.config import GrpcSettings, LoggingSettings
from smartcity.runtime.grpc_client import channel
from smartcity.runtime.grpc_server import GrpcServer
from smartcity.runtime.logs import setup_logging
from smartcity.runtime.tokens import TokenVerifier
from smartcity.services.monitoring.live import LiveHub
from smartcity.services.monitoring.model import MINUTE, Quality
from smartcity.services.monitoring.server import build_server
from smartcity.services.monitoring.service import MonitoringService, QueryLimits
from smartcity.services.monitoring.store.base import TimeSeriesStore

KID = "identity-test"
NOW = T0 + 10 * MINUTE
WATER = common_pb2.SeriesSelector(field="water_supply")


class Keys:
    """The identity service's signing key, and tokens signed with it."""

    def __init__(self) -> None:
        self.signer = Signer(kid=KID)

    def verifier(self) -> TokenVerifier:
        return TokenVerifier(self.signer.key_set(), issuer=ISSUER)

    def token(
        self, roles: list[str], *, key: Ed25519PrivateKey | None = None, ttl: int = 300
    ) -> str:
        signer = self.signer if key is None else Signer(kid=KID, key=key)
        now = int(time.time())
        return signer.sign(
            sub="staff-ioc-7", roles=roles, iat=now - 10, exp=now + ttl, acr=None, amr=None
        )


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[TimeSeriesStore]:
    async with sqlite_store(tmp_path) as opened:
        await opened.write(
            [
                *(
                    batch(
                        "water_supply", "cau-do", "analyser-1",
                        [
                            reading("turbidity", "NTU", 0.5 + n / 10, T0 + n * MINUTE, 2 * n + 1),
                            reading("ph", "pH", 7.2, T0 + n * MINUTE, 2 * n + 2),
                        ],
                    )
                    for n in range(10)
                ),
                *series_batches(
                    "water_supply", "cau-do", "analyser-2", "turbidity", "NTU", [3.0, None],
                    start=T0, interval=MINUTE, first_sequence=100,
                ),
                *series_batches(
                    "electricity", "hoa-khanh-110kv", "bay-1-meter", "voltage_an", "kV",
                    [22.0, 22.1, 22.2], start=T0, interval=SECOND,
                ),
            ]
        )  # fmt: skip
        yield opened


@pytest.fixture
def hub() -> LiveHub:
    return LiveHub(max_pending=50)


@pytest.fixture
def service(store: TimeSeriesStore, hub: LiveHub) -> MonitoringService:
    return MonitoringService(store, city_fields(), hub, clock=Clock(NOW))


@pytest.fixture
async def server(service: MonitoringService, keys: Keys) -> AsyncIterator[GrpcServer]:
    async with build_server(GrpcSettings(port=0), service, keys.verifier()) as started:
        yield started


@pytest.fixture
async def city(
    server: GrpcServer, keys: Keys
) -> AsyncIterator[monitoring_pb2_grpc.MonitoringServiceStub]:
    """A client allowed to view every field."""
    async with channel(server.address, token=keys.token(["viewer:*"])) as connection:
        yield monitoring_pb2_grpc.MonitoringServiceStub(connection)


def stamp(micros: int) -> Timestamp:
    result = Timestamp()
    result.FromMicroseconds(micros)
    return result


def span(micros: int) -> Duration:
    result = Duration()
    result.FromMicroseconds(micros)
    return result


async def refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


# -- answers ---------------------------------------------------------------------------------


async def test_get_latest_maps_readings(city: monitoring_pb2_grpc.MonitoringServiceStub) -> None:
    response = await city.GetLatest(monitoring_pb2.GetLatestRequest(selector=WATER))
    shown = [(r.device, r.reading.metric) for r in response.readings]
    assert shown == [("analyser-1", "ph"), ("analyser-1", "turbidity"), ("analyser-2", "turbidity")]
    turbidity = response.readings[1].reading
    assert turbidity.HasField("value")
    assert turbidity.value == pytest.approx(1.4)
    assert (turbidity.unit, turbidity.quality, turbidity.sequence) == (
        "NTU", common_pb2.QUALITY_GOOD, 19,
    )  # fmt: skip
    assert turbidity.read_time.ToMicroseconds() == T0 + 9 * MINUTE
    faulty = response.readings[2].reading
    assert not faulty.HasField("value")
    assert (faulty.quality, faulty.quality_reason) == (common_pb2.QUALITY_BAD, "sensor fault")
    assert response.page.next_page_token == ""


async def test_get_latest_pages(city: monitoring_pb2_grpc.MonitoringServiceStub) -> None:
    seen = []
    token = ""
    while True:
        response = await city.GetLatest(
            monitoring_pb2.GetLatestRequest(
                page=common_pb2.PageRequest(page_size=2, page_token=token)
            )
        )
        assert len(response.readings) <= 2
        seen.extend((r.field, r.device, r.reading.metric) for r in response.readings)
        token = response.page.next_page_token
        if not token:
            break
    assert seen == sorted(set(seen))
    assert len(seen) == 4


async def test_query_range_from_the_minute_roll_up(
    city: monitoring_pb2_grpc.MonitoringServiceStub,
) -> None:
    response = await city.QueryRange(
        monitoring_pb2.QueryRangeRequest(
            selector=common_pb2.SeriesSelector(device="analyser-1", metric="turbidity"),
            time_range=common_pb2.TimeRange(start_time=stamp(T0), end_time=stamp(NOW)),
            step=span(2 * MINUTE),
            aggregation=monitoring_pb2.AGGREGATION_MAX,
        )
    )
    (series,) = response.series
    assert (series.field, series.site, series.unit) == ("water_supply", "cau-do", "NTU")
    assert [p.time.ToMicroseconds() for p in series.points] == [
        T0 + n * 2 * MINUTE for n in range(5)
    ]
    assert [p.value for p in series.points] == pytest.approx([0.6, 0.8, 1.0, 1.2, 1.4])
    assert {(p.count, p.quality) for p in series.points} == {(2, common_pb2.QUALITY_GOOD)}
    assert response.from_rollup
    assert response.rollup_resolution.ToMicroseconds() == MINUTE


async def test_query_range_raw_readings(city: monitoring_pb2_grpc.MonitoringServiceStub) -> None:
    response = await city.QueryRange(
        monitoring_pb2.QueryRangeRequest(
            selector=common_pb2.SeriesSelector(metric="voltage_an"),
            time_range=common_pb2.TimeRange(start_time=stamp(T0)),
        )
    )
    (series,) = response.series
    assert [(p.time.ToMicroseconds(), p.value) for p in series.points] == [
        (T0, 22.0), (T0 + SECOND, 22.1), (T0 + 2 * SECOND, 22.2)
    ]  # fmt: skip
    assert not response.from_rollup
    assert not response.HasField("rollup_resolution")


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (
            monitoring_pb2.QueryRangeRequest(
                time_range=common_pb2.TimeRange(start_time=stamp(NOW), end_time=stamp(T0))
            ),
            "the time range is empty: start 2026-11-22T00:10:00Z is not before end "
            "2026-11-22T00:00:00Z",
        ),
        (
            monitoring_pb2.QueryRangeRequest(
                time_range=common_pb2.TimeRange(start_time=stamp(T0 - 86_400 * SECOND)),
                step=span(SECOND),
            ),
            "spans 87,000 steps of 1s per series; at most 11,000 are allowed: use a step of at "
            "least 8s or a shorter range",
        ),
        (monitoring_pb2.QueryRangeRequest(), "time_range.start_time is required"),
        (
            monitoring_pb2.QueryRangeRequest(
                time_range=common_pb2.TimeRange(start_time=stamp(T0)), aggregation=42
            ),
            "aggregation 42 is not one this API knows",
        ),
        (
            monitoring_pb2.QueryRangeRequest(
                selector=common_pb2.SeriesSelector(site="cau do"),
                time_range=common_pb2.TimeRange(start_time=stamp(T0)),
            ),
            "site 'cau do' cannot be a NATS subject token",
        ),
        (
            monitoring_pb2.QueryRangeRequest(
                time_range=common_pb2.TimeRange(start_time=stamp(T0)),
                page=common_pb2.PageRequest(page_size=-5),
            ),
            "page_size must not be negative, not -5",
        ),
        (
            monitoring_pb2.QueryRangeRequest(
                time_range=common_pb2.TimeRange(start_time=stamp(T0)),
                page=common_pb2.PageRequest(page_token="forged"),
            ),
            "page_token is not one this service issued",
        ),
    ],
)
async def test_invalid_arguments_are_refused_with_the_reason(
    city: monitoring_pb2_grpc.MonitoringServiceStub,
    request_: monitoring_pb2.QueryRangeRequest,
    message: str,
) -> None:
    error = await refused(city.QueryRange(request_))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (error.details() or "")


async def test_devices_and_one_device(city: monitoring_pb2_grpc.MonitoringServiceStub) -> None:
    listed = await city.ListDevices(monitoring_pb2.ListDevicesRequest())
    assert [(d.field, d.device) for d in listed.devices] == [
        ("electricity", "bay-1-meter"), ("water_supply", "analyser-1"),
        ("water_supply", "analyser-2"),
    ]  # fmt: skip
    states = {d.device: d.state for d in listed.devices}
    assert states == {
        "bay-1-meter": monitoring_pb2.DEVICE_STATE_OFFLINE,  # 1 s interval, silent for minutes
        "analyser-1": monitoring_pb2.DEVICE_STATE_ONLINE,  # 1 min interval, last one a minute ago
        "analyser-2": monitoring_pb2.DEVICE_STATE_STALE,  # 1 min interval, silent for 9
    }
    offline = await city.ListDevices(
        monitoring_pb2.ListDevicesRequest(
            states=[monitoring_pb2.DEVICE_STATE_OFFLINE, monitoring_pb2.DEVICE_STATE_STALE],
            page=common_pb2.PageRequest(page_size=1),
        )
    )
    assert [d.device for d in offline.devices] == ["bay-1-meter"]
    assert offline.page.next_page_token

    response = await city.GetDevice(
        monitoring_pb2.GetDeviceRequest(site="cau-do", device="analyser-1")
    )
    device = response.device
    assert (device.field, device.agent_id, list(device.metrics)) == (
        "water_supply", "edge-1", ["ph", "turbidity"],
    )  # fmt: skip
    assert device.poll_interval.ToMicroseconds() == MINUTE
    assert device.last_seen_time.ToMicroseconds() == T0 + 9 * MINUTE
    assert not device.HasField("state_change_time")  # online since an unknown moment
    stale = (
        await city.GetDevice(monitoring_pb2.GetDeviceRequest(site="cau-do", device="analyser-2"))
    ).device
    assert stale.state_change_time.ToMicroseconds() == T0 + MINUTE + 3 * MINUTE

    missing = await refused(
        city.GetDevice(monitoring_pb2.GetDeviceRequest(site="cau-do", device="analyser-9"))
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    bad_state = await refused(city.ListDevices(monitoring_pb2.ListDevicesRequest(states=[0])))
    assert bad_state.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_field_summary_and_catalogue(city: monitoring_pb2_grpc.MonitoringServiceStub) -> None:
    summary = (
        await city.GetFieldSummary(monitoring_pb2.GetFieldSummaryRequest(field="water_supply"))
    ).summary
    assert (summary.device_count, summary.online_count, summary.stale_count) == (2, 1, 1)
    assert (summary.series_count, summary.readings_last_hour) == (3, 22)
    kpis = {kpi.id: kpi for kpi in summary.kpis}
    # Turbidity readings 0.5 .. 1.4 and 3.0 NTU: 10 of 11 at or below 2 NTU.
    compliance = kpis["turbidity_compliance"]
    assert compliance.value == pytest.approx(100 * 10 / 11)
    assert (compliance.unit, compliance.target) == ("%", 100)
    assert compliance.direction == monitoring_pb2.KPI_DIRECTION_HIGHER_IS_BETTER
    assert compliance.compute_time.ToMicroseconds() == NOW
    assert "volume_supplied" not in kpis  # no meter: the KPI has no value, so it is left out

    unknown = await refused(
        city.GetFieldSummary(monitoring_pb2.GetFieldSummaryRequest(field="sewage"))
    )
    assert unknown.code() == grpc.StatusCode.NOT_FOUND

    ids = []
    token = ""
    while True:
        page = await city.ListFields(
            monitoring_pb2.ListFieldsRequest(
                page=common_pb2.PageRequest(page_size=6, page_token=token)
            )
        )
        ids.extend(field.id for field in page.fields)
        token = page.page.next_page_token
        if not token:
            break
    assert ids == sorted(field.id for field in city_fields())
    water = (
        await city.ListFields(
            monitoring_pb2.ListFieldsRequest(pillar=monitoring_pb2.PILLAR_ENVIRONMENT)
        )
    ).fields
    spec = next(field for field in water if field.id == "water_supply")
    assert spec.pillar == monitoring_pb2.PILLAR_ENVIRONMENT
    turbidity = next(metric for metric in spec.metrics if metric.name == "turbidity")
    assert turbidity.unit == "NTU"
    assert turbidity.HasField("max_value")
    assert "turbidity_compliance" in spec.kpis
    assert spec.plugin_version.startswith("smartcity ")


# -- streams ---------------------------------------------------------------------------------


async def test_stream_sends_the_latest_then_live_readings(
    city: monitoring_pb2_grpc.MonitoringServiceStub, hub: LiveHub
) -> None:
    call = city.StreamReadings(
        monitoring_pb2.StreamReadingsRequest(
            selector=common_pb2.SeriesSelector(field="water_supply", metric="turbidity"),
            include_latest=True,
        )
    )
    first = await asyncio.wait_for(call.read(), 10)
    assert [(r.device, r.reading.sequence) for r in first.readings] == [
        ("analyser-1", 19), ("analyser-2", 101),
    ]  # fmt: skip
    fresh = reading("turbidity", "NTU", 0.7, NOW, 21)
    elsewhere = reading("voltage_an", "kV", 22.3, NOW, 4)
    hub.publish(
        [
            batch("electricity", "hoa-khanh-110kv", "bay-1-meter", [elsewhere]),
            batch("water_supply", "cau-do", "analyser-1", [fresh]),
        ]
    )
    live = await asyncio.wait_for(call.read(), 10)
    assert [(r.device, r.reading.value, r.reading.sequence) for r in live.readings] == [
        ("analyser-1", 0.7, 21)
    ]
    call.cancel()
    await eventually(lambda: hub.subscriber_count == 0, what="the subscription to end")


async def test_a_client_that_stops_reading_is_dropped_with_resource_exhausted(
    server: GrpcServer, keys: Keys, hub: LiveHub
) -> None:
    # Without BDP probing the client keeps grpc's initial 64 KiB flow-control window, so a
    # client that stops reading stops the server's writes soon.
    async with channel(
        server.address, token=keys.token(["viewer:*"]), options=[("grpc.http2.bdp_probe", 0)]
    ) as connection:
        await _read_slowly(monitoring_pb2_grpc.MonitoringServiceStub(connection), hub)


async def _read_slowly(city: monitoring_pb2_grpc.MonitoringServiceStub, hub: LiveHub) -> None:
    call = city.StreamReadings(monitoring_pb2.StreamReadingsRequest())
    await eventually(lambda: hub.subscriber_count == 1, what="the stream to subscribe")
    (subscription,) = hub.subscriptions
    sequence = 0
    # The client reads nothing. The server sends while grpc's flow-control window lets it;
    # then its writes stall, the queue (50 readings) fills, and the hub cuts it off.
    for _ in range(10_000):
        if hub.dropped:
            break
        readings = []
        for _ in range(40):
            sequence += 1
            readings.append(reading("vehicle_count", "{vehicle}", 7, T0 + sequence, sequence))
        hub.publish([batch("traffic", "le-duan-x-nguyen-van-linh", "cam-17", readings)])
        with contextlib.suppress(AssertionError):  # stuck: that is what this test is after
            await eventually(lambda: subscription.pending == 0, within=0.05, interval=0.001)
    assert hub.dropped == 1
    assert hub.subscriber_count == 0
    received: list[int] = []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _drain(call, received)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "the stream fell behind" in (caught.value.details() or "")
    # What was sent before the window filled arrived, far more than the queue holds.
    assert hub.max_pending < sum(received) < sequence


async def _drain(
    call: AsyncIterator[monitoring_pb2.StreamReadingsResponse], into: list[int]
) -> None:
    async for message in call:
        into.append(len(message.readings))


# -- who may ask -----------------------------------------------------------------------------


async def test_a_token_is_required_and_must_be_genuine(server: GrpcServer, keys: Keys) -> None:
    request = monitoring_pb2.GetLatestRequest(selector=WATER)
    async with channel(server.address) as anonymous:
        error = await refused(
            monitoring_pb2_grpc.MonitoringServiceStub(anonymous).GetLatest(request)
        )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "no access token" in (error.details() or "")

    forged = keys.token(["viewer:*"], key=Ed25519PrivateKey.generate())
    expired = keys.token(["viewer:*"], ttl=-3600)
    for token, reason in ((forged, "signature invalid"), (expired, "token expired")):
        async with channel(server.address, token=token) as connection:
            stub = monitoring_pb2_grpc.MonitoringServiceStub(connection)
            error = await refused(stub.GetLatest(request))
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
            assert reason in (error.details() or "")
            stream_error = await refused(anext(aiter(stub.StreamReadings(
                monitoring_pb2.StreamReadingsRequest(selector=WATER)
            ))))  # fmt: skip
            assert stream_error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_roles_are_scoped_to_fields(server: GrpcServer, keys: Keys) -> None:
    token = keys.token(["operator:water_supply"])
    async with channel(server.address, token=token) as connection:
        stub = monitoring_pb2_grpc.MonitoringServiceStub(connection)
        allowed = await stub.GetLatest(monitoring_pb2.GetLatestRequest(selector=WATER))
        assert {r.field for r in allowed.readings} == {"water_supply"}
        device = await stub.GetDevice(
            monitoring_pb2.GetDeviceRequest(site="cau-do", device="analyser-1")
        )
        assert device.device.field == "water_supply"
        fields = await stub.ListFields(monitoring_pb2.ListFieldsRequest())
        assert [field.id for field in fields.fields] == ["water_supply"]

        denied = [
            stub.GetLatest(monitoring_pb2.GetLatestRequest()),
            stub.GetLatest(
                monitoring_pb2.GetLatestRequest(
                    selector=common_pb2.SeriesSelector(field="electricity")
                )
            ),
            stub.ListDevices(monitoring_pb2.ListDevicesRequest()),
            stub.GetFieldSummary(monitoring_pb2.GetFieldSummaryRequest(field="electricity")),
            stub.GetDevice(
                monitoring_pb2.GetDeviceRequest(site="hoa-khanh-110kv", device="bay-1-meter")
            ),
            # A device that does not exist looks the same as one the caller may not see.
            stub.GetDevice(monitoring_pb2.GetDeviceRequest(site="nowhere", device="x")),
        ]
        for call in denied:
            error = await refused(call)
            assert error.code() == grpc.StatusCode.PERMISSION_DENIED, error.details()
        error = await refused(stub.GetLatest(monitoring_pb2.GetLatestRequest()))
        assert error.details() == (
            "staff-ioc-7 lacks the viewer role on every field ('*') (it holds it on: water_supply)"
        )
        stream = stub.StreamReadings(monitoring_pb2.StreamReadingsRequest())
        error = await refused(anext(aiter(stream)))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_without_a_verifier_the_api_is_open_and_says_so(service: MonitoringService) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    output = io.StringIO()
    setup_logging(LoggingSettings(format="json"), stream=output)
    try:
        server = build_server(GrpcSettings(port=0), service, None)
    finally:
        for handler in root.handlers:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
        logging.captureWarnings(False)
    warnings = [json.loads(line) for line in output.getvalue().splitlines() if '"warning"' in line]
    assert any("auth is off" in line["event"] for line in warnings)
    async with server, channel(server.address) as connection:
        response = await monitoring_pb2_grpc.MonitoringServiceStub(connection).GetLatest(
            monitoring_pb2.GetLatestRequest()
        )
    assert len(response.readings) == 4


def test_quality_numbers_are_the_protobuf_ones() -> None:
    for quality in Quality:
        assert common_pb2.Quality.Name(quality.value) == f"QUALITY_{quality.name}"  # type: ignore[arg-type]


async def test_a_stream_ends_when_its_token_expires(server: GrpcServer, keys: Keys) -> None:
    async with channel(server.address, token=keys.token(["viewer:*"], ttl=2)) as connection:
        call = monitoring_pb2_grpc.MonitoringServiceStub(connection).StreamReadings(
            monitoring_pb2.StreamReadingsRequest(include_latest=True)
        )
        assert (await asyncio.wait_for(call.read(), 10)).readings
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await asyncio.wait_for(_drain(call, []), 10)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "token expired during the stream" in (caught.value.details() or "")
    assert time.monotonic() - started < 5


async def test_streams_beyond_the_cap_are_refused(store: TimeSeriesStore, keys: Keys) -> None:
    service = MonitoringService(store, city_fields(), LiveHub(max_subscribers=1), clock=Clock(NOW))
    async with (
        build_server(GrpcSettings(port=0), service, keys.verifier()) as started,
        channel(started.address, token=keys.token(["viewer:*"])) as connection,
    ):
        city = monitoring_pb2_grpc.MonitoringServiceStub(connection)
        first = city.StreamReadings(monitoring_pb2.StreamReadingsRequest())
        await eventually(lambda: service.hub.subscriber_count == 1, what="the first stream")
        second = city.StreamReadings(monitoring_pb2.StreamReadingsRequest())
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await asyncio.wait_for(second.read(), 10)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "limit (monitoring.max_streams)" in (caught.value.details() or "")
        first.cancel()


async def test_a_range_page_too_large_is_invalid_argument(
    store: TimeSeriesStore, keys: Keys
) -> None:
    service = MonitoringService(
        store, city_fields(), LiveHub(), limits=QueryLimits(max_range_points=1000), clock=Clock(NOW)
    )
    request = monitoring_pb2.QueryRangeRequest(
        selector=common_pb2.SeriesSelector(field="water_supply"),
        time_range=common_pb2.TimeRange(start_time=stamp(T0), end_time=stamp(T0 + 600 * SECOND)),
        step=span(SECOND),
    )
    async with (
        build_server(GrpcSettings(port=0), service, keys.verifier()) as started,
        channel(started.address, token=keys.token(["viewer:*"])) as connection,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await monitoring_pb2_grpc.MonitoringServiceStub(connection).QueryRange(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "3 series x 600 steps = 1,800 points; at most 1,000" in (caught.value.details() or "")
