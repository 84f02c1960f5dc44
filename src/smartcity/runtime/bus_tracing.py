"""W3C trace context in NATS message headers, and the spans of messaging.

Publishing carries ``traceparent``/``tracestate`` in the headers and opens a PRODUCER span;
handling a message opens a CONSUMER span whose parent is the publisher's span, so one trace
follows a reading from the agent through NATS into monitoring and alerts. Span names and
attributes follow OpenTelemetry's messaging conventions. :class:`smartcity.runtime.bus.Bus`
traces its own calls with these; code that reads messages itself uses :func:`consumer_span`,
:func:`extract_context` and :func:`message_link`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from nats.aio.msg import Msg
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Link, Span, SpanKind, Tracer, TracerProvider

from smartcity.runtime import subjects

_TRACER_NAME = "smartcity.runtime.bus"


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


def span_destination(subject: str) -> str:
    """A low-cardinality name for span names; the full subject goes in an attribute."""
    if subject.startswith("_INBOX."):
        return "(inbox)"
    parts = subject.split(".")
    if parts[0] == subjects.ROOT and len(parts) > 2:
        return ".".join(parts[:2])
    return subject


def messaging_attributes(
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


def bus_tracer(tracer_provider: TracerProvider | None) -> Tracer:
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
    name = f"process {subscription or span_destination(msg.subject)}"
    attributes = messaging_attributes(
        msg.subject,
        "process",
        "process",
        len(msg.data),
        {"messaging.consumer.group.name": queue},
    )
    with bus_tracer(tracer_provider).start_as_current_span(
        name, context=extract_context(msg), kind=SpanKind.CONSUMER, attributes=attributes
    ) as span:
        yield span
