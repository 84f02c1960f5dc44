"""Typed configuration for every smartcity process.

One model covers the whole platform so that a single YAML file can describe a city; each
process reads only the sections it needs. Values come, highest priority first, from:

1. keyword arguments given to :func:`load_settings` (what the CLI passes from its flags),
2. environment variables ``SMARTCITY_<SECTION>__<KEY>`` (``SMARTCITY_NATS__URL=...``),
3. the YAML file named by ``--config`` or ``SMARTCITY_CONFIG``,
4. the defaults of each section, which describe the embedded single-machine city.

Unknown keys are refused rather than ignored: a typo in a production config must not
silently fall back to a default.

The sections are defined beside this module: those every process reads in
:mod:`smartcity.runtime.config_sections`, the services' own in
:mod:`smartcity.runtime.config_services`, ``auth`` in :mod:`smartcity.runtime.auth_settings`.
Every name is importable from here too.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from smartcity.runtime.auth_settings import AuthSettings
from smartcity.runtime.config_sections import (
    AgentSettings,
    ConsumerSettings,
    GrpcSettings,
    LoggingSettings,
    NatsSettings,
    PluginSettings,
    StreamLimits,
    StreamsSettings,
    TelemetrySettings,
)
from smartcity.runtime.config_services import (
    AlertsSettings,
    IdentitySettings,
    MonitoringSettings,
    RecordsSettings,
)

__all__ = [
    "CONFIG_ENV",
    "ENV_PREFIX",
    "AgentSettings",
    "AlertsSettings",
    "AuthSettings",
    "ConfigError",
    "ConsumerSettings",
    "GrpcSettings",
    "IdentitySettings",
    "LoggingSettings",
    "MonitoringSettings",
    "NatsSettings",
    "PluginSettings",
    "RecordsSettings",
    "Settings",
    "StreamLimits",
    "StreamsSettings",
    "TelemetrySettings",
    "load_settings",
]

ENV_PREFIX = "SMARTCITY_"
CONFIG_ENV = "SMARTCITY_CONFIG"


class ConfigError(Exception):
    """A configuration that cannot be used; the message names the source and the key."""


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
