"""The generated API is usable: packages import, services have stubs and servicers that talk to
each other over a real gRPC connection, and the telemetry payload survives the wire intact."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import descriptor, json_format, timestamp_pb2
from google.protobuf.message import DecodeError

from smartcity.common.v1 import common_pb2
from smartcity.identity.v1 import identity_pb2, identity_pb2_grpc
from smartcity.monitoring.v1 import monitoring_pb2, monitoring_pb2_grpc
from smartcity.telemetry.v1 import telemetry_pb2

API = ("common", "telemetry", "identity", "records", "monitoring", "alerts")
SERVICES = {
    "identity": "IdentityService",
    "records": "RecordsService",
    "monitoring": "MonitoringService",
    "alerts": "AlertsService",
}


def _module(name: str, suffix: str = "pb2"):
    return importlib.import_module(f"smartcity.{name}.v1.{name}_{suffix}")


@pytest.mark.parametrize("name", API)
def test_package_imports_and_declares_its_proto_package(name: str) -> None:
    module = _module(name)
    assert module.DESCRIPTOR.package == f"smartcity.{name}.v1"
    assert module.DESCRIPTOR.name == f"smartcity/{name}/v1/{name}.proto"


@pytest.mark.parametrize(("name", "service"), sorted(SERVICES.items()))
def test_each_service_has_a_stub_a_servicer_and_a_registration(name: str, service: str) -> None:
    module = _module(name, "pb2_grpc")
    methods = [m.name for m in _module(name).DESCRIPTOR.services_by_name[service].methods]
    assert methods
    servicer = getattr(module, f"{service}Servicer")
    for method in methods:
        assert callable(getattr(servicer, method)), f"{service}Servicer lacks {method}"
    assert callable(getattr(module, f"{service}Stub"))
    assert callable(getattr(module, f"add_{service}Servicer_to_server"))


def test_only_files_with_services_have_a_grpc_module() -> None:
    for name in API:
        has_service = bool(_module(name).DESCRIPTOR.services_by_name)
        try:
            importlib.import_module(f"smartcity.{name}.v1.{name}_pb2_grpc")
        except ModuleNotFoundError:
            assert not has_service, f"{name} declares a service but has no _pb2_grpc module"
        else:
            assert has_service, f"{name} declares no service but has a _pb2_grpc module"


def _timestamp(seconds: int, nanos: int = 0) -> timestamp_pb2.Timestamp:
    moment = datetime(2026, 11, 22, 7, 30, tzinfo=UTC) + timedelta(seconds=seconds)
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    stamp.nanos = nanos
    return stamp


def _full_batch() -> telemetry_pb2.TelemetryBatch:
    """A batch that sets every field of TelemetryBatch and, across its readings, of Reading."""
    common = {"unit": "kV", "read_time": _timestamp(1)}
    readings = [
        telemetry_pb2.Reading(
            metric="voltage_an",
            value=22.137,
            quality=common_pb2.QUALITY_GOOD,
            source_time=_timestamp(0, 125_000_000),
            server_time=_timestamp(0, 500_000_000),
            sequence=2**64 - 4,
            **common,
        ),
        telemetry_pb2.Reading(
            metric="breaker_closed", value=1.0, bool_value=True, sequence=2**64 - 3, **common
        ),
        telemetry_pb2.Reading(
            metric="energy_import",
            value=float(2**62 + 1),
            int_value=2**62 + 1,
            quality=common_pb2.QUALITY_UNCERTAIN,
            quality_reason="meter clock not synchronised",
            sequence=2**64 - 2,
            **common,
        ),
        telemetry_pb2.Reading(
            metric="feeder_state",
            string_value="Đóng điện",
            quality=common_pb2.QUALITY_STALE,
            quality_reason="opcua: BadCommunicationError",
            sequence=2**64 - 1,
            **common,
        ),
    ]
    return telemetry_pb2.TelemetryBatch(
        field="electricity",
        site="hoa-khánh-110kv",
        device="bay-1-meter",
        agent_id="agent-hoa-khanh-1",
        batch_id="hoa-khánh-110kv/bay-1-meter/18446744073709551612",
        first_sequence=2**64 - 4,
        last_sequence=2**64 - 1,
        readings=readings,
        sent_time=_timestamp(2),
    )


def _unset_fields(messages: list, message_descriptor: descriptor.Descriptor) -> set[str]:
    unset = set()
    for item in message_descriptor.fields:
        if item.is_repeated:
            present = any(len(getattr(m, item.name)) for m in messages)
        elif item.has_presence:
            present = any(m.HasField(item.name) for m in messages)
        else:
            present = any(getattr(m, item.name) != item.default_value for m in messages)
        if not present:
            unset.add(item.name)
    return unset


def test_telemetry_batch_round_trips_with_every_field() -> None:
    batch = _full_batch()
    assert _unset_fields([batch], batch.DESCRIPTOR) == set()
    assert _unset_fields(list(batch.readings), telemetry_pb2.Reading.DESCRIPTOR) == set()

    wire = batch.SerializeToString()
    parsed = telemetry_pb2.TelemetryBatch.FromString(wire)

    assert parsed == batch
    assert parsed.SerializeToString(deterministic=True) == batch.SerializeToString(
        deterministic=True
    )
    assert parsed.last_sequence == 2**64 - 1
    assert parsed.readings[0].source_time.nanos == 125_000_000
    assert parsed.readings[1].WhichOneof("typed_value") == "bool_value"
    assert parsed.readings[2].int_value == 2**62 + 1
    assert parsed.readings[3].string_value == "Đóng điện"
    assert parsed.readings[3].quality == common_pb2.QUALITY_STALE
    assert parsed.site == "hoa-khánh-110kv"


def test_a_reading_without_a_value_differs_from_a_zero_reading() -> None:
    """A device that gave nothing must not look like a device that measured 0."""
    missing = telemetry_pb2.Reading(
        metric="ph", quality=common_pb2.QUALITY_BAD, quality_reason="rtu timeout"
    )
    zero = telemetry_pb2.Reading(metric="flow", value=0.0, quality=common_pb2.QUALITY_GOOD)

    missing = telemetry_pb2.Reading.FromString(missing.SerializeToString())
    zero = telemetry_pb2.Reading.FromString(zero.SerializeToString())

    assert not missing.HasField("value")
    assert missing.quality_reason == "rtu timeout"
    assert zero.HasField("value")
    assert zero.value == 0.0


def test_truncated_batch_is_refused() -> None:
    wire = _full_batch().SerializeToString()
    with pytest.raises(DecodeError):
        telemetry_pb2.TelemetryBatch.FromString(wire[:-3])


def test_jwks_response_json_is_a_standard_key_set() -> None:
    key = identity_pb2.Jwk(
        kty="OKP",
        crv="Ed25519",
        x="11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
        kid="2026-11",
        use="sig",
        alg="EdDSA",
    )
    document = json_format.MessageToDict(identity_pb2.GetJwksResponse(keys=[key]))
    assert document == {
        "keys": [
            {
                "kty": "OKP",
                "crv": "Ed25519",
                "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
                "kid": "2026-11",
                "use": "sig",
                "alg": "EdDSA",
            }
        ]
    }


class _Identity(identity_pb2_grpc.IdentityServiceServicer):
    async def GetJwks(self, request, context):  # noqa: N802 (named by the service)
        key = identity_pb2.Jwk(kty="OKP", crv="Ed25519", x="AAAA", kid="k1", use="sig", alg="EdDSA")
        return identity_pb2.GetJwksResponse(keys=[key])


class _Monitoring(monitoring_pb2_grpc.MonitoringServiceServicer):
    async def StreamReadings(self, request, context):  # noqa: N802 (named by the service)
        for batch in (_full_batch(), _full_batch()):
            readings = [
                monitoring_pb2.DeviceReading(
                    field=batch.field, site=batch.site, device=batch.device, reading=reading
                )
                for reading in batch.readings
                if not request.selector.metric or reading.metric == request.selector.metric
            ]
            yield monitoring_pb2.StreamReadingsResponse(readings=readings)


def _recording_servicer(name: str, service: str, calls: list[tuple[str, str]]):
    """A servicer whose every method records the request type it got and answers an empty
    response (one stream message for server streams)."""
    pb2 = _module(name)
    namespace = {}
    for method in pb2.DESCRIPTOR.services_by_name[service].methods:
        response = getattr(pb2, method.output_type.name)
        if method.server_streaming:

            async def handler(self, request, context, _name=method.name, _response=response):
                calls.append((_name, type(request).DESCRIPTOR.full_name))
                yield _response()

        else:

            async def handler(self, request, context, _name=method.name, _response=response):
                calls.append((_name, type(request).DESCRIPTOR.full_name))
                return _response()

        namespace[method.name] = handler
    base = getattr(_module(name, "pb2_grpc"), f"{service}Servicer")
    return type(f"Recording{service}", (base,), namespace)()


@pytest.fixture
async def serve():
    """Start a grpc.aio server on loopback with the given servicers; yield a channel to it."""
    servers = []

    async def start(servicers: dict[str, object]) -> grpc.aio.Channel:
        server = grpc.aio.server()
        for name, servicer in servicers.items():
            module = _module(name, "pb2_grpc")
            getattr(module, f"add_{SERVICES[name]}Servicer_to_server")(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        servers.append((server, channel))
        return channel

    yield start
    for server, channel in servers:
        await channel.close()
        await server.stop(grace=None)


async def test_stub_and_servicer_agree_on_every_method(serve) -> None:
    calls: list[tuple[str, str]] = []
    channel = await serve(
        {name: _recording_servicer(name, service, calls) for name, service in SERVICES.items()}
    )
    expected = []
    for name, service in SERVICES.items():
        pb2 = _module(name)
        stub = getattr(_module(name, "pb2_grpc"), f"{service}Stub")(channel)
        for method in pb2.DESCRIPTOR.services_by_name[service].methods:
            request = getattr(pb2, method.input_type.name)()
            call = getattr(stub, method.name)(request, timeout=5)
            streamed = method.server_streaming
            answers = [answer async for answer in call] if streamed else [await call]
            assert [type(a).DESCRIPTOR for a in answers] == [method.output_type], method.full_name
            expected.append((method.name, method.input_type.full_name))
    assert calls == expected
    assert len(calls) > 40


async def test_unary_call_carries_the_key_set(serve) -> None:
    channel = await serve({"identity": _Identity()})
    stub = identity_pb2_grpc.IdentityServiceStub(channel)
    answer = await stub.GetJwks(identity_pb2.GetJwksRequest(), timeout=5)
    assert [(k.kid, k.crv, k.alg) for k in answer.keys] == [("k1", "Ed25519", "EdDSA")]


async def test_unimplemented_call_is_refused_with_its_status(serve) -> None:
    channel = await serve({"identity": _Identity()})
    stub = identity_pb2_grpc.IdentityServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Introspect(identity_pb2.IntrospectRequest(token="x"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_server_stream_carries_readings(serve) -> None:
    channel = await serve({"monitoring": _Monitoring()})
    stub = monitoring_pb2_grpc.MonitoringServiceStub(channel)
    request = monitoring_pb2.StreamReadingsRequest(
        selector=common_pb2.SeriesSelector(field="electricity", metric="energy_import")
    )
    messages = [message async for message in stub.StreamReadings(request, timeout=5)]
    assert len(messages) == 2
    for message in messages:
        assert [r.reading.int_value for r in message.readings] == [2**62 + 1]
        assert message.readings[0].site == "hoa-khánh-110kv"
