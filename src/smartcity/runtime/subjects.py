"""The NATS subject namespace of the city, in one place.

Every subject is ``city.<kind>.<token>...``. A token comes from data (a site name, a device id,
a record type), so it is checked before it becomes part of a subject: a dot would shift every
later token, and a ``*`` or ``>`` in a publish subject is refused by the server, or worse, in a
permission it would grant more than intended. Builders raise :class:`SubjectError` instead of
producing a subject that means something else.

Filters (``*`` and ``>``) are only built by the ``*_filter`` functions, never from data.
"""

from __future__ import annotations

import re
from typing import NamedTuple

ROOT = "city"
TELEMETRY = f"{ROOT}.telemetry"
ALERTS = f"{ROOT}.alerts"
RECORDS = f"{ROOT}.records"
IDENTITY = f"{ROOT}.identity"
AGENTS = f"{ROOT}.agents"
COMMANDS = f"{ROOT}.commands"
AUDIT = f"{ROOT}.audit"
AUDIT_COMMANDS = f"{AUDIT}.commands"
DEADLETTER = f"{ROOT}.deadletter"
MONITORING_LIVE = f"{ROOT}.monitoring.live"
MONITORING_WATCH = f"{ROOT}.monitoring.watch"
"""Where monitoring replicas say which devices their live streams watch (core NATS)."""

ALL_TELEMETRY = f"{TELEMETRY}.>"
ALL_ALERTS = f"{ALERTS}.>"
ALL_RECORDS = f"{RECORDS}.>"
ALL_IDENTITY = f"{IDENTITY}.>"
ALL_AUDIT = f"{AUDIT}.>"
ALL_DEADLETTER = f"{DEADLETTER}.>"

WILDCARD = "*"

# Printable characters other than space, dot and the two wildcards. Non-ASCII letters are
# allowed: NATS subjects are UTF-8, and Vietnamese site names may use them.
_TOKEN = re.compile(r"[^\s.*>\x00-\x1f\x7f]+")


class SubjectError(ValueError):
    """A value that cannot be used as a token of a NATS subject."""


def token(value: str, what: str = "token") -> str:
    """Return ``value`` if it is a single, literal subject token; raise otherwise.

    ``what`` names the value in the error (``"site"``, ``"device"``), so that the message
    points at the configuration key that is wrong.
    """
    if not isinstance(value, str):
        raise SubjectError(f"{what} must be a string, not {type(value).__name__}")
    if not value:
        raise SubjectError(f"{what} must not be empty")
    if not _TOKEN.fullmatch(value):
        bad = sorted({c for c in value if not _TOKEN.fullmatch(c)})
        shown = ", ".join(repr(c) for c in bad)
        raise SubjectError(
            f"{what} {value!r} cannot be a NATS subject token: it contains {shown} "
            "(dots, '*', '>', whitespace and control characters are not allowed)"
        )
    return value


def telemetry_subject(field: str, site: str, device: str) -> str:
    """``city.telemetry.<field>.<site>.<device>``: a device's ``TelemetryBatch``."""
    return ".".join(
        (TELEMETRY, token(field, "field"), token(site, "site"), token(device, "device"))
    )


def alert_subject(field: str, severity: str) -> str:
    """``city.alerts.<field>.<severity>``: alert lifecycle events."""
    return ".".join((ALERTS, token(field, "field"), token(severity, "severity")))


def record_subject(record_type: str, event: str) -> str:
    """``city.records.<type>.<event>``: record created/updated/deleted events."""
    return ".".join((RECORDS, token(record_type, "record type"), token(event, "event")))


def identity_subject(event: str) -> str:
    """``city.identity.<event>``: principal, role and key-set events."""
    return ".".join((IDENTITY, token(event, "event")))


MAX_AGENT_ID = 63


def worker_agent_id(base: str, index: int, count: int) -> str:
    """The agent id of worker ``index`` (from 1) of ``count`` of agent ``base``
    (``smartcity agent --workers``): ``<base>-<index>of<count>``, the base shortened to keep
    the id a valid subject token of at most 63 characters. One rule for the agent that names
    its workers and the NATS authorization that lets them publish their heartbeats."""
    suffix = f"-{index}of{count}"
    return base[: MAX_AGENT_ID - len(suffix)].rstrip("-_") + suffix


def agent_subject(site: str, agent: str) -> str:
    """``city.agents.<site>.<agent>``: an edge agent's status and heartbeats."""
    return ".".join((AGENTS, token(site, "site"), token(agent, "agent")))


def command_subject(site: str, device: str) -> str:
    """``city.commands.<site>.<device>``: audited writes (setpoints) to a field device."""
    return ".".join((COMMANDS, token(site, "site"), token(device, "device")))


def audit_command_subject(site: str, device: str) -> str:
    """``city.audit.commands.<site>.<device>``: the audit records of a device's commands."""
    return f"{AUDIT_COMMANDS}.{token(site, 'site')}.{token(device, 'device')}"


def deadletter_subject(source: str) -> str:
    """``city.deadletter.<source>``: messages from ``source`` (e.g. ``telemetry``) that a
    consumer could not use, with the reason in the ``Smartcity-Deadletter-Reason`` header."""
    return f"{DEADLETTER}.{token(source, 'source')}"


def live_subject(field: str, site: str, device: str) -> str:
    """``city.monitoring.live.<field>.<site>.<device>``: readings one monitoring replica
    stored, for the live streams of the others (core NATS, published only while watched)."""
    return ".".join(
        (MONITORING_LIVE, token(field, "field"), token(site, "site"), token(device, "device"))
    )


def _filter_token(value: str | None, what: str) -> str:
    return WILDCARD if value is None else token(value, what)


def telemetry_filter(
    field: str | None = None, site: str | None = None, device: str | None = None
) -> str:
    """A subscription filter over telemetry; ``None`` matches any value of that token."""
    return ".".join(
        (
            TELEMETRY,
            _filter_token(field, "field"),
            _filter_token(site, "site"),
            _filter_token(device, "device"),
        )
    )


def live_filter(
    field: str | None = None, site: str | None = None, device: str | None = None
) -> str:
    """A subscription filter over :func:`live_subject`; ``None`` matches any value."""
    return ".".join(
        (
            MONITORING_LIVE,
            _filter_token(field, "field"),
            _filter_token(site, "site"),
            _filter_token(device, "device"),
        )
    )


def alert_filter(field: str | None = None, severity: str | None = None) -> str:
    """A subscription filter over alert events; ``None`` matches any value of that token."""
    return ".".join((ALERTS, _filter_token(field, "field"), _filter_token(severity, "severity")))


class TelemetrySubject(NamedTuple):
    field: str
    site: str
    device: str


def parse_telemetry_subject(subject: str) -> TelemetrySubject:
    """Split a received telemetry subject into its field, site and device.

    Consumers use this instead of trusting the payload's own idea of where it came from: the
    subject is what the publisher was authorised to publish on.
    """
    parts = subject.split(".")
    if len(parts) != 5 or ".".join(parts[:2]) != TELEMETRY:
        raise SubjectError(
            f"{subject!r} is not a telemetry subject ({TELEMETRY}.<field>.<site>.<device>)"
        )
    return TelemetrySubject(
        token(parts[2], "field"), token(parts[3], "site"), token(parts[4], "device")
    )
