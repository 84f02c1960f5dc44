"""Identity events on the bus: :class:`~.model.AuditEvent` as the ``IdentityEvent`` protobuf,
published through JetStream on ``city.identity.<event>`` (captured by the IDENTITY stream),
with the event id as the message id so that a repeat is stored once."""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.timestamp_pb2 import Timestamp

from smartcity.common.v1 import common_pb2
from smartcity.identity.v1 import identity_pb2
from smartcity.runtime.bus import IDENTITY_STREAM, Bus
from smartcity.runtime.subjects import identity_subject
from smartcity.runtime.tokens import PrincipalKind
from smartcity.services.identity.model import AuditEvent, EventType

PUBLISH_TIMEOUT_SECONDS = 5.0

KIND_TO_PB = {
    PrincipalKind.CITIZEN: common_pb2.PRINCIPAL_KIND_CITIZEN,
    PrincipalKind.STAFF: common_pb2.PRINCIPAL_KIND_STAFF,
    PrincipalKind.DEVICE: common_pb2.PRINCIPAL_KIND_DEVICE,
    PrincipalKind.SERVICE: common_pb2.PRINCIPAL_KIND_SERVICE,
}
PB_TO_KIND = {value: kind for kind, value in KIND_TO_PB.items()}

TYPE_TO_PB = {
    kind: identity_pb2.IdentityEvent.Type.Value(f"TYPE_{kind.value.upper()}") for kind in EventType
}
PB_TO_TYPE = {value: kind for kind, value in TYPE_TO_PB.items()}


def timestamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(round(seconds * 1e9))
    return stamp


def principal_ref(
    principal_id: str, kind: PrincipalKind | None, name: str
) -> common_pb2.PrincipalRef | None:
    if not principal_id:
        return None
    return common_pb2.PrincipalRef(
        id=principal_id,
        kind=KIND_TO_PB[kind] if kind else common_pb2.PRINCIPAL_KIND_UNSPECIFIED,
        display_name=name,
    )


def event_pb(event: AuditEvent) -> identity_pb2.IdentityEvent:
    message = identity_pb2.IdentityEvent(
        event_id=event.id,
        event_time=timestamp(event.time),
        type=TYPE_TO_PB[event.type],
        token_id=event.token_id,
        reason=event.reason,
        jwks=event.jwks,
        source=event.source,
    )
    principal = principal_ref(event.principal_id, event.principal_kind, event.principal_name)
    if principal is not None:
        message.principal.CopyFrom(principal)
    actor = principal_ref(event.actor_id, event.actor_kind, event.actor_name)
    if actor is not None:
        message.actor.CopyFrom(actor)
    if event.role is not None:
        message.role_binding.role = event.role.role
        message.role_binding.field = event.role.field
    if event.token_expires is not None:
        message.token_expire_time.CopyFrom(timestamp(event.token_expires))
    return message


class EventPublisher:
    """Publishes identity events in order on the IDENTITY stream."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    async def __call__(self, events: Sequence[AuditEvent]) -> None:
        for event in events:
            await self._bus.jetstream_publish(
                identity_subject(event.type.value),
                event_pb(event).SerializeToString(),
                msg_id=event.id,
                stream=IDENTITY_STREAM,
                timeout=PUBLISH_TIMEOUT_SECONDS,
            )
