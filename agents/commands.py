"""Write commands: a person or program in the city sets a point of a field device.

A write moves real equipment (a tank level set-point, a chlorine dose, a breaker), so an
agent executes one only when every check passes, in this order, and says which one failed:

1. the token verifies (the agent's :class:`~smartcity.runtime.auth.Authenticator`: key files,
   or identity's key set and revocations, as ``auth.mode`` says);
2. its principal holds ``operator`` (or ``engineer``) for the device's field — the runtime's
   :class:`~smartcity.runtime.auth.Requires`, the same rule a gRPC service declares; checked
   before anything about the request is looked at, so that a caller without the role learns
   nothing about the device's points;
3. the command names this site, device and field, a ``command_id`` and a ``reason``;
4. the point exists in the device's profile and is marked ``writable``;
5. the value fits the point (true/false for a coil or binary point, a finite number
   otherwise, representable in the register's type) and lies within ``min``/``max``;
6. the command's ``expire_time`` has not passed, checked again just before the write, since a
   command may wait behind another write to the same device.

Every command, executed or not, is written to the audit log on
``city.audit.commands.<site>.<device>`` as a JSON record (:func:`audit_record`), published to
JetStream and acknowledged. A write is preceded by an ``ATTEMPTED`` record and followed by its
outcome; if the audit log cannot take the ``ATTEMPTED`` record the device is not touched, so
that there is never a write the audit log does not know about. A refusal whose record cannot
be stored is still answered, and the loss is logged.

Writes to one device happen one at a time, in arrival order; devices do not wait for each
other, and the poll loops are never involved. A ``command_id`` repeated by the same principal
within :attr:`CommandService.remember_seconds` returns the first outcome instead of writing
twice; refusals are not remembered, since nothing was written and a corrected retry (a fresh
token) must be evaluated again.

The checks are plain functions (:func:`authorize_write`, :func:`check_value`) that need no
NATS; :class:`CommandService` only carries bytes between the bus, the checks, the audit log
and the driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import nats.errors
import structlog
from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from smartcity.agents.driver import DeviceDriver, WriteRefusedError
from smartcity.agents.modbus.codec import EncodeError, encode
from smartcity.agents.profile import DataType, ModbusDevice, ModbusPoint, OpcuaDevice, PointBase
from smartcity.agents.reading import Value
from smartcity.common.v1 import common_pb2
from smartcity.runtime import subjects
from smartcity.runtime.auth import Authenticator, Requires
from smartcity.runtime.bus import AUDIT_STREAM, Bus, MessageHandler
from smartcity.runtime.errors import PermissionDenied, Unauthenticated
from smartcity.runtime.tokens import Claims, PrincipalKind, Role, TokenError, TokenVerifier
from smartcity.runtime.trust import LocalAuthenticator
from smartcity.telemetry.v1.telemetry_pb2 import WriteCommand, WriteCommandReply

log = structlog.stdlib.get_logger(__name__)

AUDIT_COMMANDS = subjects.AUDIT_COMMANDS
"""Prefix of the audit subjects: ``city.audit.commands.<site>.<device>``."""
AUDIT_SUBJECTS = subjects.ALL_AUDIT
AUDIT_SCHEMA = "smartcity.audit.write_command.v1"
"""Names the layout of an audit record (see :func:`audit_record`)."""

WRITE_ROLE = Role.OPERATOR
"""The role (or one above it) a principal needs on the device's field to write."""
MAX_COMMAND_BYTES = 64 * 1024
"""A command is a token and a few short strings; anything bigger is refused unread."""
MAX_ID_LENGTH = 128
MAX_REASON_LENGTH = 1000

DeviceProfile = ModbusDevice | OpcuaDevice
Requested = Value | str | None
"""A value as the command carries it: a number, a bool, text (refused), or nothing."""

Outcome = WriteCommandReply.Outcome
ACCEPTED = WriteCommandReply.OUTCOME_ACCEPTED
REFUSED = WriteCommandReply.OUTCOME_REFUSED
FAILED = WriteCommandReply.OUTCOME_FAILED
_OUTCOME_NAMES = {ACCEPTED: "ACCEPTED", REFUSED: "REFUSED", FAILED: "FAILED"}

