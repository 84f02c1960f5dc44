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
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from enum import StrEnum
from types import TracebackType
from typing import Any, Self

import nats.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import APIError, NotFoundError
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Link, Span, SpanKind, Tracer, TracerProvider

from smartcity.runtime import subjects
from smartcity.runtime.config import NatsSettings, StreamLimits, StreamsSettings
from smartcity.runtime.nats_auth.credentials import (
    CredentialsError,
    Refusals,
    connect_refusal,
    inbox_prefix,
    resolve_credentials,
)

TELEMETRY_STREAM = "TELEMETRY"
ALERTS_STREAM = "ALERTS"
RECORDS_STREAM = "RECORDS"
IDENTITY_STREAM = "IDENTITY"
AUDIT_STREAM = "AUDIT"
DEADLETTER_STREAM = "DEADLETTER"

#: Which subjects each of the platform's streams captures.
STREAM_SUBJECTS: Mapping[str, tuple[str, ...]] = {
    TELEMETRY_STREAM: (subjects.ALL_TELEMETRY,),
    ALERTS_STREAM: (subjects.ALL_ALERTS,),
    RECORDS_STREAM: (subjects.ALL_RECORDS,),
    IDENTITY_STREAM: (subjects.ALL_IDENTITY,),
    AUDIT_STREAM: (subjects.ALL_AUDIT,),
    DEADLETTER_STREAM: (subjects.ALL_DEADLETTER,),
}

MessageHandler = Callable[[Msg], Awaitable[None]]

_TRACER_NAME = "smartcity.runtime.bus"
_STREAM_EXISTS_WITH_OTHER_CONFIG = 10058  # JSStreamNameExistErr

_log = structlog.stdlib.get_logger(__name__)


class BusError(RuntimeError):
    """The bus cannot be reached or used as asked."""


class BusPermissionError(BusError, nats.errors.Error):
    """The server refused this connection's user a publish or a subscription; the message
    names both. It is also a ``nats.errors.Error``, which callers already handle."""


class StreamConfigError(BusError):
    """A JetStream stream cannot be given the configured limits; the message names it."""


class StreamOutcome(StrEnum):
    """What :meth:`Bus.ensure_streams` did to one stream."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


class EnsuredStreams(dict[str, js_api.StreamInfo]):
    """Each stream's info by name, as before; ``outcomes`` says what was done to each."""

    def __init__(self) -> None:
        super().__init__()
        self.outcomes: dict[str, StreamOutcome] = {}


# -- trace context in message headers --------------------------------------------------------


class _HeaderGetter(Getter[Mapping[str, str]]):
    """Reads headers case-insensitively: other NATS clients may canonicalise header names
    (``Traceparent``) while W3C names them in lower case."""

    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            wanted = key.lower()
            value = next((v for k, v in carrier.items() if k.lower() == wanted), None)
        return None if value is None else [value]

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list(carrier)


_GETTER = _HeaderGetter()


def context_headers(
    headers: Mapping[str, str] | None = None, *, context: Context | None = None
) -> dict[str, str]:
    """``headers`` plus the trace context of ``context`` (by default the current one)."""
    carrier = dict(headers) if headers else {}
    propagate.inject(carrier, context=context)
    return carrier


def extract_context(msg: Msg) -> Context:
    """The publisher's trace context carried by ``msg`` (an empty context if it has none).

    It does not inherit from the current context: a received message continues its
    publisher's trace, not whatever the receiving task happened to be doing.
    """
    return propagate.extract(msg.headers or {}, context=Context(), getter=_GETTER)


def message_link(msg: Msg) -> Link | None:
    """A span link to the publisher of ``msg``, for spans that handle many messages at once
    (a batched JetStream fetch), where no single publisher can be the parent."""
    span_context = trace.get_current_span(extract_context(msg)).get_span_context()
    return Link(span_context) if span_context.is_valid else None


def _destination(subject: str) -> str:
    """A low-cardinality name for span names; the full subject goes in an attribute."""
    if subject.startswith("_INBOX."):
        return "(inbox)"
    parts = subject.split(".")
    if parts[0] == subjects.ROOT and len(parts) > 2:
        return ".".join(parts[:2])
    return subject


def _attributes(
    subject: str, operation: str, kind: str, body_size: int, extra: Mapping[str, Any] = {}
) -> dict[str, Any]:
    """Messaging attributes of OpenTelemetry's semantic conventions; empty extras omitted."""
    attributes = {
        "messaging.system": "nats",
        "messaging.destination.name": subject,
        "messaging.operation.name": operation,
        "messaging.operation.type": kind,
        "messaging.message.body.size": body_size,
    }
    attributes.update({key: value for key, value in extra.items() if value})
    return attributes


