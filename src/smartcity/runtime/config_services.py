"""The sections of the four stateful services: monitoring, alerts, identity and records.

Each names where the service stores (``store_url``, checked against the backends the services
have) and what is particular to it: how it consumes, how long it keeps, how it locks logins
out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator

from smartcity.runtime.config_sections import ConsumerSettings, Section
from smartcity.runtime.storage.urls import backend_of


def _store_url(service: str) -> Any:
    """A ``store_url`` validator: a URL of a backend the services have (or none)."""

    def check(cls: type, value: str | None) -> str | None:
        if value is not None:
            backend_of(value, service)
        return value

    return classmethod(check)


class MonitoringSettings(Section):
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


class AlertsSettings(Section):
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


class IdentitySettings(Section):
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


class RecordsSettings(Section):
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