_PRINCIPAL_KINDS = {
    PrincipalKind.CITIZEN: common_pb2.PRINCIPAL_KIND_CITIZEN,
    PrincipalKind.STAFF: common_pb2.PRINCIPAL_KIND_STAFF,
    PrincipalKind.DEVICE: common_pb2.PRINCIPAL_KIND_DEVICE,
    PrincipalKind.SERVICE: common_pb2.PRINCIPAL_KIND_SERVICE,
}


def audit_subject(site: str, device: str) -> str:
    """``city.audit.commands.<site>.<device>``: the audit records of a device's commands."""
    return subjects.audit_command_subject(site, device)


class Reason(StrEnum):
    """``ErrorDetail.reason`` of a command that was not executed (or failed)."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    """Not a WriteCommand, or a required part (command_id, reason, point) is missing."""
    UNAUTHENTICATED = "UNAUTHENTICATED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    TARGET_MISMATCH = "TARGET_MISMATCH"
    """The command names another site, device or field than the device it was sent to."""
    UNKNOWN_POINT = "UNKNOWN_POINT"
    NOT_WRITABLE = "NOT_WRITABLE"
    INVALID_VALUE = "INVALID_VALUE"
    OUT_OF_RANGE = "OUT_OF_RANGE"
    EXPIRED = "EXPIRED"
    COMMAND_ID_REUSED = "COMMAND_ID_REUSED"
    """The principal used the command id before for a different write."""
    AUDIT_UNAVAILABLE = "AUDIT_UNAVAILABLE"
    """The audit log did not acknowledge the record of the attempt; nothing was written."""
    DEVICE_ERROR = "DEVICE_ERROR"
    """The device refused the write or did not answer (outcome FAILED)."""
    INTERNAL = "INTERNAL"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a command is not executed (or, with ``DEVICE_ERROR``, why it failed)."""

    reason: Reason
    description: str
    field_path: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)

    def to_proto(self) -> common_pb2.ErrorDetail:
        return common_pb2.ErrorDetail(
            reason=self.reason.value,
            field_path=self.field_path,
            description=self.description,
            metadata=dict(self.metadata),
        )


@dataclass(frozen=True, slots=True)
class Approval:
    """A command that may be executed: the profile's point and the value to give the driver."""

    point: PointBase
    value: Value


Decision = Approval | Refusal


# -- the checks, free of any transport -------------------------------------------------------


def requested_value(command: WriteCommand) -> Requested:
    """The value the command asks for: its typed value when it has one, else ``value``."""
    kind = command.WhichOneof("typed_value")
    if kind is None:
        return command.value
    typed: Requested = getattr(command, kind)
    return typed


def _is_binary(point: PointBase) -> bool:
    return isinstance(point, ModbusPoint) and point.type is DataType.BOOL


def _number(value: float | int) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def check_value(point: PointBase, value: Requested) -> Value | Refusal:
    """``value`` converted for ``point``'s driver, or why it cannot be written to it.

    A Modbus point's type is known from the profile and checked here completely (including
    whether a register of that type can hold the value after scale and offset). An OPC-UA
    node's data type is only known to the server; the driver checks it against the node at
    write time.
    """
    if value is None or isinstance(value, str):
        return Refusal(
            Reason.INVALID_VALUE, f"{point.name}: only numbers and true/false are written", "value"
        )
    if _is_binary(point):
        if isinstance(value, bool):
            return value
        if value in (0, 1):
            return bool(value)
        return Refusal(
            Reason.INVALID_VALUE,
            f"{point.name} is binary: it takes true or false (or 0/1), not {_number(value)}",
            "value",
        )
    if isinstance(value, bool):
        # A Modbus register's type is in the profile; an OPC-UA point with limits is numeric.
        if isinstance(point, ModbusPoint) or point.min is not None or point.max is not None:
            kind = point.type if isinstance(point, ModbusPoint) else "numeric"
            return Refusal(
                Reason.INVALID_VALUE,
                f"{point.name} is {kind}: it takes a number, not true/false",
                "value",
            )
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return Refusal(
            Reason.INVALID_VALUE, f"{point.name}: {value} is not a finite number", "value"
        )
    low, high = point.min, point.max
    if (low is not None and value < low) or (high is not None and value > high):
        lowest = _number(low) if low is not None else "-inf"
        highest = _number(high) if high is not None else "inf"
        limits = f"{lowest}..{highest}"
        return Refusal(
            Reason.OUT_OF_RANGE,
            f"{point.name}: {_number(value)} is outside the writable range {limits}",
            "value",
            {
                key: _number(bound)
                for key, bound in (("min", low), ("max", high))
                if bound is not None
            },
        )
    if isinstance(point, ModbusPoint):
        return _fits_register(point, value)
    return value


