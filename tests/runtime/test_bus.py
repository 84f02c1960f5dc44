from __future__ import annotations

import asyncio
import socket
import time

import pytest
from nats.aio.msg import Msg
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from smartcity.runtime import subjects
from smartcity.runtime.bus import (
    ALERTS_STREAM,
    AUDIT_STREAM,
    DEADLETTER_STREAM,
    IDENTITY_STREAM,
    RECORDS_STREAM,
    STREAM_SUBJECTS,
    TELEMETRY_STREAM,
    Bus,
    BusError,
    StreamConfigError,
    extract_context,
    message_link,
    stream_limits,
)
from smartcity.runtime.config import NatsSettings, StreamLimits, StreamsSettings
from smartcity.runtime.nats_server import EmbeddedNats

DEADLINE = 10.0
SUBJECT = subjects.telemetry_subject("water_supply", "cau-do", "station-1")


@pytest.fixture
def tracing():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


@pytest.fixture
async def traced_bus(nats_server, tracing):
    provider, _ = tracing
    bus = await Bus.connect(nats_server.client_settings(), name="traced", tracer_provider=provider)
    yield bus
    await bus.close()


async def _spans(exporter: InMemorySpanExporter, kind: SpanKind) -> ReadableSpan:
    """The one finished span of ``kind``; consumer spans end after the handler, so poll."""
    deadline = time.monotonic() + DEADLINE
    while True:
        found = [span for span in exporter.get_finished_spans() if span.kind == kind]
        if found:
            assert len(found) == 1, found
            return found[0]
        assert time.monotonic() < deadline, f"no {kind} span finished"
        await asyncio.sleep(0.01)


def _trace_id(msg: Msg) -> int:
    return trace.get_current_span(extract_context(msg)).get_span_context().trace_id


# -- trace context -----------------------------------------------------------------------------


async def test_publish_carries_the_trace_to_the_handler(traced_bus, tracing):
    provider, exporter = tracing
    received: asyncio.Queue[tuple[Msg, trace.SpanContext]] = asyncio.Queue()

    async def handler(msg: Msg) -> None:
        await received.put((msg, trace.get_current_span().get_span_context()))

    await traced_bus.subscribe(subjects.ALL_TELEMETRY, handler)
    with provider.get_tracer("test").start_as_current_span("poll station") as parent:
        await traced_bus.publish(SUBJECT, b"reading")
    msg, handler_span = await asyncio.wait_for(received.get(), DEADLINE)

    assert msg.data == b"reading"
    assert "traceparent" in msg.headers
    trace_id = parent.get_span_context().trace_id
    assert _trace_id(msg) == trace_id
    assert handler_span.trace_id == trace_id

    producer = await _spans(exporter, SpanKind.PRODUCER)
    consumer = await _spans(exporter, SpanKind.CONSUMER)
    assert producer.parent.span_id == parent.get_span_context().span_id
    assert consumer.parent.span_id == producer.context.span_id
    assert consumer.context.span_id == handler_span.span_id
    assert producer.name == "publish city.telemetry"
    assert consumer.name == "process city.telemetry.>"
    assert producer.attributes["messaging.destination.name"] == SUBJECT
    assert producer.attributes["messaging.system"] == "nats"
    assert consumer.attributes["messaging.message.body.size"] == len(b"reading")


