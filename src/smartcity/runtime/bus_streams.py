"""The platform's JetStream streams as the bus creates them: their names, the subjects each
captures, their configuration from ``nats.streams``, and bringing them up to date.

:func:`ensure_platform_streams` is what :meth:`smartcity.runtime.bus.Bus.ensure_streams`
does; turning its failures into messages a person can act on, and reading the streams'
status, is :mod:`smartcity.runtime.streams`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import structlog
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import APIError, NotFoundError

from smartcity.runtime import subjects
from smartcity.runtime.bus_errors import StreamConfigError
from smartcity.runtime.config import StreamLimits, StreamsSettings

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

_STREAM_EXISTS_WITH_OTHER_CONFIG = 10058  # JSStreamNameExistErr


# Logged under the bus's own name, as every event of the bus is, whichever module of it
# logs: an operator filters the bus's events by one logger name.
_log = structlog.stdlib.get_logger("smartcity.runtime.bus")


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


async def ensure_platform_streams(js: JetStreamContext, streams: StreamsSettings) -> EnsuredStreams:
    """Create the platform's streams, or bring their limits up to date (see
    :meth:`smartcity.runtime.bus.Bus.ensure_streams`)."""
    wanted = {name: stream_config(name, limits) for name, limits in stream_limits(streams).items()}
    existing: dict[str, js_api.StreamInfo] = {}
    for name in wanted:
        try:
            existing[name] = await js.stream_info(name)
        except NotFoundError:
            continue
    for name, info in existing.items():
        _refuse_impossible_change(info.config, wanted[name])

    result = EnsuredStreams()
    for name, config in wanted.items():
        current = existing.get(name)
        if current is None:
            result[name], result.outcomes[name] = await _create_stream(js, config)
        elif _managed(current.config) != _managed(config):
            result[name] = await _update_stream(js, config)
            result.outcomes[name] = StreamOutcome.UPDATED
        else:
            result[name], result.outcomes[name] = current, StreamOutcome.UNCHANGED
    return result


async def _create_stream(
    js: JetStreamContext, config: js_api.StreamConfig
) -> tuple[js_api.StreamInfo, StreamOutcome]:
    try:
        info = await js.add_stream(config)
    except APIError as exc:
        if exc.err_code != _STREAM_EXISTS_WITH_OTHER_CONFIG:
            raise _stream_error(config, "create", exc) from exc
        # Another process created it between our look-up and now.
        current = await js.stream_info(config.name or "")
        _refuse_impossible_change(current.config, config)
        return await _update_stream(js, config), StreamOutcome.UPDATED
    _log.info("jetstream_stream_created", stream=config.name, subjects=config.subjects)
    return info, StreamOutcome.CREATED


async def _update_stream(js: JetStreamContext, config: js_api.StreamConfig) -> js_api.StreamInfo:
    try:
        info = await js.update_stream(config)
    except APIError as exc:
        raise _stream_error(config, "update", exc) from exc
    _log.info("jetstream_stream_updated", stream=config.name)
    return info


def _stream_error(config: js_api.StreamConfig, action: str, exc: APIError) -> StreamConfigError:
    return StreamConfigError(
        f"stream {config.name}: JetStream refused to {action} it with the configured limits: "
        f"{exc.description} (error {exc.err_code})"
    )
