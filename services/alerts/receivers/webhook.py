"""The webhook receiver: Alertmanager's webhook payload, version 4, over HTTP POST.

The payload is what Alertmanager's webhook notifier sends (its ``Message``: the template
data plus ``version``, ``groupKey`` and ``truncatedAlerts``), so a tool that already takes
Alertmanager's webhooks (a chat bridge, an incident tool) takes ours unchanged. Times are
RFC 3339 as Go writes a ``time.Time`` in JSON, in UTC, fractions without trailing zeros; a
firing alert's missing end is Go's zero time, ``0001-01-01T00:00:00Z``, as there.

Outcomes follow Alertmanager's retrier: a 2xx is delivered; a 5xx is worth retrying (so is
429, Too Many Requests); any other status is a refusal that retrying cannot cure. A
connection that fails or times out is retried.
"""

from __future__ import annotations

import functools
import json
import ssl
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from smartcity.services.alerts.receivers.config import WebhookReceiver
from smartcity.services.alerts.receivers.model import (
    Notification,
    NotifiedAlert,
    Outcome,
    SendResult,
)

PAYLOAD_VERSION = "4"
GO_ZERO_TIME = "0001-01-01T00:00:00Z"
ERROR_BODY_BYTES = 512
"""How much of a refusal's body is kept in the attempt's record."""
RETRY_STATUSES = frozenset({429})
"""Statuses outside 5xx that are worth another attempt."""


def rfc3339(moment: datetime | None) -> str:
    """``moment`` in UTC the way Go's ``time.Time`` marshals to JSON (RFC 3339 with up to
    nanoseconds, trailing zeros dropped); ``None`` is Go's zero time."""
    if moment is None:
        return GO_ZERO_TIME
    utc = moment.astimezone(UTC)
    # Formatted by hand: strftime writes year 1 as "1", not "0001".
    text = (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}"
    )
    if utc.microsecond:
        text += "." + f"{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def _alert(alert: NotifiedAlert) -> dict[str, Any]:
    return {
        "status": alert.status,
        "labels": dict(sorted(alert.labels.items())),
        "annotations": dict(sorted(alert.annotations.items())),
        "startsAt": rfc3339(alert.starts_at),
        "endsAt": rfc3339(alert.ends_at),
        "generatorURL": alert.generator_url,
        "fingerprint": alert.fingerprint,
    }


def payload(notification: Notification, *, external_url: str = "", max_alerts: int = 0) -> dict:
    """The webhook message for ``notification``; with ``max_alerts`` above 0, alerts past
    that many are left out and added to ``truncatedAlerts``, as Alertmanager's
    ``max_alerts`` does."""
    alerts = list(notification.alerts)
    truncated = notification.truncated
    if max_alerts and len(alerts) > max_alerts:
        truncated += len(alerts) - max_alerts
        alerts = alerts[:max_alerts]
    return {
        "receiver": notification.receiver,
        "status": notification.status,
        "alerts": [_alert(alert) for alert in alerts],
        "groupLabels": dict(sorted(notification.group_labels.items())),
        "commonLabels": dict(sorted(notification.common_labels.items())),
        "commonAnnotations": dict(sorted(notification.common_annotations.items())),
        "externalURL": external_url,
        "version": PAYLOAD_VERSION,
        "groupKey": notification.group_key,
        "truncatedAlerts": truncated,
    }


def encode(message: dict) -> bytes:
    """UTF-8 JSON; control characters are escaped by the encoder, so any label text
    gives valid JSON."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def _headers(receiver: WebhookReceiver, user_agent: str) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "User-Agent": user_agent}
    if receiver.bearer_token is not None:
        headers["Authorization"] = f"Bearer {receiver.bearer_token.get_secret_value()}"
    elif receiver.basic_auth is not None:
        basic = receiver.basic_auth
        headers["Authorization"] = aiohttp.encode_basic_auth(
            basic.username, basic.password.get_secret_value()
        )
    return headers


@functools.lru_cache(maxsize=16)
def _trusting(ca_file: Path) -> ssl.SSLContext:
    # One context per CA file: loading certificates for every request would cost more than
    # the request.
    return ssl.create_default_context(cafile=ca_file)


def classify(status: int) -> Outcome:
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if 500 <= status < 600 or status in RETRY_STATUSES:
        return Outcome.RETRY
    return Outcome.FAILED


async def send(
    session: aiohttp.ClientSession,
    receiver: WebhookReceiver,
    notification: Notification,
    *,
    external_url: str = "",
    user_agent: str = "smartcity-alerts",
) -> SendResult:
    """One POST of ``notification`` to the receiver; never raises for what the network or
    the receiver does, only reports it."""
    body = encode(payload(notification, external_url=external_url, max_alerts=receiver.max_alerts))
    try:
        tls = True if receiver.ca_file is None else _trusting(receiver.ca_file)
        async with session.post(
            str(receiver.url),
            data=body,
            headers=_headers(receiver, user_agent),
            allow_redirects=False,
            ssl=tls,
            timeout=aiohttp.ClientTimeout(total=receiver.timeout_seconds),
        ) as response:
            outcome = classify(response.status)
            if outcome is Outcome.DELIVERED:
                return SendResult(outcome, response.status)
            detail = (await response.content.read(ERROR_BODY_BYTES)).decode("utf-8", "replace")
            error = f"HTTP {response.status} {response.reason or ''}".rstrip()
            return SendResult(outcome, response.status, f"{error}: {detail}" if detail else error)
    except TimeoutError:
        return SendResult(Outcome.RETRY, None, f"no answer within {receiver.timeout_seconds:g} s")
    except aiohttp.InvalidURL as exc:
        return SendResult(Outcome.FAILED, None, f"invalid URL: {exc}")
    except (aiohttp.ClientError, OSError) as exc:  # ssl.SSLError and a missing CA file too
        return SendResult(Outcome.RETRY, None, f"{type(exc).__name__}: {exc}")