def _tracer(tracer_provider: TracerProvider | None) -> Tracer:
    return trace.get_tracer(_TRACER_NAME, tracer_provider=tracer_provider)


@contextmanager
def consumer_span(
    msg: Msg,
    *,
    tracer_provider: TracerProvider | None = None,
    subscription: str | None = None,
    queue: str | None = None,
) -> Iterator[Span]:
    """A CONSUMER span, child of the publisher's span, current for the body of the block.

    ``subscription`` (the filter subscribed to) names the span when given, since it has far
    fewer values than the subjects it matches.
    """
    name = f"process {subscription or _destination(msg.subject)}"
    attributes = _attributes(
        msg.subject,
        "process",
        "process",
        len(msg.data),
        {"messaging.consumer.group.name": queue},
    )
    with _tracer(tracer_provider).start_as_current_span(
        name, context=extract_context(msg), kind=SpanKind.CONSUMER, attributes=attributes
    ) as span:
        yield span


# -- streams ---------------------------------------------------------------------------------


def stream_limits(streams: StreamsSettings) -> dict[str, StreamLimits]:
    """The configured limits of each stream, by stream name."""
    return {
        TELEMETRY_STREAM: streams.telemetry,
        ALERTS_STREAM: streams.alerts,
        RECORDS_STREAM: streams.records,
        IDENTITY_STREAM: streams.identity,
        AUDIT_STREAM: streams.audit,
        DEADLETTER_STREAM: streams.deadletter,
    }


def stream_config(name: str, limits: StreamLimits) -> js_api.StreamConfig:
    """The JetStream configuration of stream ``name`` with ``limits``."""
    return js_api.StreamConfig(
        name=name,
        subjects=list(STREAM_SUBJECTS[name]),
        retention=js_api.RetentionPolicy.LIMITS,
        discard=js_api.DiscardPolicy.OLD,
        max_age=limits.max_age_seconds,
        max_bytes=limits.max_bytes,
        max_msgs=limits.max_msgs,
        max_msg_size=limits.max_msg_size,
        num_replicas=limits.replicas,
        duplicate_window=limits.duplicate_window_seconds,
        storage=js_api.StorageType(limits.storage),
        # The audit log is append-only: no message is deleted or purged by hand.
        deny_delete=name == AUDIT_STREAM or None,
        deny_purge=name == AUDIT_STREAM or None,
    )


def _nanoseconds(seconds: float | None) -> int:
    return round((seconds or 0) * 1_000_000_000)


def _value(setting: Any) -> Any:
    """A policy as its wire value: nats-py returns plain strings where it accepts enums."""
    return getattr(setting, "value", setting)


def _managed(config: js_api.StreamConfig) -> tuple[Any, ...]:
    """The parts of a stream's configuration that :meth:`Bus.ensure_streams` owns."""
    return (
        sorted(config.subjects or ()),
        _value(config.retention),
        _value(config.discard),
        _nanoseconds(config.max_age),
        config.max_bytes,
        config.max_msgs,
        config.max_msg_size,
        config.num_replicas,
        _nanoseconds(config.duplicate_window),
        _value(config.storage),
        bool(config.deny_delete),
        bool(config.deny_purge),
    )


def _refuse_impossible_change(have: js_api.StreamConfig, want: js_api.StreamConfig) -> None:
    current, wanted = _value(have.storage), _value(want.storage)
    if current != wanted:
        raise StreamConfigError(
            f"stream {want.name}: its storage is {current!r} and JetStream cannot change it to "
            f"{wanted!r} in place; keep the current storage, or back up and delete the stream"
        )