def _fits_register(point: ModbusPoint, value: float | int) -> Value | Refusal:
    """Refuse what the register cannot hold exactly, rather than let the codec round it."""
    if point.type not in (DataType.FLOAT32, DataType.FLOAT64):
        raw = (
            value
            if point.scale == 1 and point.offset == 0
            else (value - point.offset) / point.scale
        )
        if abs(raw - round(raw)) > 1e-6 * max(1.0, abs(raw)):
            step = f" in steps of {_number(point.scale)}" if point.scale != 1 else ""
            return Refusal(
                Reason.INVALID_VALUE,
                f"{point.name} is {point.type}: {_number(value)} cannot be written exactly"
                f" (whole raw values only{step})",
                "value",
            )
    try:
        encode(value, point)
    except EncodeError as exc:
        return Refusal(Reason.INVALID_VALUE, str(exc), "value")
    return value


def _expire_time(command: WriteCommand) -> datetime | Refusal | None:
    if not command.HasField("expire_time"):
        return None
    try:
        return command.expire_time.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        return Refusal(Reason.INVALID_ARGUMENT, "expire_time is not a valid time", "expire_time")


def check_deadline(command: WriteCommand, now: datetime) -> Refusal | None:
    """Whether the command arrived (or waited) past its ``expire_time``."""
    deadline = _expire_time(command)
    if isinstance(deadline, Refusal) or deadline is None:
        return deadline
    if now >= deadline:
        late = (now - deadline).total_seconds()
        return Refusal(
            Reason.EXPIRED,
            f"the command expired at {deadline.isoformat()} ({late:.3f} s before it could be "
            "executed)",
            "expire_time",
        )
    return None


def _required(command: WriteCommand) -> Refusal | None:
    for name, limit in (("command_id", MAX_ID_LENGTH), ("point", MAX_ID_LENGTH)):
        text = getattr(command, name)
        if not text.strip():
            return Refusal(Reason.INVALID_ARGUMENT, f"{name} is required", name)
        if len(text) > limit:
            return Refusal(Reason.INVALID_ARGUMENT, f"{name} is longer than {limit}", name)
    if not command.reason.strip():
        return Refusal(
            Reason.INVALID_ARGUMENT, "reason is required: it is recorded in the audit log", "reason"
        )
    if len(command.reason) > MAX_REASON_LENGTH:
        return Refusal(
            Reason.INVALID_ARGUMENT, f"reason is longer than {MAX_REASON_LENGTH}", "reason"
        )
    return None


