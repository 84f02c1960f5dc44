"""Write commands: a person or program in the city sets a point of a field device.

A write moves real equipment (a tank level set-point, a chlorine dose, a breaker), so an
agent executes one only when every check passes, in the order
:mod:`~smartcity.agents.command_checks` gives, and says which one failed.

Every command, executed or not, is written to the audit log on
``city.audit.commands.<site>.<device>`` (:mod:`~smartcity.agents.command_audit`), published to
JetStream and acknowledged. A write is preceded by an ``ATTEMPTED`` record and followed by its
outcome; if the audit log cannot take the ``ATTEMPTED`` record the device is not touched, so
that there is never a write the audit log does not know about. A refusal whose record cannot
be stored is still answered, and the loss is logged.

Writes to one device happen one at a time, in arrival order; devices do not wait for each
other, and the poll loops are never involved. A repeated ``command_id`` is answered with the
first outcome (:mod:`~smartcity.agents.command_replies`, which also builds the replies).

The checks are plain functions (:func:`authorize_write`, :func:`check_value`) that need no
NATS; :class:`CommandService`, here, only carries bytes between the bus, the checks, the
audit log and the driver. The names a user of the service needs are importable from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import nats.errors
import structlog
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from smartcity.agents.command_audit import (
    AUDIT_SUBJECTS,
    ReceivedCommand,
    audit_record,
    audit_subject,
    json_value,
    store_audit_record,
)
from smartcity.agents.command_checks import (
    Approval,
    DeviceProfile,
    Reason,
    Refusal,
    authorize_write,
    check_value,
    requested_value,
)
from smartcity.agents.command_replies import (
    ACCEPTED,
    FAILED,
    OUTCOME_NAMES,
    REFUSED,
    Executed,
    ExecutedCommands,
    Outcome,
    command_reply,
)
from smartcity.agents.driver import DeviceDriver, WriteRefusedError
from smartcity.agents.reading import Value
from smartcity.runtime import subjects
from smartcity.runtime.auth import Authenticator
from smartcity.runtime.bus import AUDIT_STREAM, Bus, MessageHandler
from smartcity.runtime.tokens import Claims, TokenError, TokenVerifier
from smartcity.runtime.trust import LocalAuthenticator
from smartcity.telemetry.v1.telemetry_pb2 import WriteCommand, WriteCommandReply

__all__ = [
    "AUDIT_STREAM",
    "AUDIT_SUBJECTS",
    "Approval",
    "CommandService",
    "Reason",
    "Refusal",
    "audit_record",
    "audit_subject",
    "authorize_write",
    "check_value",
]

log = structlog.stdlib.get_logger(__name__)

MAX_COMMAND_BYTES = 64 * 1024
"""A command is a token and a few short strings; anything bigger is refused unread."""


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
        self._executed = ExecutedCommands()
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
        earlier = self._executed.recall(key, self._clock() - self.remember_seconds)
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
                    OUTCOME_NAMES[earlier.reply.outcome],
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
        self._executed.remember(key, Executed(fingerprint, reply, self._clock()), self.remember_max)
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
        name = OUTCOME_NAMES[outcome]
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
            value=json_value(requested_value(command)) if command is not None else None,
            written=written,
            command_id=command.command_id if command is not None else None,
            principal=claims.sub if claims else None,
        )
        return command_reply(entry, outcome, refusal, written=written, write_time=write_time)

    async def _audit(self, record: Mapping[str, Any]) -> bool:
        """Store one audit record; False when JetStream did not acknowledge it."""
        return await store_audit_record(
            self._bus, record, stream=self.audit_stream, ack_timeout=self.audit_timeout
        )