# -- the client ------------------------------------------------------------------------------


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
        self._tracer = _tracer(tracer_provider)

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
        servers = url or settings.url
        if not servers:
            raise BusError(
                "no NATS server to connect to: set nats.url (SMARTCITY_NATS__URL) "
                "or start the embedded server"
            )
        try:
            credentials = resolve_credentials(settings)
        except CredentialsError as exc:
            raise BusError(str(exc)) from None
        user = credentials.user if credentials is not None else None
        log = _log.bind(connection=name, user=user)
        nc = Client()
        errors: list[Exception] = []
        refusals = Refusals(user)
        connecting: list[asyncio.Timeout] = []

        async def on_error(exc: Exception) -> None:
            errors.append(exc)
            refused = refusals.record(exc) or connect_refusal(user, servers, exc)
            if refused is None:
                log.warning("nats_error", error=str(exc) or type(exc).__name__)
                return
            log.warning("nats_refused", error=refused)
            if connecting and not nc.is_connected:
                # Retrying the same credentials cannot succeed: give up at once.
                connecting[0].reschedule(asyncio.get_running_loop().time())

        async def on_disconnected() -> None:
            if not nc.is_closed:  # closing says so itself
                log.warning("nats_disconnected")

        async def on_reconnected() -> None:
            log.info("nats_reconnected", url=_connected_url(nc))

        async def on_closed() -> None:
            log.info("nats_closed")

        timeout = settings.connect_timeout_seconds
        try:
            async with asyncio.timeout(timeout) as deadline:
                connecting.append(deadline)
                await nc.connect(
                    servers=[server.strip() for server in servers.split(",")],
                    name=name,
                    connect_timeout=timeout,
                    max_reconnect_attempts=settings.max_reconnect_attempts,
                    reconnect_time_wait=settings.reconnect_wait_seconds,
                    error_cb=on_error,
                    disconnected_cb=on_disconnected,
                    reconnected_cb=on_reconnected,
                    closed_cb=on_closed,
                    user=user,
                    password=credentials.password if credentials is not None else None,
                    # Replies to this user's requests arrive under its own inbox prefix,
                    # the only part of _INBOX its permissions let it read.
                    inbox_prefix=inbox_prefix(user),
                )
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            await nc.close()
            cause = errors[-1] if errors else exc
            refusal = (connect_refusal(user, servers, error) for error in [*errors, exc])
            refused = next((sentence for sentence in refusal if sentence is not None), None)
            if refused is not None:
                raise BusError(refused) from exc
            reason = str(cause) or type(cause).__name__
            raise BusError(
                f"cannot connect to NATS at {servers} within {timeout:g} s: {reason}"
            ) from exc
        finally:
            connecting.clear()
        log.info("nats_connected", url=_connected_url(nc))
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
            f"publish {_destination(subject)}",
            kind=SpanKind.PRODUCER,
            attributes=_attributes(subject, "publish", "send", len(payload)),
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
            f"request {_destination(subject)}",
            kind=SpanKind.CLIENT,
            attributes=_attributes(subject, "request", "send", len(payload)),
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
            f"publish {_destination(subject)}",
            kind=SpanKind.PRODUCER,
            attributes=_attributes(
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
        wanted = {
            name: stream_config(name, limits) for name, limits in stream_limits(streams).items()
        }
        existing: dict[str, js_api.StreamInfo] = {}
        for name in wanted:
            try:
                existing[name] = await self.js.stream_info(name)
            except NotFoundError:
                continue
        for name, info in existing.items():
            _refuse_impossible_change(info.config, wanted[name])

        result = EnsuredStreams()
        for name, config in wanted.items():
            current = existing.get(name)
            if current is None:
                result[name], result.outcomes[name] = await self._create_stream(config)
            elif _managed(current.config) != _managed(config):
                result[name] = await self._update_stream(config)
                result.outcomes[name] = StreamOutcome.UPDATED
            else:
                result[name], result.outcomes[name] = current, StreamOutcome.UNCHANGED
        return result

    async def _create_stream(
        self, config: js_api.StreamConfig
    ) -> tuple[js_api.StreamInfo, StreamOutcome]:
        try:
            info = await self.js.add_stream(config)
        except APIError as exc:
            if exc.err_code != _STREAM_EXISTS_WITH_OTHER_CONFIG:
                raise _stream_error(config, "create", exc) from exc
            # Another process created it between our look-up and now.
            current = await self.js.stream_info(config.name or "")
            _refuse_impossible_change(current.config, config)
            return await self._update_stream(config), StreamOutcome.UPDATED
        _log.info("jetstream_stream_created", stream=config.name, subjects=config.subjects)
        return info, StreamOutcome.CREATED

    async def _update_stream(self, config: js_api.StreamConfig) -> js_api.StreamInfo:
        try:
            info = await self.js.update_stream(config)
        except APIError as exc:
            raise _stream_error(config, "update", exc) from exc
        _log.info("jetstream_stream_updated", stream=config.name)
        return info


def _stream_error(config: js_api.StreamConfig, action: str, exc: APIError) -> StreamConfigError:
    return StreamConfigError(
        f"stream {config.name}: JetStream refused to {action} it with the configured limits: "
        f"{exc.description} (error {exc.err_code})"
    )


def _connected_url(nc: Client) -> str | None:
    url = nc.connected_url
    return url.geturl() if url is not None else None
