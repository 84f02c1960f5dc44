"""What a write command gets back: its :class:`WriteCommandReply`, and the same reply again
for a repeated ``command_id``.

A ``command_id`` repeated by the same principal within
:attr:`~smartcity.agents.commands.CommandService.remember_seconds` returns the first outcome
instead of writing twice; refusals are not remembered, since nothing was written and a
corrected retry (a fresh token) must be evaluated again.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from google.protobuf.timestamp_pb2 import Timestamp

from smartcity.agents.command_audit import ReceivedCommand
from smartcity.agents.command_checks import Refusal
from smartcity.agents.reading import Value
from smartcity.common.v1 import common_pb2
from smartcity.runtime.tokens import Claims, PrincipalKind
from smartcity.telemetry.v1.telemetry_pb2 import WriteCommandReply

Outcome = WriteCommandReply.Outcome
ACCEPTED = WriteCommandReply.OUTCOME_ACCEPTED
REFUSED = WriteCommandReply.OUTCOME_REFUSED
FAILED = WriteCommandReply.OUTCOME_FAILED
OUTCOME_NAMES = {ACCEPTED: "ACCEPTED", REFUSED: "REFUSED", FAILED: "FAILED"}

_PRINCIPAL_KINDS = {
    PrincipalKind.CITIZEN: common_pb2.PRINCIPAL_KIND_CITIZEN,
    PrincipalKind.STAFF: common_pb2.PRINCIPAL_KIND_STAFF,
    PrincipalKind.DEVICE: common_pb2.PRINCIPAL_KIND_DEVICE,
    PrincipalKind.SERVICE: common_pb2.PRINCIPAL_KIND_SERVICE,
}


Key = tuple[str, str, str]
"""A command's device, principal and ``command_id``: a repeat has the same."""


@dataclass
class Executed:
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


def command_reply(
    entry: ReceivedCommand,
    outcome: Outcome,
    refusal: Refusal | None = None,
    *,
    written: Value | None = None,
    write_time: float | None = None,
) -> WriteCommandReply:
    """The reply to a command: its outcome, why (a refusal), what the device holds after the
    write and when it was written, and who asked."""
    command, claims = entry.command, entry.claims
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


class ExecutedCommands:
    """The commands that reached their device, oldest first, kept to answer a repeat of their id;
    bounded in age and in number by the caller at each use, so that its limits can change."""

    def __init__(self) -> None:
        self._executed: OrderedDict[Key, Executed] = OrderedDict()

    def recall(self, key: Key, horizon: float) -> Executed | None:
        """The command executed under ``key`` at or after ``horizon``; older ones are
        forgotten."""
        while self._executed:
            oldest = next(iter(self._executed.values()))
            if oldest.at >= horizon:
                break
            self._executed.popitem(last=False)
        return self._executed.get(key)

    def remember(self, key: Key, executed: Executed, limit: int) -> None:
        """Keep ``executed`` under ``key``, and at most ``limit`` commands in all."""
        if limit == 0:
            return
        self._executed[key] = executed
        self._executed.move_to_end(key)
        while len(self._executed) > limit:
            self._executed.popitem(last=False)