async def test_request_and_reply_share_the_trace(traced_bus, tracing):
    provider, exporter = tracing
    subject = subjects.agent_subject("cau-do", "agent-1")

    async def responder(msg: Msg) -> None:
        await traced_bus.reply(msg, b"pong:" + msg.data)

    await traced_bus.subscribe(subject, responder, queue="agents")
    with provider.get_tracer("test").start_as_current_span("operator asks") as parent:
        reply = await traced_bus.request(subject, b"ping", timeout=DEADLINE)

    assert reply.data == b"pong:ping"
    trace_id = parent.get_span_context().trace_id
    assert _trace_id(reply) == trace_id
    client = await _spans(exporter, SpanKind.CLIENT)
    consumer = await _spans(exporter, SpanKind.CONSUMER)
    assert client.name == f"request {subjects.AGENTS}"
    assert consumer.parent.span_id == client.context.span_id
    assert consumer.context.trace_id == trace_id
    assert consumer.attributes["messaging.consumer.group.name"] == "agents"
    # The reply is published from inside the handler's span.
    reply_span = trace.get_current_span(extract_context(reply)).get_span_context()
    replier = next(
        span for span in exporter.get_finished_spans() if span.context.span_id == reply_span.span_id
    )
    assert replier.kind == SpanKind.PRODUCER
    assert replier.parent.span_id == consumer.context.span_id


async def test_iterating_a_subscription_joins_the_trace_explicitly(traced_bus, tracing):
    provider, _ = tracing
    subscription = await traced_bus.subscribe(SUBJECT)
    with provider.get_tracer("test").start_as_current_span("poll") as parent:
        await traced_bus.publish(SUBJECT, b"1")
    msg = await subscription.next_msg(timeout=DEADLINE)
    with traced_bus.consumer_span(msg, subscription=SUBJECT) as span:
        assert span.get_span_context().trace_id == parent.get_span_context().trace_id
        assert trace.get_current_span() is span


async def test_a_message_without_trace_context_starts_a_new_trace(traced_bus, tracing):
    provider, exporter = tracing
    done = asyncio.Event()

    async def handler(msg: Msg) -> None:
        done.set()

    await traced_bus.subscribe(SUBJECT, handler)
    # Published by a client that knows nothing of tracing, while a span is current here.
    with provider.get_tracer("test").start_as_current_span("unrelated"):
        await traced_bus.nc.publish(SUBJECT, b"plain")
    await asyncio.wait_for(done.wait(), DEADLINE)
    consumer = await _spans(exporter, SpanKind.CONSUMER)
    assert consumer.parent is None


