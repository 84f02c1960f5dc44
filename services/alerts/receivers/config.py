"""Receivers by name, and how hard the dispatcher tries to reach them.

A YAML section such as::

    receivers:
      ioc-duty:
        kind: webhook
        url: https://ioc.danang.gov.vn/hooks/alerts
        bearer_token: ...
      water-engineers:
        kind: email
        to: [truc-ca@dawaco.vn]
        sender: alerts@ioc.danang.gov.vn
        host: smtp.danang.gov.vn
        port: 587
        tls: starttls
    retry: {initial_backoff_seconds: 1, max_backoff_seconds: 300, give_up_after_seconds: 86400}

Unknown keys are refused, as everywhere in the platform's configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BasicAuth(_Model):
    username: str = Field(min_length=1)
    password: SecretStr


class WebhookReceiver(_Model):
    """POSTs Alertmanager's webhook payload (version 4) to ``url``; a tool that already
    takes Alertmanager's webhooks takes these unchanged."""

    kind: Literal["webhook"] = "webhook"
    url: AnyHttpUrl
    bearer_token: SecretStr | None = None
    basic_auth: BasicAuth | None = None
    ca_file: Path | None = None
    """Certificates to trust for an https ``url`` (PEM), such as the city's own CA; the
    system's otherwise."""
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    max_alerts: int = Field(default=0, ge=0)
    """At most this many alerts per call, the rest counted in ``truncatedAlerts``; 0: all."""

    @model_validator(mode="after")
    def _one_credential(self) -> WebhookReceiver:
        if self.bearer_token is not None and self.basic_auth is not None:
            raise ValueError("give bearer_token or basic_auth, not both")
        return self


def _address(value: str) -> str:
    # A header with a line break in it would let a configuration inject headers.
    if "@" not in value or any(char in value for char in "\r\n") or value != value.strip():
        raise ValueError(f"{value!r} is not an e-mail address")
    return value


class EmailReceiver(_Model):
    """Sends a plain-text e-mail listing the alerts through the SMTP server at
    ``host:port``. ``tls``: ``starttls`` upgrades the connection (port 587), ``implicit``
    speaks TLS from the start (port 465), ``none`` sends in the clear (a relay on the
    local network only)."""

    kind: Literal["email"] = "email"
    to: list[str] = Field(min_length=1)
    sender: str
    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = None
    """Certificates to trust for the server (PEM), such as the city's own CA; the system's
    otherwise."""
    timeout_seconds: float = Field(default=30.0, gt=0, le=300)

    @field_validator("to")
    @classmethod
    def _recipients(cls, value: list[str]) -> list[str]:
        return [_address(item) for item in value]

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        return _address(value)

    @model_validator(mode="after")
    def _login_pair(self) -> EmailReceiver:
        if (self.username is None) != (self.password is None):
            raise ValueError("give username and password together, or neither")
        return self


Receiver = Annotated[WebhookReceiver | EmailReceiver, Field(discriminator="kind")]


class RetryPolicy(_Model):
    """Exponential back-off between attempts, capped, until ``give_up_after_seconds``
    after the notification was submitted; then the last attempt is recorded as failed."""

    initial_backoff_seconds: float = Field(default=1.0, gt=0)
    max_backoff_seconds: float = Field(default=300.0, gt=0)
    multiplier: float = Field(default=2.0, ge=1)
    give_up_after_seconds: float = Field(default=24 * 3600.0, gt=0)

    def backoff(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failed attempt (1 for the first)."""
        delay = self.initial_backoff_seconds
        # Step by step rather than multiplier ** n, which overflows on a long outage.
        for _ in range(failures - 1):
            if delay >= self.max_backoff_seconds:
                break
            delay *= self.multiplier
        return min(delay, self.max_backoff_seconds)


class ReceiversConfig(_Model):
    """The receivers notifications may name, and the dispatcher's settings."""

    receivers: dict[str, Receiver] = Field(default_factory=dict)
    retry: RetryPolicy = RetryPolicy()
    external_url: str = ""
    """A link back to the alerts API or dashboard: ``externalURL`` of the webhook payload."""
    concurrency: int = Field(default=8, ge=1, le=256)
    """Deliveries in flight at once, over all receivers."""

    @field_validator("receivers")
    @classmethod
    def _names(cls, value: dict[str, Receiver]) -> dict[str, Receiver]:
        for name in value:
            if not name or name != name.strip() or len(name) > 128:
                raise ValueError(f"receiver name {name!r} must be 1 to 128 characters, trimmed")
        return value
