"""The checks of a write command, free of any transport: plain functions that need no NATS.

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

The token itself is verified by :class:`~smartcity.agents.commands.CommandService` (check 1);
:func:`authorize_write` makes the others, and its answer is a :class:`Refusal` with a
:class:`Reason`, or an :class:`Approval` of the point and the value to give the driver.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from smartcity.agents.modbus.codec import EncodeError, encode
from smartcity.agents.profile import DataType, ModbusDevice, ModbusPoint, OpcuaDevice, PointBase
from smartcity.agents.reading import Value
from smartcity.common.v1 import common_pb2
from smartcity.runtime.auth import Requires
from smartcity.runtime.errors import PermissionDenied, Unauthenticated
from smartcity.runtime.tokens import Claims, Role
from smartcity.telemetry.v1.telemetry_pb2 import WriteCommand

WRITE_ROLE = Role.OPERATOR
"""The role (or one above it) a principal needs on the device's field to write."""
MAX_ID_LENGTH = 128
MAX_REASON_LENGTH = 1000

DeviceProfile = ModbusDevice | OpcuaDevice
Requested = Value | str | None
"""A value as the command carries it: a number, a bool, text (refused), or nothing."""


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


def expire_time(command: WriteCommand) -> datetime | Refusal | None:
    if not command.HasField("expire_time"):
        return None
    try:
        return command.expire_time.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        return Refusal(Reason.INVALID_ARGUMENT, "expire_time is not a valid time", "expire_time")


def check_deadline(command: WriteCommand, now: datetime) -> Refusal | None:
    """Whether the command arrived (or waited) past its ``expire_time``."""
    deadline = expire_time(command)
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
