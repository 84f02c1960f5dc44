"""The platform's JetStream streams as the people who run the platform see them.

Streams are provisioned by the platform (``smartcity streams ensure``, ``smartcity nats``,
later ``smartcity up`` and the Kubernetes operator), never by agents, which only publish and
need no stream-admin rights. This module is what those provisioners and any status page
share:

* :func:`provision_streams` is :meth:`Bus.ensure_streams` with the failures a person can act
  on (JetStream not enabled, permission denied, no answer) turned into :class:`BusError`
  subclasses whose message says what is wrong.
* :func:`stream_status` reads each platform stream's messages, bytes, first and last
  sequence and time, and each consumer's lag: what is not yet delivered, what waits for an
  acknowledgement, what was redelivered, when it last did anything. A missing stream is
  reported as missing, not raised.

Stream info is read with a plain JetStream API request because nats-py's ``StreamState``
drops the times of the first and last message; consumers come through nats-py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import nats.errors
from nats.js import api as js_api
from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError

from smartcity.runtime.bus import STREAM_SUBJECTS, Bus, BusError, EnsuredStreams
from smartcity.runtime.config import StreamsSettings

__all__ = [
    "PLATFORM_STREAMS",
    "ConsumerStatus",
    "JetStreamUnavailableError",
    "PermissionDeniedError",
    "StreamStatus",
    "limits_of",
    "provision_streams",
    "server_of",
    "stream_status",
]

#: The platform's streams, in the order people read them.
PLATFORM_STREAMS: tuple[str, ...] = tuple(STREAM_SUBJECTS)

_API_TIMEOUT = 5.0
_PERMISSIONS_VIOLATION = "permissions violation"


class JetStreamUnavailableError(BusError):
    """The NATS server (or this account on it) has no JetStream."""


class PermissionDeniedError(BusError):
    """The NATS user may not use the JetStream API it needs."""


@dataclass(frozen=True)
class ConsumerStatus:
    """One consumer of a stream and how far behind it is."""

    name: str
    durable: bool
    filter_subjects: tuple[str, ...]
    pending: int
    """Messages in the stream, matching the filter, not yet delivered."""
    ack_pending: int
    """Delivered and not yet acknowledged."""
    redelivered: int
    waiting: int
    """Pull requests waiting for messages (consumers that are connected and idle)."""
    delivered_sequence: int
    ack_floor_sequence: int
    last_active: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "durable": self.durable,
            "filter_subjects": list(self.filter_subjects),
            "pending": self.pending,
            "ack_pending": self.ack_pending,
            "redelivered": self.redelivered,
            "waiting": self.waiting,
            "delivered_sequence": self.delivered_sequence,
            "ack_floor_sequence": self.ack_floor_sequence,
            "last_active": _iso(self.last_active),
        }


@dataclass(frozen=True)
class StreamStatus:
    """One platform stream: its contents, its limits and its consumers, or that it is
    missing (then ``subjects`` are the ones it should capture and the rest is empty)."""

    name: str
    exists: bool
    subjects: tuple[str, ...]
    messages: int = 0
    bytes: int = 0
    first_sequence: int = 0
    first_time: datetime | None = None
    last_sequence: int = 0
    last_time: datetime | None = None
    limits: dict[str, Any] | None = None
    consumers: tuple[ConsumerStatus, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "exists": self.exists,
            "subjects": list(self.subjects),
            "messages": self.messages,
            "bytes": self.bytes,
            "first_sequence": self.first_sequence,
            "first_time": _iso(self.first_time),
            "last_sequence": self.last_sequence,
            "last_time": _iso(self.last_time),
            "limits": self.limits,
            "consumer_count": len(self.consumers),
            "consumers": [consumer.to_json() for consumer in self.consumers],
        }


def limits_of(config: js_api.StreamConfig) -> dict[str, Any]:
    """A stream's main limits, ``-1`` meaning unlimited as in NATS (``max_age_seconds`` 0
    too); the same keys as :class:`~smartcity.runtime.config.StreamLimits`."""
    return {
        "storage": getattr(config.storage, "value", config.storage),
        "replicas": config.num_replicas,
        "max_age_seconds": config.max_age or 0,
        "max_bytes": config.max_bytes,
        "max_msgs": config.max_msgs,
        "max_msg_size": config.max_msg_size,
    }


def server_of(bus: Bus) -> str:
    """The URL of the server ``bus`` is connected to, without any credentials in it."""
    url = bus.nc.connected_url
    if url is None:
        return "(not connected)"
    host = url.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{url.scheme}://{host}:{url.port}" if url.port else f"{url.scheme}://{host}"


async def provision_streams(bus: Bus, streams: StreamsSettings) -> EnsuredStreams:
    """Create or update the platform's streams from ``streams``; what was done is in the
    result's ``outcomes``. Raises :class:`BusError` subclasses with a message for people:
    :class:`~smartcity.runtime.bus.StreamConfigError` for a change JetStream cannot make,
    :class:`JetStreamUnavailableError`, :class:`PermissionDeniedError`."""
    async with _jetstream_errors(bus, "create or update streams"):
        ensured = await bus.ensure_streams(streams)
    return ensured


async def stream_status(bus: Bus, names: Iterable[str] = PLATFORM_STREAMS) -> list[StreamStatus]:
    """The status of each stream in ``names`` (default: the platform's), in that order."""
    found: list[StreamStatus] = []
    async with _jetstream_errors(bus, "read stream and consumer information"):
        for name in names:
            found.append(await _one_stream(bus, name))
    return found


async def _one_stream(bus: Bus, name: str) -> StreamStatus:
    expected = tuple(STREAM_SUBJECTS.get(name, ()))
    try:
        info = await _api(bus, f"STREAM.INFO.{name}")
        consumers = await _consumers(bus, name, info.get("state", {}).get("consumer_count", 0))
    except NotFoundError:
        return StreamStatus(name=name, exists=False, subjects=expected)
    config = js_api.StreamConfig.from_response(dict(info["config"]))
    state = info.get("state", {})
    return StreamStatus(
        name=name,
        exists=True,
        subjects=tuple(config.subjects or ()),
        messages=state.get("messages", 0),
        bytes=state.get("bytes", 0),
        first_sequence=state.get("first_seq", 0),
        first_time=_time(state.get("first_ts")),
        last_sequence=state.get("last_seq", 0),
        last_time=_time(state.get("last_ts")),
        limits=limits_of(config),
        consumers=consumers,
    )


async def _consumers(bus: Bus, stream: str, count: int) -> tuple[ConsumerStatus, ...]:
    infos: list[js_api.ConsumerInfo] = []
    while len(infos) < count:  # the server answers at most 256 per request
        page = await bus.js.consumers_info(stream, offset=len(infos))
        if not page:
            break
        infos.extend(page)
    return tuple(_consumer(info) for info in sorted(infos, key=lambda info: info.name))


def _consumer(info: js_api.ConsumerInfo) -> ConsumerStatus:
    config = info.config
    filters = config.filter_subjects or ([config.filter_subject] if config.filter_subject else [])
    delivered, floor = info.delivered, info.ack_floor
    active = [seen.last_active for seen in (delivered, floor) if seen and seen.last_active]
    return ConsumerStatus(
        name=info.name,
        durable=bool(config.durable_name),
        filter_subjects=tuple(filters),
        pending=info.num_pending or 0,
        ack_pending=info.num_ack_pending or 0,
        redelivered=info.num_redelivered or 0,
        waiting=info.num_waiting or 0,
        delivered_sequence=delivered.stream_seq if delivered else 0,
        ack_floor_sequence=floor.stream_seq if floor else 0,
        last_active=max(active) if active else None,
    )


async def _api(bus: Bus, subject: str) -> dict[str, Any]:
    """One JetStream API request, answered as nats-py answers its own."""
    try:
        msg = await bus.nc.request(f"{js_api.DEFAULT_PREFIX}.{subject}", b"", timeout=_API_TIMEOUT)
    except nats.errors.NoRespondersError:
        raise ServiceUnavailableError from None
    response: dict[str, Any] = json.loads(msg.data)
    if "error" in response:
        APIError.from_error(response["error"])
    return response


@asynccontextmanager
async def _jetstream_errors(bus: Bus, action: str) -> AsyncIterator[None]:
    """Turn what nats-py raises for an unusable JetStream into a sentence naming the cause."""
    server = server_of(bus)
    try:
        yield
    except ServiceUnavailableError as exc:
        detail = f" ({exc.description})" if exc.description else ""
        raise JetStreamUnavailableError(
            f"JetStream is not enabled on the NATS server at {server}{detail}: run the server "
            "with JetStream (nats-server --jetstream, or `smartcity nats`)"
        ) from None
    except nats.errors.TimeoutError:
        last = bus.nc.last_error
        if last is not None and _PERMISSIONS_VIOLATION in str(last).lower():
            reason = str(last).removeprefix("nats: ")
            raise PermissionDeniedError(
                f"permission denied: the NATS user at {server} may not {action} ({reason}); "
                "use a user allowed to publish to $JS.API.> (agents need no such right)"
            ) from None
        raise BusError(
            f"the NATS server at {server} did not answer JetStream requests within "
            f"{_API_TIMEOUT:g} s (trying to {action})"
        ) from None
    except nats.errors.ConnectionClosedError:
        raise BusError(
            f"the connection to NATS at {server} closed while trying to {action}"
        ) from None


def _time(text: str | None) -> datetime | None:
    """A JetStream time; its zero value (an empty stream's first/last) is ``None``."""
    if not text or text.startswith("0001-01-01"):
        return None
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        return None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None