def authorize_write(
    claims: Claims, profile: DeviceProfile, command: WriteCommand, *, site: str, now: datetime
) -> Decision:
    """Every check of a command whose token has been verified, in the module's order."""
    try:
        Requires(WRITE_ROLE, field=profile.field).check(claims, command)
    except (PermissionDenied, Unauthenticated) as exc:
        return Refusal(
            Reason.PERMISSION_DENIED,
            exc.message,
            metadata={"required_role": f"{WRITE_ROLE}:{profile.field}"},
        )
    for name, wanted in (("site", site), ("device", profile.device), ("field", profile.field)):
        given = getattr(command, name)
        if given != wanted:
            return Refusal(
                Reason.TARGET_MISMATCH,
                f"the command names {name} {given!r} but was sent to {wanted!r}",
                name,
            )
    missing = _required(command)
    if missing is not None:
        return missing
    point = next((p for p in profile.points if p.name == command.point), None)
    if point is None:
        return Refusal(
            Reason.UNKNOWN_POINT, f"device {profile.device} has no point {command.point!r}", "point"
        )
    if not point.writable:
        return Refusal(
            Reason.NOT_WRITABLE, f"{point.name} is not marked writable in the profile", "point"
        )
    if isinstance(point, ModbusPoint) and point.type is DataType.BOOL and point.bit is not None:
        return Refusal(
            Reason.NOT_WRITABLE,
            f"{point.name} is bit {point.bit} of a register: writing it would overwrite the "
            "other bits",
            "point",
        )
    value = check_value(point, requested_value(command))
    if isinstance(value, Refusal):
        return value
    late = check_deadline(command, now)
    if late is not None:
        return late
    return Approval(point, value)


# -- the audit log ---------------------------------------------------------------------------


