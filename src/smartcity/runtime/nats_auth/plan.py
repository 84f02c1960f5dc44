"""The platform's NATS principals and what each may publish and subscribe to.

Least privilege: an edge agent publishes only its own devices' telemetry, its heartbeats
and the audit records of its devices' commands, and reads only its devices' commands; a
service publishes only its own subjects (and the dead letters of what it consumes) and reads
what it consumes; only the admin provisions streams (docs/architecture.md, "Streams"). Every
permission here is built from :mod:`smartcity.runtime.subjects` and the stream names of
:mod:`smartcity.runtime.bus`, so a subject that changes there changes here.

Names that become part of a subject are checked first (:func:`subjects.token`): a site
called ``a.b``, ``*`` or ``>`` would otherwise widen a permission past its site. Agents'
own names follow the agent-id rule of the settings (lower case letters, digits, ``-``,
``_``), since they also name the NATS user and its inbox.

JetStream is used through its API subjects (``$JS.API.<verb>.<stream>...``), so "may
consume TELEMETRY as durable ``monitoring``" is a handful of exact API subjects, never
``$JS.API.>``: that would include creating and deleting streams.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from smartcity.runtime import subjects
from smartcity.runtime.bus import (
    AUDIT_STREAM,
    IDENTITY_STREAM,
    STREAM_SUBJECTS,
    TELEMETRY_STREAM,
)
from smartcity.runtime.errors import InvalidArgument
from smartcity.runtime.nats_auth.credentials import inbox_prefix

__all__ = [
    "ADMIN_USER",
    "DEFAULT_DURABLES",
    "SERVICES",
    "AgentPlan",
    "DeviceRef",
    "NatsAuthError",
    "Permissions",
    "Principal",
    "PrincipalKind",
    "agent_user",
    "platform_principals",
]

ADMIN_USER = "admin"
JS_API = "$JS.API"
SERVICES: tuple[str, ...] = ("identity", "records", "monitoring", "alerts", "console")
"""The platform's services, each its own NATS user named like the service (see
:data:`_SERVICE_RULES`)."""

DEFAULT_DURABLES: Mapping[str, str] = {"monitoring": "monitoring", "alerts": "alerts"}
"""The durable consumer each telemetry-consuming service binds on TELEMETRY."""

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_MAX_TOKEN_BYTES = 255


class NatsAuthError(InvalidArgument):
    """A plan that cannot be turned into safe permissions; the message says why."""


class PrincipalKind(StrEnum):
    ADMIN = "admin"
    SERVICE = "service"
    AGENT = "agent"


@dataclass(frozen=True)
class Permissions:
    """What a principal may do. Anything not allowed is denied by the server."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    allow_responses: bool = True
    """May answer requests it received (command replies, service responses): the server
    then allows one message to each received reply subject, and no other."""


@dataclass(frozen=True)
class Principal:
    user: str
    kind: PrincipalKind
    about: str
    permissions: Permissions | None
    """``None``: everything (the admin only)."""

    @property
    def inbox_prefix(self) -> str:
        return inbox_prefix(self.user)


@dataclass(frozen=True, order=True)
class DeviceRef:
    """One device an agent serves: the three tokens of its telemetry subject."""

    field: str
    site: str
    device: str


@dataclass(frozen=True)
class AgentPlan:
    """An edge agent: its id (``agent.id``) and the devices it reads."""

    id: str
    devices: tuple[DeviceRef, ...] = field(default_factory=tuple)
    workers: int = 1
    """Processes it runs as (``smartcity agent --workers``): each worker publishes its
    heartbeats under its own id, which the agent's user may then do too."""


# -- names -----------------------------------------------------------------------------------


def _token(value: object, what: str) -> str:
    """``value`` if it can safely be one literal subject token of a permission."""
    try:
        text = subjects.token(value, what)  # type: ignore[arg-type]
    except subjects.SubjectError as exc:
        raise NatsAuthError(str(exc)) from None
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise NatsAuthError(f"{what} {text!r} is not valid Unicode text") from None
    if size > _MAX_TOKEN_BYTES:
        raise NatsAuthError(f"{what} {text[:20]!r}... is longer than {_MAX_TOKEN_BYTES} bytes")
    return text


