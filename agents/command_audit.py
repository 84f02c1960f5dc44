"""The audit log of write commands: what is recorded of each command, and where.

Every command, executed or not, is written to ``city.audit.commands.<site>.<device>`` as a
JSON record (:func:`audit_record`), published to JetStream and acknowledged
(:func:`store_audit_record`); :class:`~smartcity.agents.commands.CommandService` decides when.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import nats.errors
import structlog

from smartcity.agents.command_checks import Refusal, Requested, expire_time, requested_value
from smartcity.agents.reading import Value
from smartcity.runtime import subjects
from smartcity.runtime.bus import Bus
from smartcity.runtime.tokens import Claims
from smartcity.telemetry.v1.telemetry_pb2 import WriteCommand

# one logger for everything a write command does, whichever module does it
log = structlog.stdlib.get_logger("smartcity.agents.commands")

AUDIT_COMMANDS = subjects.AUDIT_COMMANDS
"""Prefix of the audit subjects: ``city.audit.commands.<site>.<device>``."""
AUDIT_SUBJECTS = subjects.ALL_AUDIT
AUDIT_SCHEMA = "smartcity.audit.write_command.v1"
"""Names the layout of an audit record (see :func:`audit_record`)."""


def audit_subject(site: str, device: str) -> str:
    """``city.audit.commands.<site>.<device>``: the audit records of a device's commands."""
    return subjects.audit_command_subject(site, device)


def _rfc3339(moment: float) -> str:
    return (
        datetime.fromtimestamp(moment, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def json_value(value: Requested) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN; keep what was asked for, as text
    return value


@dataclass
class ReceivedCommand:
    """What is known about one received command as the checks proceed."""

    audit_id: str
    site: str
    device: str
    field: str
    command: WriteCommand | None = None
    claims: Claims | None = None


def audit_record(
    entry: ReceivedCommand,
    outcome: str,
    *,
    at: float,
    refusal: Refusal | None = None,
    written: Value | None = None,
    write_time: float | None = None,
    agent_id: str = "",
    repeat_of: str | None = None,
) -> dict[str, Any]:
    """One audit record (JSON object). Fields, all always present (``null`` when unknown):

    ``schema`` (:data:`AUDIT_SCHEMA`), ``audit_id`` (one per command; its ``ATTEMPTED`` and
    final records share it), ``time`` (RFC 3339 UTC), ``outcome`` (``ATTEMPTED``,
    ``ACCEPTED``, ``REFUSED``, ``FAILED``), ``agent_id``, ``site``, ``device``, ``field`` (the
    device's, from its profile), ``command_id``, ``point``, ``requested_value``,
    ``expire_time``, ``command_reason`` (the requester's justification), ``principal_sub``,
    ``principal_kind``, ``principal_roles``, ``token_id`` (the token's ``jti``; the principal
    is recorded only from a verified token), ``error_reason`` and ``error_description`` (a
    :class:`Reason` and its explanation), ``written_value`` (read back from the device),
    ``write_time``, ``repeat_of`` (for a repeated ``command_id``: the ``audit_id`` of the first
    execution, whose outcome was returned). The token itself is never recorded.
    """
    command, claims = entry.command, entry.claims
    expire = expire_time(command) if command is not None else None
    return {
        "schema": AUDIT_SCHEMA,
        "audit_id": entry.audit_id,
        "time": _rfc3339(at),
        "outcome": outcome,
        "agent_id": agent_id,
        "site": entry.site,
        "device": entry.device,
        "field": entry.field,
        "command_id": command.command_id if command is not None else None,
        "point": command.point if command is not None else None,
        "requested_value": json_value(requested_value(command)) if command is not None else None,
        "expire_time": expire.isoformat() if isinstance(expire, datetime) else None,
        "command_reason": command.reason if command is not None else None,
        "principal_sub": claims.sub if claims else None,
        "principal_kind": claims.kind.value if claims else None,
        "principal_roles": sorted(str(role) for role in claims.roles) if claims else None,
        "token_id": claims.jti if claims else None,
        "error_reason": refusal.reason.value if refusal else None,
        "error_description": refusal.description if refusal else None,
        "written_value": written,
        "write_time": _rfc3339(write_time) if write_time is not None else None,
        "repeat_of": repeat_of,
    }


async def store_audit_record(
    bus: Bus, record: Mapping[str, Any], *, stream: str, ack_timeout: float
) -> bool:
    """Publish one audit record and wait for JetStream to store it; False if it did not."""
    subject = audit_subject(record["site"], record["device"])
    payload = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()
    try:
        await bus.jetstream_publish(
            subject,
            payload,
            msg_id=f"{record['audit_id']}:{record['outcome']}",
            stream=stream,
            timeout=ack_timeout,
        )
    except (nats.errors.Error, TimeoutError) as exc:
        log.error(
            "write_command_audit_lost",
            audit_id=record["audit_id"],
            outcome=record["outcome"],
            stream=stream,
            error=repr(exc),
        )
        return False
    return True
