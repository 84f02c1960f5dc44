"""The bus client every smartcity process uses: nats-py plus trace propagation and streams.

nats-py already does connection management, reconnection, buffering while disconnected,
request/reply and JetStream well; :class:`Bus` adds only what every process would otherwise
repeat:

* W3C trace context (``traceparent``/``tracestate``) in message headers, so one trace follows
  a reading from the agent through NATS into monitoring and alerts. Publishing opens a PRODUCER
  span, handling a message a CONSUMER span whose parent is the publisher's span.
* The platform's JetStream streams, created or brought up to date from configuration.
* Connection events in the structured log.

The raw client stays available as :attr:`Bus.nc` and :attr:`Bus.js`. Code that reads messages
itself (async iteration, JetStream pull consumers) uses :func:`consumer_span`,
:func:`extract_context` and :func:`message_link` to join the publisher's trace.

Each part lives beside this module, and every name is importable from here too: the errors
in :mod:`.bus_errors`, connecting in :mod:`.bus_connect`, trace context and spans in
:mod:`.bus_tracing`, the platform's streams in :mod:`.bus_streams`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Self

import nats.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js import api as js_api
from opentelemetry.trace import Span, SpanKind, TracerProvider

from smartcity.runtime.bus_connect import connect_client
from smartcity.runtime.bus_errors import BusError, BusPermissionError, StreamConfigError
from smartcity.runtime.bus_streams import (
    ALERTS_STREAM,
    AUDIT_STREAM,
    DEADLETTER_STREAM,
    IDENTITY_STREAM,
    RECORDS_STREAM,
    STREAM_SUBJECTS,
    TELEMETRY_STREAM,
    EnsuredStreams,
    StreamOutcome,
    ensure_platform_streams,
    stream_config,
    stream_limits,
)
from smartcity.runtime.bus_tracing import (
    bus_tracer,
    consumer_span,
    context_headers,
    extract_context,
    message_link,
    messaging_attributes,
    span_destination,
)
from smartcity.runtime.config import NatsSettings, StreamsSettings
from smartcity.runtime.nats_auth.credentials import Refusals

__all__ = [
    "ALERTS_STREAM",
    "AUDIT_STREAM",
    "DEADLETTER_STREAM",
    "IDENTITY_STREAM",
    "RECORDS_STREAM",
    "STREAM_SUBJECTS",
    "TELEMETRY_STREAM",
    "Bus",
    "BusError",
    "BusPermissionError",
    "EnsuredStreams",
    "MessageHandler",
    "StreamConfigError",
    "StreamOutcome",
    "consumer_span",
    "context_headers",
    "extract_context",
    "message_link",
    "stream_config",
    "stream_limits",
]

MessageHandler = Callable[[Msg], Awaitable[None]]

_log = structlog.stdlib.get_logger(__name__)


class Bus:
    """A connected NATS client with trace propagation. Create it with :meth:`connect`."""

    def __init__(
        self, nc: Client, *, name: str = "", tracer_provider: TracerProvider | None = None
    ) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.name = name
        self.refusals = Refusals(None)
        """The server's permission refusals on this connection (set by :meth:`connect`)."""
        self._tracer_provider = tracer_provider
        self._tracer = bus_tracer(tracer_provider)

    @property
    def tracer_provider(self) -> TracerProvider | None:
        """The provider this bus traces with (``None``: the process-wide one), for code
        that handles this bus's messages in spans of its own (:mod:`.consumer`)."""
        return self._tracer_provider

    @classmethod
    async def connect(
        cls,
        settings: NatsSettings,
        *,
        name: str,
        url: str | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> Self:
        """Connect to ``url`` (default ``settings.url``; comma-separated for a cluster).

        The first connection must succeed within ``settings.connect_timeout_seconds``, so
        that a wrong URL is an error rather than a process that waits forever. Once
        connected, the client reconnects ``settings.max_reconnect_attempts`` times (-1:
        forever), buffering what is published meanwhile.

        It logs in with ``settings.credentials_file`` (or ``user``/``password``) and reads
        replies under the user's own inbox prefix (:mod:`.nats_auth.credentials`). A server
        that refuses the user fails the connection at once, saying so; permission refusals
        later on are logged as ``nats_refused`` naming the user and the subject.
        """
        nc, refusals = await connect_client(settings, name=name, url=url)
        bus = cls(nc, name=name, tracer_provider=tracer_provider)
        bus.refusals = refusals
        return bus

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Drain: let subscriptions finish what they received, flush publishes, close."""
        if self.nc.is_closed:
            return
        if self.nc.is_connected:
            try:
                await self.nc.drain()
                return
            except (TimeoutError, nats.errors.Error) as exc:
                _log.warning("nats_drain_failed", connection=self.name, error=repr(exc))
        await self.nc.close()

    # -- core NATS ---------------------------------------------------------------------------

    async def publish(
        self,
        subject: str,
        payload: bytes,
        headers: Mapping[str, str] | None = None,
        *,
        reply: str = "",
    ) -> None:
        """Publish with the current trace context; inside a PRODUCER span."""
        with self._tracer.start_as_current_span(
            f"publish {span_destination(subject)}",
            kind=SpanKind.PRODUCER,
            attributes=messaging_attributes(subject, "publish", "send", len(payload)),
        ):
            await self.nc.publish(subject, payload, reply=reply, headers=context_headers(headers))

    async def reply(
        self, msg: Msg, payload: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        """Answer a request received by a subscription handler."""
        if not msg.reply:
            raise BusError(f"the message on {msg.subject} is not a request: it has no reply to")
        await self.publish(msg.reply, payload, headers)

    async def request(
        self,
        subject: str,
        payload: bytes,
        timeout: float = 1.0,  # noqa: ASYNC109  (nats-py's request implements it)
        headers: Mapping[str, str] | None = None,
    ) -> Msg:
        """Send a request and wait for the first reply; inside a CLIENT span.

        Raises nats-py's ``TimeoutError`` or ``NoRespondersError``.
        """
        with self._tracer.start_as_current_span(
            f"request {span_destination(subject)}",
            kind=SpanKind.CLIENT,
            attributes=messaging_attributes(subject, "request", "send", len(payload)),
        ):
            return await self.nc.request(
                subject, payload, timeout=timeout, headers=context_headers(headers)
            )

    async def subscribe(
        self,
        subject: str,
        cb: MessageHandler | None = None,
        *,
        queue: str = "",
        **options: Any,
    ) -> Subscription:
        """Subscribe to ``subject`` (wildcards allowed), in queue group ``queue`` if given.

        With ``cb``, each message is handled inside a CONSUMER span that continues the
        publisher's trace; an exception in ``cb`` is recorded on the span and reported by
        nats-py's error callback. Without ``cb``, iterate ``subscription.messages`` and use
        :meth:`consumer_span` around the handling of each message. ``options`` go to nats-py
        (``pending_msgs_limit``, ``max_msgs``, ...).

        Returns once the server has the subscription (a round trip), so a request sent by
        any other connection right afterwards finds its responder; a subject the user may
        not subscribe to raises :class:`BusPermissionError`.
        """
        if cb is None:
            subscription = await self.nc.subscribe(subject, queue=queue, **options)
        else:

            async def handle(msg: Msg) -> None:
                with consumer_span(
                    msg, tracer_provider=self._tracer_provider, subscription=subject, queue=queue
                ):
                    await cb(msg)

            subscription = await self.nc.subscribe(subject, queue=queue, cb=handle, **options)
        # nats-py writes a flush's PING straight to the socket, ahead of the SUB still queued
        # for its writer task, so one PONG does not prove the server has the subscription
        # (a request from another connection could still meet "no responders"). By the first
        # PONG the queue is on the socket; the second PING follows the SUB.
        await self.nc.flush()
        await self.nc.flush()
        # The server answers a forbidden subscription before the flush's PONG.
        refused = self.refusals.take("subscribe", subject)
        if refused is not None:
            with contextlib.suppress(nats.errors.Error):
                await subscription.unsubscribe()
            raise BusPermissionError(refused)
        return subscription

    def consumer_span(
        self, msg: Msg, *, subscription: str | None = None
    ) -> AbstractContextManager[Span]:
        """:func:`consumer_span` with this bus's tracer provider."""
        return consumer_span(msg, tracer_provider=self._tracer_provider, subscription=subscription)

    # -- JetStream ---------------------------------------------------------------------------

    async def jetstream_publish(
        self,
        subject: str,
        payload: bytes,
        *,
        msg_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        stream: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109  (nats-py's publish implements it)
    ) -> js_api.PubAck:
        """Publish to a stream and wait for its acknowledgement; inside a PRODUCER span.

        ``msg_id`` becomes ``Nats-Msg-Id``: the stream stores a message once per id within
        its duplicate window and acknowledges a repeat with ``duplicate=True``, which makes a
        retry after a lost acknowledgement safe. ``stream`` makes the server refuse the
        message unless that stream captures ``subject``. A subject this connection's user may
        not publish to raises :class:`BusPermissionError` once the wait for the
        acknowledgement times out.
        """
        if msg_id is not None and not msg_id.strip():
            raise ValueError("msg_id must not be empty")
        with self._tracer.start_as_current_span(
            f"publish {span_destination(subject)}",
            kind=SpanKind.PRODUCER,
            attributes=messaging_attributes(
                subject, "publish", "send", len(payload), {"messaging.message.id": msg_id}
            ),
        ) as span:
            all_headers = context_headers(headers)
            if msg_id is not None:
                all_headers[js_api.Header.MSG_ID.value] = msg_id
            try:
                ack = await self.js.publish(
                    subject, payload, timeout=timeout, stream=stream, headers=all_headers
                )
            except nats.errors.TimeoutError:
                # A forbidden publish is dropped by the server, so no acknowledgement comes.
                refused = self.refusals.take("publish", subject)
                if refused is not None:
                    raise BusPermissionError(refused) from None
                raise
            span.set_attribute("messaging.nats.stream", ack.stream)
            span.set_attribute("messaging.nats.sequence", ack.seq)
            span.set_attribute("messaging.nats.duplicate", bool(ack.duplicate))
            return ack

    async def ensure_streams(self, streams: StreamsSettings) -> EnsuredStreams:
        """Create the platform's streams, or bring their limits up to date.

        Safe to call from every process at every start. A change JetStream cannot make in
        place (storage type) is refused for all streams before any of them is touched. The
        result maps each stream to its info; its ``outcomes`` say what was done to each.
        """
        return await ensure_platform_streams(self.js, streams)
