"""The gRPC bootstrap against a real grpc.aio server on a loopback port.

The service under test is a tiny bytes-in/bytes-out one built from a generic handler, so these
tests depend on nothing but grpc itself; its methods exercise every call kind.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import grpc.aio
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from smartcity.runtime import errors
from smartcity.runtime.config import GrpcSettings, LoggingSettings
from smartcity.runtime.grpc_client import channel, wait_ready
from smartcity.runtime.grpc_server import GrpcServer, GrpcServerError, Registration
from smartcity.runtime.logs import setup_logging

SERVICE = "smartcity.test.Echo"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

DOMAIN_ERRORS = [
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
]
_ERRORS_BY_NAME = {cls.__name__: cls for cls, _ in DOMAIN_ERRORS}
SECRET = "password=hunter2"


class Echo:
    """Methods that succeed, fail on request, or wait to be released."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.closed = asyncio.Event()

    async def echo(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return request

    async def fail(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        name = request.decode()
        if name in _ERRORS_BY_NAME:
            raise _ERRORS_BY_NAME[name](f"{name} for device hk-110kv/bay-1")
        raise RuntimeError(f"database said {SECRET}")

    async def blob(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return b"x" * int(request)

    async def slow(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        self.entered.set()
        await self.release.wait()
        return b"finished"

    async def whoami(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return dict(context.invocation_metadata() or ()).get("authorization", "").encode()

    async def count(
        self, request: bytes, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        """``b"3"`` yields 0, 1, 2; ``b"3 NotFound"`` then fails with that error."""
        n, _, failure = request.decode().partition(" ")
        for i in range(int(n)):
            yield str(i).encode()
        if failure:
            raise _ERRORS_BY_NAME.get(failure, RuntimeError)(f"{failure} after {n} {SECRET}")

    async def count_written(self, request: bytes, context: grpc.aio.ServicerContext) -> None:
        n, _, failure = request.decode().partition(" ")
        for i in range(int(n)):
            await context.write(str(i).encode())
        if failure:
            raise _ERRORS_BY_NAME[failure](f"{failure} after {n}")

    async def forever(
        self, request: bytes, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        """A live stream, as WatchAlerts is; ``closed`` tells that its cleanup ran."""
        try:
            while True:
                yield b"tick"
                await asyncio.sleep(0.01)
        finally:
            self.closed.set()

    async def total(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> bytes:
        values = [int(request) async for request in requests]
        if not values:
            raise errors.InvalidArgument("at least one value is needed")
        return str(sum(values)).encode()

    async def chat(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        async for request in requests:
            if request == b"forbidden":
                raise errors.PermissionDenied("that topic is not yours")
            if request == b"whoami":
                yield await self.whoami(request, context)
            else:
                yield request.upper()

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Echo": grpc.unary_unary_rpc_method_handler(self.echo),
                "Fail": grpc.unary_unary_rpc_method_handler(self.fail),
                "Blob": grpc.unary_unary_rpc_method_handler(self.blob),
                "Slow": grpc.unary_unary_rpc_method_handler(self.slow),
                "Whoami": grpc.unary_unary_rpc_method_handler(self.whoami),
                "Count": grpc.unary_stream_rpc_method_handler(self.count),
                "CountWritten": grpc.unary_stream_rpc_method_handler(self.count_written),
                "Forever": grpc.unary_stream_rpc_method_handler(self.forever),
                "Total": grpc.stream_unary_rpc_method_handler(self.total),
                "Chat": grpc.stream_stream_rpc_method_handler(self.chat),
            },
        )


def registration(echo: Echo) -> Registration:
    def add(handler: grpc.GenericRpcHandler, server: grpc.aio.Server) -> None:
        server.add_generic_rpc_handlers((handler,))

    return (add, echo.handler())


def settings(**values: object) -> GrpcSettings:
    return GrpcSettings(**{"host": "127.0.0.1", "port": 0, **values})


@pytest.fixture
def echo() -> Echo:
    return Echo()


@pytest.fixture
async def server(echo: Echo) -> AsyncIterator[GrpcServer]:
    async with GrpcServer(
        settings(shutdown_grace_seconds=2), [registration(echo)], service_names=[SERVICE]
    ) as running:
        yield running


@pytest.fixture
async def client(server: GrpcServer) -> AsyncIterator[grpc.aio.Channel]:
    async with channel(server.address) as ch:
        yield ch


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Our JSON log output for the test, with the root logger restored afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    setup_logging(LoggingSettings(level="DEBUG", format="json"), stream=stream)
    yield stream
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(False)


def events(stream: io.StringIO, event: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in lines if line["event"] == event]


async def collect(stream: AsyncIterator[bytes], into: list[bytes]) -> None:
    """Read a response stream, keeping what arrived before it failed."""
    async for item in stream:
        into.append(item)


async def health_status(ch: grpc.aio.Channel, service: str) -> int:
    response = await health_pb2_grpc.HealthStub(ch).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=5
    )
    return response.status


async def test_health_serves_the_server_and_each_registered_service(
    client: grpc.aio.Channel,
) -> None:
    assert await health_status(client, "") == SERVING
    assert await health_status(client, SERVICE) == SERVING
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await health_status(client, "smartcity.test.Missing")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


async def test_port_zero_reports_the_bound_port(server: GrpcServer) -> None:
    assert server.port > 0
    assert server.address == f"127.0.0.1:{server.port}"


async def test_reflection_lists_services_and_serves_their_descriptors(
    client: grpc.aio.Channel,
) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(client)
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=health.SERVICE_NAME),
    ]
    responses = [response async for response in stub.ServerReflectionInfo(iter(requests))]

    listed = {s.name for s in responses[0].list_services_response.service}
    assert listed == {SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME}
    files = responses[1].file_descriptor_response.file_descriptor_proto
    described = [descriptor_pb2.FileDescriptorProto.FromString(data) for data in files]
    assert "Health" in {s.name for f in described for s in f.service}


async def test_reflection_can_be_turned_off(echo: Echo) -> None:
    off = GrpcServer(settings(reflection=False), [registration(echo)], service_names=[SERVICE])
    async with off, channel(off.address) as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            _ = [r async for r in stub.ServerReflectionInfo(iter([request]))]
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert await health_status(ch, SERVICE) == SERVING


@pytest.mark.parametrize(
    ("error", "code"), DOMAIN_ERRORS, ids=[c.__name__ for c, _ in DOMAIN_ERRORS]
)
async def test_domain_error_becomes_its_status_with_its_message(
    client: grpc.aio.Channel, error: type[errors.DomainError], code: grpc.StatusCode
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await client.unary_unary(f"/{SERVICE}/Fail")(error.__name__.encode(), timeout=5)
    assert failed.value.code() == code
    assert failed.value.details() == f"{error.__name__} for device hk-110kv/bay-1"


async def test_unexpected_exception_is_internal_and_does_not_leak(
    client: grpc.aio.Channel, log_lines: io.StringIO
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await client.unary_unary(f"/{SERVICE}/Fail")(b"crash", timeout=5)

    assert failed.value.code() == grpc.StatusCode.INTERNAL
    details = failed.value.details()
    assert SECRET not in details
    assert "RuntimeError" not in details
    assert details.startswith("internal error (")
    # The operator finds the whole story in the log under the reference the caller got.
    [logged] = events(log_lines, "unhandled error in servicer")
    assert logged["level"] == "error"
    assert logged["method"] == f"/{SERVICE}/Fail"
    assert f"({logged['reference']})" in details
    assert SECRET in json.dumps(logged["exception"])


async def test_errors_map_in_every_streaming_shape(client: grpc.aio.Channel) -> None:
    # Server streaming, async generator: the items before the failure arrive, then the status.
    received: list[bytes] = []
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await collect(client.unary_stream(f"/{SERVICE}/Count")(b"2 NotFound", timeout=5), received)
    assert received == [b"0", b"1"]
    assert failed.value.code() == grpc.StatusCode.NOT_FOUND

    # The same for a handler that writes with context.write.
    received = []
    call = client.unary_stream(f"/{SERVICE}/CountWritten")(b"2 AlreadyExists", timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await collect(call, received)
    assert received == [b"0", b"1"]
    assert failed.value.code() == grpc.StatusCode.ALREADY_EXISTS

    # Client streaming.
    total = client.stream_unary(f"/{SERVICE}/Total")
    assert await total(iter([b"1", b"2", b"39"]), timeout=5) == b"42"
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await total(iter([]), timeout=5)
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert failed.value.details() == "at least one value is needed"

    # Bidirectional streaming.
    chat = client.stream_stream(f"/{SERVICE}/Chat")
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        received = [r async for r in chat(iter([b"hi", b"forbidden", b"never"]), timeout=5)]
    assert failed.value.code() == grpc.StatusCode.PERMISSION_DENIED

    # An unexpected failure mid-stream is INTERNAL and keeps its secret.
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        _ = [r async for r in client.unary_stream(f"/{SERVICE}/Count")(b"1 crash", timeout=5)]
    assert failed.value.code() == grpc.StatusCode.INTERNAL
    assert SECRET not in failed.value.details()


async def test_streams_complete_normally(client: grpc.aio.Channel) -> None:
    count = client.unary_stream(f"/{SERVICE}/Count")
    assert [r async for r in count(b"3", timeout=5)] == [b"0", b"1", b"2"]
    written = client.unary_stream(f"/{SERVICE}/CountWritten")
    assert [r async for r in written(b"3", timeout=5)] == [b"0", b"1", b"2"]
    chat = client.stream_stream(f"/{SERVICE}/Chat")
    assert [r async for r in chat(iter([b"a", b"b"]), timeout=5)] == [b"A", b"B"]


async def test_a_cancelled_stream_runs_the_servicer_cleanup(
    echo: Echo, client: grpc.aio.Channel, log_lines: io.StringIO
) -> None:
    call = client.unary_stream(f"/{SERVICE}/Forever")(b"", timeout=10)
    assert [await call.read(), await call.read()] == [b"tick", b"tick"]
    call.cancel()
    await asyncio.wait_for(echo.closed.wait(), 5)
    # The access line is written while the same cancellation unwinds, before the wait wakes.
    [line] = events(log_lines, "grpc call")
    assert (line["method"], line["code"]) == (f"/{SERVICE}/Forever", "CANCELLED")


async def test_access_log_has_one_line_per_call(
    client: grpc.aio.Channel, server: GrpcServer, log_lines: io.StringIO
) -> None:
    await client.unary_unary(f"/{SERVICE}/Echo")(b"ping", timeout=5)
    with pytest.raises(grpc.aio.AioRpcError):
        await client.unary_unary(f"/{SERVICE}/Fail")(b"NotFound", timeout=5)
    _ = [r async for r in client.unary_stream(f"/{SERVICE}/Count")(b"2", timeout=5)]

    calls = {line["method"]: line for line in events(log_lines, "grpc call")}
    ok, failed, streamed = (
        calls[f"/{SERVICE}/Echo"],
        calls[f"/{SERVICE}/Fail"],
        calls[f"/{SERVICE}/Count"],
    )
    assert (ok["code"], ok["level"]) == ("OK", "debug")
    assert (failed["code"], failed["level"]) == ("NOT_FOUND", "info")
    assert (streamed["code"], streamed["level"]) == ("OK", "debug")
    for line in (ok, failed, streamed):
        assert str(line["peer"]).startswith("ipv4:127.0.0.1:")
        assert isinstance(line["duration_ms"], float)
        assert line["duration_ms"] >= 0
    assert len(events(log_lines, "grpc call")) == 3


async def test_graceful_stop_finishes_calls_in_flight_and_reports_not_serving(
    echo: Echo,
) -> None:
    server = GrpcServer(
        settings(shutdown_grace_seconds=10), [registration(echo)], service_names=[SERVICE]
    )
    await server.start()
    async with channel(server.address) as ch:
        in_flight = asyncio.ensure_future(ch.unary_unary(f"/{SERVICE}/Slow")(b"", timeout=20))
        await asyncio.wait_for(echo.entered.wait(), 5)
        watch = health_pb2_grpc.HealthStub(ch).Watch(
            health_pb2.HealthCheckRequest(service=SERVICE), timeout=20
        )
        assert (await watch.read()).status == SERVING

        stopping = asyncio.ensure_future(server.stop())
        # Load balancers learn first; the call in flight is still running meanwhile.
        assert (await asyncio.wait_for(watch.read(), 5)).status == NOT_SERVING
        watch.cancel()
        assert not in_flight.done()
        assert not stopping.done()

        echo.release.set()
        assert await asyncio.wait_for(in_flight, 5) == b"finished"
        await asyncio.wait_for(stopping, 10)

        # The listener is closed: a new call cannot reach the server.
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await ch.unary_unary(f"/{SERVICE}/Echo")(b"late", timeout=2)
        assert refused.value.code() in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        )


async def test_stop_cancels_calls_still_running_after_the_grace(echo: Echo) -> None:
    server = GrpcServer(settings(), [registration(echo)], service_names=[SERVICE])
    await server.start()
    async with channel(server.address) as ch:
        in_flight = asyncio.ensure_future(ch.unary_unary(f"/{SERVICE}/Slow")(b"", timeout=20))
        await asyncio.wait_for(echo.entered.wait(), 5)
        await asyncio.wait_for(server.stop(grace=0.2), 5)
        with pytest.raises(grpc.aio.AioRpcError) as cut:
            await in_flight
        assert cut.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)


async def test_message_over_the_limit_is_refused(echo: Echo) -> None:
    limited = GrpcServer(
        settings(max_message_bytes=1024), [registration(echo)], service_names=[SERVICE]
    )
    async with limited:
        # A plain channel without a send limit, so that it is the server that refuses.
        async with grpc.aio.insecure_channel(limited.address) as raw:
            method = raw.unary_unary(f"/{SERVICE}/Echo")
            assert await method(b"x" * 1000, timeout=5) == b"x" * 1000
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await method(b"x" * 2048, timeout=5)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

            # Nor does the server send a response over the limit.
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await raw.unary_unary(f"/{SERVICE}/Blob")(b"2048", timeout=5)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

        # Our own channel applies the same limit before anything leaves the client.
        async with channel(limited.address, settings=settings(max_message_bytes=1024)) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await ch.unary_unary(f"/{SERVICE}/Echo")(b"x" * 2048, timeout=5)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "larger than max" in (refused.value.details() or "")


async def test_client_and_server_spans_share_one_trace(echo: Echo) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    traced = GrpcServer(
        settings(), [registration(echo)], service_names=[SERVICE], tracer_provider=provider
    )
    async with traced, channel(traced.address, tracer_provider=provider) as ch:
        await wait_ready(ch, 5, service=SERVICE)
        assert await ch.unary_unary(f"/{SERVICE}/Echo")(b"ping", timeout=5) == b"ping"
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await ch.unary_unary(f"/{SERVICE}/Fail")(b"crash", timeout=5)

    spans = exporter.get_finished_spans()
    # Health checks are not traced, on either side.
    assert not [s for s in spans if "Health" in s.name]
    by_kind = {(s.kind, s.name): s for s in spans if s.name == f"/{SERVICE}/Echo"}
    client_span = by_kind[(trace.SpanKind.CLIENT, f"/{SERVICE}/Echo")]
    server_span = by_kind[(trace.SpanKind.SERVER, f"/{SERVICE}/Echo")]
    assert client_span.context.trace_id == server_span.context.trace_id
    assert server_span.parent is not None
    assert server_span.parent.span_id == client_span.context.span_id

    # The failing call's server span is an error, and its trace is the caller's reference.
    [failed_span] = [
        s for s in spans if s.name == f"/{SERVICE}/Fail" and s.kind == trace.SpanKind.SERVER
    ]
    assert failed_span.status.status_code == trace.StatusCode.ERROR
    assert trace.format_trace_id(failed_span.context.trace_id) in failed.value.details()


async def test_bearer_token_travels_as_metadata(server: GrpcServer) -> None:
    async with channel(server.address, token="t0k3n") as ch:
        assert await ch.unary_unary(f"/{SERVICE}/Whoami")(b"", timeout=5) == b"Bearer t0k3n"
        chat = ch.stream_stream(f"/{SERVICE}/Chat")
        assert [r async for r in chat(iter([b"whoami"]), timeout=5)] == [b"Bearer t0k3n"]
    async with channel(server.address) as anonymous:
        assert await anonymous.unary_unary(f"/{SERVICE}/Whoami")(b"", timeout=5) == b""
    with pytest.raises(ValueError, match="token"):
        channel(server.address, token=" ")


async def test_wait_ready_waits_for_a_server_that_starts_later(echo: Echo) -> None:
    first = GrpcServer(settings(), [registration(echo)], service_names=[SERVICE])
    await first.start()
    port = first.port
    await first.stop(grace=0)

    async with channel(f"127.0.0.1:{port}") as ch:
        waiting = asyncio.ensure_future(wait_ready(ch, 10, service=SERVICE))
        await asyncio.sleep(0)  # let it dial a port that nothing listens on yet
        assert not waiting.done()
        later = GrpcServer(settings(port=port), [registration(echo)], service_names=[SERVICE])
        async with later:
            await asyncio.wait_for(waiting, 10)


async def test_wait_ready_follows_a_service_back_to_serving(
    server: GrpcServer, client: grpc.aio.Channel
) -> None:
    await server.set_serving(SERVICE, False)
    waiting = asyncio.ensure_future(wait_ready(client, 10, service=SERVICE))
    with pytest.raises(TimeoutError):
        await wait_ready(client, 0.3, service=SERVICE)
    assert not waiting.done()
    await server.set_serving(SERVICE, True)
    await asyncio.wait_for(waiting, 5)


async def test_wait_ready_times_out_naming_the_last_status() -> None:
    async with channel("127.0.0.1:1") as ch:
        with pytest.raises(TimeoutError, match=r"not SERVING within 0\.3 s"):
            await wait_ready(ch, 0.3)
        with pytest.raises(ValueError, match="positive"):
            await wait_ready(ch, 0)


async def test_a_taken_port_is_a_clear_error(server: GrpcServer, echo: Echo) -> None:
    second = GrpcServer(settings(port=server.port), [registration(echo)], service_names=[SERVICE])
    with pytest.raises(GrpcServerError, match=f"127.0.0.1:{server.port}"):
        await second.start()


def test_service_names_must_be_unique_and_named(echo: Echo) -> None:
    with pytest.raises(ValueError, match="unique"):
        GrpcServer(settings(), [registration(echo)], service_names=[SERVICE, SERVICE])
    with pytest.raises(ValueError, match="non-empty"):
        GrpcServer(settings(), [registration(echo)], service_names=[""])


SERVE_SCRIPT = textwrap.dedent(
    """
    import asyncio
    from smartcity.runtime.config import GrpcSettings, LoggingSettings
    from smartcity.runtime.grpc_server import serve
    from smartcity.runtime.logs import setup_logging

    setup_logging(LoggingSettings(format="json"))
    asyncio.run(
        serve(
            GrpcSettings(host="127.0.0.1", port=0, shutdown_grace_seconds=5),
            [],
            service_names=["smartcity.test.Standalone"],
            on_started=lambda server: print(server.port, flush=True),
        )
    )
    print("exited cleanly", flush=True)
    """
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
async def test_serve_stops_gracefully_on_signal(tmp_path: Path, sig: signal.Signals) -> None:
    script = tmp_path / "serve.py"
    script.write_text(SERVE_SCRIPT)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        port = int(await asyncio.wait_for(process.stdout.readline(), 30))
        async with channel(f"127.0.0.1:{port}") as ch:
            await wait_ready(ch, 10, service="smartcity.test.Standalone")
        process.send_signal(sig)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    assert stdout.decode().strip() == "exited cleanly"
    logged = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    messages = [line["event"] for line in logged]
    assert "signal received, stopping" in messages
    assert messages.index("grpc server stopping") < messages.index("grpc server stopped")