def _name(value: object, what: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise NatsAuthError(
            f"{what} {value!r} must be 1 to 63 lower case letters, digits, - and _ "
            "(it names a NATS user and its inbox)"
        )
    return value


def agent_user(agent_id: str) -> str:
    """The NATS user of agent ``agent_id``; the prefix keeps it apart from the services."""
    return f"agent-{_name(agent_id, 'agent id')}"


# -- building blocks -------------------------------------------------------------------------


def _api(*parts: str) -> str:
    return ".".join((JS_API, *parts))


def _stream_lookup(streams: Iterable[str]) -> list[str]:
    """May ask whether these streams exist and how they are configured (read only)."""
    return [_api("STREAM", "INFO", stream) for stream in streams]


def _durable_consumer(stream: str, durable: str) -> list[str]:
    """May create (or update) and use one durable pull consumer, and acknowledge its
    messages; the create subjects are the ones nats-py and nats-server 2.9+ use."""
    return [
        _api("CONSUMER", "INFO", stream, durable),
        _api("CONSUMER", "CREATE", stream, durable),
        _api("CONSUMER", "CREATE", stream, durable, ">"),
        _api("CONSUMER", "DURABLE", "CREATE", stream, durable),
        _api("CONSUMER", "MSG", "NEXT", stream, durable),
        f"$JS.ACK.{stream}.{durable}.>",
    ]


def _identity_reader() -> list[str]:
    """Every service follows IDENTITY for keys and revocations: the last message of a
    subject, and an ordered (ephemeral, push) consumer with flow control."""
    stream = IDENTITY_STREAM
    return [
        _api("STREAM", "MSG", "GET", stream),
        _api("DIRECT", "GET", stream),
        _api("DIRECT", "GET", stream, ">"),
        _api("CONSUMER", "CREATE", stream),
        f"$JS.FC.{stream}.>",
    ]


def _inbox(user: str) -> str:
    return f"{inbox_prefix(user)}.>"


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


# -- principals ------------------------------------------------------------------------------


def _admin() -> Principal:
    return Principal(
        ADMIN_USER,
        PrincipalKind.ADMIN,
        "platform operator: provisions streams (smartcity streams ...); may do everything",
        None,
    )


@dataclass(frozen=True)
class _ServiceRule:
    about: str
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()


_MONITORING_OWN = (f"{subjects.MONITORING_LIVE}.>", subjects.MONITORING_WATCH)

#: What each service publishes and reads beyond what every service does (see :func:`_service`).
_SERVICE_RULES: Mapping[str, _ServiceRule] = {
    "identity": _ServiceRule(
        "identity service: publishes principal, key and revocation events",
        publish=(subjects.ALL_IDENTITY,),
    ),
    "records": _ServiceRule(
        "records service: publishes record events", publish=(subjects.ALL_RECORDS,)
    ),
    "monitoring": _ServiceRule(
        "monitoring service: consumes telemetry, fans live readings out to its replicas",
        publish=_MONITORING_OWN,
        subscribe=_MONITORING_OWN,
    ),
    "alerts": _ServiceRule(
        "alerts service: consumes telemetry and agent heartbeats, publishes alert events",
        publish=(subjects.ALL_ALERTS,),
        # Other replicas' alert events wake its live watches; heartbeats feed no_data rules.
        subscribe=(subjects.ALL_ALERTS, f"{subjects.AGENTS}.>"),
    ),
    "console": _ServiceRule(
        "operations console: follows alert events and agent heartbeats",
        subscribe=(subjects.ALL_ALERTS, f"{subjects.AGENTS}.>"),
    ),
}


def _service(name: str, durables: Mapping[str, str]) -> Principal:
    """Every service may look up the platform's streams (``run_service`` ensures them at
    start, which needs no more once they exist) and follow IDENTITY; then its own rule, and
    its durable consumer on TELEMETRY with the dead letters of what it consumes."""
    rule = _SERVICE_RULES[name]
    publish = [*_stream_lookup(STREAM_SUBJECTS), *_identity_reader(), *rule.publish]
    subscribe = [subjects.ALL_IDENTITY, *rule.subscribe]
    if name in durables:
        durable = _token(durables[name], f"{name} durable consumer")
        publish += _durable_consumer(TELEMETRY_STREAM, durable)
        publish.append(subjects.deadletter_subject(TELEMETRY_STREAM.lower()))
    subscribe.append(_inbox(name))
    return Principal(
        name, PrincipalKind.SERVICE, rule.about, Permissions(_unique(publish), _unique(subscribe))
    )


def _agent(plan: AgentPlan) -> Principal:
    user = agent_user(plan.id)
    if not plan.devices:
        raise NatsAuthError(f"agent {plan.id!r} serves no device")
    if plan.workers < 1:
        raise NatsAuthError(f"agent {plan.id!r}: workers must be 1 or more")
    devices = sorted(
        {
            DeviceRef(
                _token(ref.field, "field"), _token(ref.site, "site"), _token(ref.device, "device")
            )
            for ref in plan.devices
        }
    )
    sites = sorted({ref.site for ref in devices})
    publish = [subjects.telemetry_subject(d.field, d.site, d.device) for d in devices]
    ids = [plan.id]
    if plan.workers > 1:
        count = plan.workers
        ids += [subjects.worker_agent_id(plan.id, k, count) for k in range(1, count + 1)]
    publish += [subjects.agent_subject(site, agent) for site in sites for agent in ids]
    publish += [subjects.audit_command_subject(d.site, d.device) for d in devices]
    # Whether the streams it publishes into exist (it never creates them).
    publish += _stream_lookup((TELEMETRY_STREAM, AUDIT_STREAM))
    subscribe = [subjects.command_subject(d.site, d.device) for d in devices]
    subscribe.append(_inbox(user))
    served = ", ".join(f"{d.site}/{d.device}" for d in devices[:4])
    if len(devices) > 4:
        served += f" and {len(devices) - 4} more"
    return Principal(
        user,
        PrincipalKind.AGENT,
        f"edge agent {plan.id}: publishes telemetry of {served}",
        Permissions(_unique(publish), _unique(subscribe)),
    )


def platform_principals(
    agents: Sequence[AgentPlan],
    *,
    services: Iterable[str] = SERVICES,
    durables: Mapping[str, str] = DEFAULT_DURABLES,
) -> list[Principal]:
    """The admin, ``services`` and ``agents`` with their permissions, in that order.

    Raises :class:`NatsAuthError` naming the first name that cannot be used safely, an
    unknown service, or an agent id given twice.
    """
    chosen = list(dict.fromkeys(services))
    unknown = [name for name in chosen if name not in SERVICES]
    if unknown:
        raise NatsAuthError(
            f"unknown service(s) {', '.join(map(repr, unknown))}; known: {', '.join(SERVICES)}"
        )
    principals = [_admin()] + [_service(name, durables) for name in chosen]
    seen: set[str] = set()
    for plan in agents:
        principal = _agent(plan)
        if principal.user in seen:
            raise NatsAuthError(f"agent {plan.id!r} is planned twice")
        seen.add(principal.user)
        principals.append(principal)
    return principals