async def test_trace_headers_are_read_whatever_their_case(traced_bus):
    subscription = await traced_bus.subscribe(SUBJECT)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    await traced_bus.nc.publish(
        SUBJECT, b"", headers={"Traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    )
    msg = await subscription.next_msg(timeout=DEADLINE)
    assert _trace_id(msg) == int(trace_id, 16)


async def test_a_failing_handler_is_recorded_on_its_span(traced_bus, tracing):
    _, exporter = tracing

    async def handler(msg: Msg) -> None:
        raise RuntimeError("turbidity sensor returned garbage")

    await traced_bus.subscribe(SUBJECT, handler)
    await traced_bus.publish(SUBJECT, b"?")
    consumer = await _spans(exporter, SpanKind.CONSUMER)
    assert consumer.status.status_code == StatusCode.ERROR
    assert any(
        "turbidity sensor returned garbage" in str(event.attributes.get("exception.message"))
        for event in consumer.events
    )


async def test_reply_to_a_message_that_is_not_a_request_is_an_error(bus):
    subscription = await bus.subscribe(SUBJECT)
    await bus.publish(SUBJECT, b"x")
    msg = await subscription.next_msg(timeout=DEADLINE)
    with pytest.raises(BusError, match="not a request"):
        await bus.reply(msg, b"y")


# -- streams -----------------------------------------------------------------------------------

LIMITS = StreamsSettings(
    telemetry=StreamLimits(
        max_age_seconds=3600,
        max_bytes=64 * 1024 * 1024,
        max_msgs=100_000,
        max_msg_size=64 * 1024,
        duplicate_window_seconds=30,
        storage="memory",
    ),
    alerts=StreamLimits(max_age_seconds=86400.5, max_msgs=1000),
)


async def _assert_streams_match(bus: Bus, streams: StreamsSettings) -> None:
    for name, limits in stream_limits(streams).items():
        config = (await bus.js.stream_info(name)).config
        assert config.subjects == list(STREAM_SUBJECTS[name])
        assert config.max_age == pytest.approx(limits.max_age_seconds)
        assert config.max_bytes == limits.max_bytes
        assert config.max_msgs == limits.max_msgs
        assert config.max_msg_size == limits.max_msg_size
        assert config.num_replicas == limits.replicas
        assert config.duplicate_window == pytest.approx(limits.duplicate_window_seconds)
        assert config.storage == limits.storage


async def test_streams_are_created_once_with_the_configured_limits(bus):
    created = await bus.ensure_streams(LIMITS)
    assert set(created) == {
        TELEMETRY_STREAM,
        ALERTS_STREAM,
        RECORDS_STREAM,
        IDENTITY_STREAM,
        AUDIT_STREAM,
        DEADLETTER_STREAM,
    }
    audit = (await bus.js.stream_info(AUDIT_STREAM)).config
    assert audit.deny_delete
    assert audit.deny_purge
    await _assert_streams_match(bus, LIMITS)

    ack = await bus.jetstream_publish(SUBJECT, b"kept")
    again = await bus.ensure_streams(LIMITS)
    await _assert_streams_match(bus, LIMITS)
    # Not recreated: the message published in between is still there.
    assert again[TELEMETRY_STREAM].state.messages == 1
    assert ack.stream == TELEMETRY_STREAM


async def test_processes_starting_together_agree_on_the_streams(nats_server):
    buses = [
        await Bus.connect(nats_server.client_settings(), name=f"service-{n}") for n in range(4)
    ]
    try:
        await asyncio.gather(*(bus.ensure_streams(LIMITS) for bus in buses))
        await _assert_streams_match(buses[0], LIMITS)
    finally:
        for bus in buses:
            await bus.close()


async def test_a_changed_limit_updates_the_stream_and_keeps_its_messages(bus):
    await bus.ensure_streams(StreamsSettings())
    for n in range(3):
        await bus.jetstream_publish(SUBJECT, str(n).encode())

    changed = StreamsSettings(telemetry=StreamLimits(max_msgs=10, max_age_seconds=7200))
    result = await bus.ensure_streams(changed)
    await _assert_streams_match(bus, changed)
    assert result[TELEMETRY_STREAM].config.max_msgs == 10
    assert (await bus.js.stream_info(TELEMETRY_STREAM)).state.messages == 3


async def test_a_storage_change_is_refused_before_anything_changes(bus):
    await bus.ensure_streams(StreamsSettings())
    wanted = StreamsSettings(
        telemetry=StreamLimits(max_msgs=5), alerts=StreamLimits(storage="memory")
    )
    with pytest.raises(StreamConfigError, match=r"stream ALERTS: its storage is 'file'"):
        await bus.ensure_streams(wanted)
    await _assert_streams_match(bus, StreamsSettings())


async def test_limits_the_server_refuses_name_the_stream(bus):
    with pytest.raises(StreamConfigError, match=r"stream RECORDS: .*replicas") as caught:
        await bus.ensure_streams(StreamsSettings(records=StreamLimits(replicas=3)))
    assert "error 10074" in str(caught.value)


async def test_jetstream_publish_deduplicates_by_message_id(traced_bus, tracing):
    provider, _ = tracing
    await traced_bus.ensure_streams(StreamsSettings())
    with provider.get_tracer("test").start_as_current_span("buffer replay") as parent:
        first = await traced_bus.jetstream_publish(SUBJECT, b"42.0", msg_id="station-1:1001")
        second = await traced_bus.jetstream_publish(SUBJECT, b"42.0", msg_id="station-1:1001")
        third = await traced_bus.jetstream_publish(SUBJECT, b"42.5", msg_id="station-1:1002")

    assert not first.duplicate
    assert second.duplicate is True
    assert second.seq == first.seq
    assert third.seq == first.seq + 1
    info = await traced_bus.js.stream_info(TELEMETRY_STREAM)
    assert info.state.messages == 2

    # A consumer fetching in batches, as monitoring does, links to the publisher's trace.
    consumer = await traced_bus.js.pull_subscribe(subjects.ALL_TELEMETRY, stream=TELEMETRY_STREAM)
    batch = await consumer.fetch(2, timeout=DEADLINE)
    assert [msg.data for msg in batch] == [b"42.0", b"42.5"]
    assert batch[0].headers["Nats-Msg-Id"] == "station-1:1001"
    trace_id = parent.get_span_context().trace_id
    assert [_trace_id(msg) for msg in batch] == [trace_id, trace_id]
    links = [message_link(msg) for msg in batch]
    assert all(link is not None and link.context.trace_id == trace_id for link in links)


async def test_an_empty_message_id_is_refused(bus):
    await bus.ensure_streams(StreamsSettings())
    with pytest.raises(ValueError, match="msg_id"):
        await bus.jetstream_publish(SUBJECT, b"x", msg_id=" ")
    assert (await bus.js.stream_info(TELEMETRY_STREAM)).state.messages == 0


# -- connection --------------------------------------------------------------------------------


async def test_connect_without_a_url_is_a_clear_error():
    with pytest.raises(BusError, match=r"set nats\.url"):
        await Bus.connect(NatsSettings(), name="nowhere")


async def test_connect_to_nothing_fails_within_the_timeout():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        url = f"nats://127.0.0.1:{closed.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(BusError, match=f"cannot connect to NATS at {url} within 0.5 s"):
            await Bus.connect(NatsSettings(connect_timeout_seconds=0.5), url=url, name="x")
    assert time.monotonic() - started < DEADLINE


async def test_close_drains_and_is_idempotent(nats_server):
    bus = await Bus.connect(nats_server.client_settings(), name="closing")
    handled: list[bytes] = []

    async def slow(msg: Msg) -> None:
        await asyncio.sleep(0.05)
        handled.append(msg.data)

    await bus.subscribe(SUBJECT, slow)
    for n in range(3):
        await bus.publish(SUBJECT, str(n).encode())
    await bus.nc.flush()
    await bus.close()
    assert bus.nc.is_closed
    assert handled == [b"0", b"1", b"2"]
    await bus.close()


async def test_the_bus_reconnects_after_a_server_restart(nats_settings):
    server = EmbeddedNats(nats_settings).start()
    publisher = subscriber = None
    try:
        publisher = await Bus.connect(server.client_settings(), name="publisher")
        subscriber = await Bus.connect(server.client_settings(), name="subscriber")
        received: asyncio.Queue[Msg] = asyncio.Queue()
        await subscriber.subscribe(SUBJECT, received.put)
        await publisher.ensure_streams(StreamsSettings())
        await publisher.jetstream_publish(SUBJECT, b"before", msg_id="before")
        assert (await asyncio.wait_for(received.get(), DEADLINE)).data == b"before"

        port = server.port
        await server.astop()
        await server.astart()
        assert server.port == port

        deadline = time.monotonic() + DEADLINE
        attempt = 0
        while True:
            await publisher.publish(SUBJECT, f"after-{attempt}".encode())
            try:
                msg = await asyncio.wait_for(received.get(), 0.2)
                break
            except TimeoutError:
                attempt += 1
                assert time.monotonic() < deadline, "no message reached the subscriber"
        assert msg.data.startswith(b"after-")
        assert publisher.nc.is_connected
        assert subscriber.nc.is_connected
        assert publisher.nc.stats["reconnects"] >= 1
        # Same data folder: the stream and its message survived the restart.
        info = await publisher.js.stream_info(TELEMETRY_STREAM)
        assert info.state.messages >= 1
    finally:
        for bus in (publisher, subscriber):
            if bus is not None:
                await bus.close()
        server.stop()