def _rfc3339(moment: float) -> str:
    return (
        datetime.fromtimestamp(moment, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _json_value(value: Requested) -> Any:
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
    expire = _expire_time(command) if command is not None else None
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
        "requested_value": _json_value(requested_value(command)) if command is not None else None,
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


# -- the service -----------------------------------------------------------------------------


@dataclass
class _Executed:
    """A command that reached the device, kept to answer a repeat of its id."""

    fingerprint: tuple[str, ...]
    reply: WriteCommandReply
    at: float


def _timestamp(moment: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(round(moment * 1e9))
    return stamp


def _principal(claims: Claims | None) -> common_pb2.PrincipalRef | None:
    if claims is None:
        return None
    return common_pb2.PrincipalRef(id=claims.sub, kind=_PRINCIPAL_KINDS[claims.kind])


class CommandService:
    """Executes the write commands of one agent's devices, received as NATS requests.

    ``devices`` maps each device id of ``site`` to its profile and the driver that already
    polls it. Replicas of one agent share the queue group ``smartcity-agent.<agent_id>``, so
    that a command is executed by one of them only.
    """

    def __init__(
        self,
        bus: Bus,
        *,
        site: str,
        agent_id: str,
        devices: Mapping[str, tuple[DeviceProfile, DeviceDriver]],
        authenticator: Authenticator | TokenVerifier,
        audit_stream: str = AUDIT_STREAM,
        audit_timeout: float = 2.0,
        write_timeout: float = 10.0,
        remember_seconds: float = 600.0,
        remember_max: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        subjects.token(site, "site")
        subjects.token(agent_id, "agent id")
        for device, (profile, _driver) in devices.items():
            if device != profile.device or profile.site != site:
                raise ValueError(
                    f"device {device!r}: its profile is {profile.site}/{profile.device}, "
                    f"not {site}/{device}"
                )
        if audit_timeout <= 0 or write_timeout <= 0 or remember_seconds < 0 or remember_max < 0:
            raise ValueError("timeouts must be positive and remember_* not negative")
        self._bus = bus
        self.site = site
        self.agent_id = agent_id
        self._devices = dict(devices)
        if isinstance(authenticator, TokenVerifier):
            authenticator = LocalAuthenticator(authenticator)
        self._authenticator = authenticator
        self.audit_stream = audit_stream
        self.audit_timeout = audit_timeout
        self.write_timeout = write_timeout
        self.remember_seconds = remember_seconds
        self.remember_max = remember_max
        self._clock = clock
        self._locks = {device: asyncio.Lock() for device in self._devices}
        self._executed: OrderedDict[tuple[str, str, str], _Executed] = OrderedDict()
        self._subscriptions: list[Subscription] = []

    @property
    def queue(self) -> str:
        return f"smartcity-agent.{self.agent_id}"

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to ``city.commands.<site>.<device>`` for every device."""
        if self._subscriptions:
            raise RuntimeError("the command service is already started")
        for device in self._devices:
            subject = subjects.command_subject(self.site, device)
            self._subscriptions.append(
                await self._bus.subscribe(subject, self._handler(device), queue=self.queue)
            )
        log.info(
            "write_commands_ready",
            site=self.site,
            devices=sorted(self._devices),
            queue=self.queue,
            audit=AUDIT_SUBJECTS,
        )

    async def stop(self) -> None:
        """Stop taking commands; a command already received is finished and answered."""
        subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            try:
                async with asyncio.timeout(self.write_timeout + 2 * self.audit_timeout):
                    await subscription.drain()
            except (TimeoutError, nats.errors.Error):
                with contextlib.suppress(nats.errors.Error):
                    await subscription.unsubscribe()

    def _handler(self, device: str) -> MessageHandler:
        async def on_command(msg: Msg) -> None:
            reply = await self.handle(device, msg.data, has_reply=bool(msg.reply))
            if msg.reply:
                try:
                    await self._bus.reply(msg, reply.SerializeToString())
                except nats.errors.Error as exc:
                    log.warning(
                        "write_command_reply_lost", audit_id=reply.audit_id, error=repr(exc)
                    )

        return on_command

    # -- one command -------------------------------------------------------------------------

    async def handle(
        self, device: str, data: bytes, *, has_reply: bool = True
    ) -> WriteCommandReply:
        """Check, execute and audit one command received for ``device`` (one of the service's
        devices); the reply says what happened, whatever happened."""
        profile, _driver = self._devices[device]
        entry = ReceivedCommand(
            audit_id=str(uuid.uuid4()),
            site=self.site,
            device=device,
            field=profile.field,
        )
        try:
            return await self._handle(entry, data, has_reply)
        except Exception:
            log.exception("write_command_internal_error", audit_id=entry.audit_id)
            refusal = Refusal(Reason.INTERNAL, f"internal error (audit id {entry.audit_id})")
            return await self._finish(entry, FAILED, refusal)

    async def _handle(
        self, entry: ReceivedCommand, data: bytes, has_reply: bool
    ) -> WriteCommandReply:
        if len(data) > MAX_COMMAND_BYTES:
            refusal = Refusal(
                Reason.INVALID_ARGUMENT, f"the command is larger than {MAX_COMMAND_BYTES} bytes"
            )
            return await self._finish(entry, REFUSED, refusal)
        try:
            entry.command = WriteCommand.FromString(data)
        except DecodeError as exc:
            refusal = Refusal(
                Reason.INVALID_ARGUMENT, f"the payload is not a WriteCommand protobuf ({exc})"
            )
            return await self._finish(entry, REFUSED, refusal)
        if not has_reply:
            refusal = Refusal(
                Reason.INVALID_ARGUMENT, "a write command is a request: it needs a reply subject"
            )
            return await self._finish(entry, REFUSED, refusal)
        try:
            entry.claims = await self._authenticator.authenticate(entry.command.token)
        except TokenError as exc:
            return await self._finish(
                entry, REFUSED, Refusal(Reason.UNAUTHENTICATED, str(exc), "token")
            )
        async with self._locks[entry.device]:
            return await self._execute(entry, entry.command, entry.claims)

    async def _execute(
        self, entry: ReceivedCommand, command: WriteCommand, claims: Claims
    ) -> WriteCommandReply:
        profile, driver = self._devices[entry.device]
        key = (entry.device, claims.sub, command.command_id)
        fingerprint = (command.site, command.field, command.point, repr(requested_value(command)))
        earlier = self._remembered(key)
        if earlier is not None:
            if earlier.fingerprint != fingerprint:
                refusal = Refusal(
                    Reason.COMMAND_ID_REUSED,
                    f"command id {command.command_id!r} was used before for another write",
                    "command_id",
                )
                return await self._finish(entry, REFUSED, refusal)
            await self._audit(
                audit_record(
                    entry,
                    _OUTCOME_NAMES[earlier.reply.outcome],
                    at=self._clock(),
                    agent_id=self.agent_id,
                    repeat_of=earlier.reply.audit_id,
                )
            )
            log.info(
                "write_command_repeated", command_id=command.command_id, audit_id=entry.audit_id
            )
            return earlier.reply

        now = datetime.fromtimestamp(self._clock(), UTC)
        decision = authorize_write(claims, profile, command, site=self.site, now=now)
        if isinstance(decision, Refusal):
            return await self._finish(entry, REFUSED, decision)

        attempted = audit_record(entry, "ATTEMPTED", at=self._clock(), agent_id=self.agent_id)
        if not await self._audit(attempted):
            refusal = Refusal(
                Reason.AUDIT_UNAVAILABLE,
                "the audit log did not acknowledge the command; nothing was written",
            )
            return await self._finish(entry, REFUSED, refusal)
        try:
            async with asyncio.timeout(self.write_timeout):
                written = await driver.write(decision.point, decision.value)
        except WriteRefusedError as exc:
            reply = await self._finish(entry, FAILED, Refusal(Reason.DEVICE_ERROR, str(exc)))
        except TimeoutError:
            refusal = Refusal(
                Reason.DEVICE_ERROR,
                f"{decision.point.name}: no answer from the device within "
                f"{self.write_timeout:g} s; its state is unknown until the next reading",
            )
            reply = await self._finish(entry, FAILED, refusal)
        else:
            reply = await self._finish(entry, ACCEPTED, written=written, write_time=self._clock())
        self._remember(key, _Executed(fingerprint, reply, self._clock()))
        return reply

    async def _finish(
        self,
        entry: ReceivedCommand,
        outcome: Outcome,
        refusal: Refusal | None = None,
        *,
        written: Value | None = None,
        write_time: float | None = None,
    ) -> WriteCommandReply:
        """Audit the outcome, log it and build the reply."""
        name = _OUTCOME_NAMES[outcome]
        await self._audit(
            audit_record(
                entry,
                name,
                at=self._clock(),
                refusal=refusal,
                written=written,
                write_time=write_time,
                agent_id=self.agent_id,
            )
        )
        command, claims = entry.command, entry.claims
        log.info(
            "write_command",
            outcome=name,
            reason=refusal.reason.value if refusal else None,
            description=refusal.description if refusal else None,
            audit_id=entry.audit_id,
            device=entry.device,
            point=command.point if command is not None else None,
            value=_json_value(requested_value(command)) if command is not None else None,
            written=written,
            command_id=command.command_id if command is not None else None,
            principal=claims.sub if claims else None,
        )
        reply = WriteCommandReply(
            command_id=command.command_id if command is not None else "",
            outcome=outcome,
            audit_id=entry.audit_id,
        )
        if refusal is not None:
            reply.error.CopyFrom(refusal.to_proto())
        if written is not None:
            reply.written_value = float(written)
        if write_time is not None:
            reply.write_time.CopyFrom(_timestamp(write_time))
        principal = _principal(claims)
        if principal is not None:
            reply.principal.CopyFrom(principal)
        return reply

    async def _audit(self, record: Mapping[str, Any]) -> bool:
        """Publish one audit record and wait for JetStream to store it; False if it did not."""
        subject = audit_subject(record["site"], record["device"])
        payload = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()
        try:
            await self._bus.jetstream_publish(
                subject,
                payload,
                msg_id=f"{record['audit_id']}:{record['outcome']}",
                stream=self.audit_stream,
                timeout=self.audit_timeout,
            )
        except (nats.errors.Error, TimeoutError) as exc:
            log.error(
                "write_command_audit_lost",
                audit_id=record["audit_id"],
                outcome=record["outcome"],
                stream=self.audit_stream,
                error=repr(exc),
            )
            return False
        return True

    def _remembered(self, key: tuple[str, str, str]) -> _Executed | None:
        horizon = self._clock() - self.remember_seconds
        while self._executed:
            oldest = next(iter(self._executed.values()))
            if oldest.at >= horizon:
                break
            self._executed.popitem(last=False)
        return self._executed.get(key)

    def _remember(self, key: tuple[str, str, str], executed: _Executed) -> None:
        if self.remember_max == 0:
            return
        self._executed[key] = executed
        self._executed.move_to_end(key)
        while len(self._executed) > self.remember_max:
            self._executed.popitem(last=False)
