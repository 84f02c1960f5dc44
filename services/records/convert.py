"""Records to and from protobuf, shared by the gRPC API and the event publisher."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

from smartcity.common.v1 import common_pb2
from smartcity.records.v1 import records_pb2
from smartcity.services.records.model import Actor, EventType, OutboxEvent, RecordVersion
from smartcity.services.records.schemas import TypeInfo

_KINDS = {
    "citizen": common_pb2.PRINCIPAL_KIND_CITIZEN,
    "staff": common_pb2.PRINCIPAL_KIND_STAFF,
    "device": common_pb2.PRINCIPAL_KIND_DEVICE,
    "service": common_pb2.PRINCIPAL_KIND_SERVICE,
}
EVENT_TYPES = {
    EventType.CREATED: records_pb2.RecordEvent.TYPE_CREATED,
    EventType.UPDATED: records_pb2.RecordEvent.TYPE_UPDATED,
    EventType.DELETED: records_pb2.RecordEvent.TYPE_DELETED,
}


def timestamp(micros: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromMicroseconds(micros)
    return stamp


def principal(actor: Actor) -> common_pb2.PrincipalRef:
    return common_pb2.PrincipalRef(
        id=actor.id, kind=_KINDS.get(actor.kind, common_pb2.PRINCIPAL_KIND_UNSPECIFIED)
    )


def struct(data: Mapping[str, Any] | None) -> Struct | None:
    if data is None:
        return None
    message = Struct()
    message.update(data)
    return message


def plain(message: Struct) -> dict[str, Any]:
    """A Struct as plain JSON values (numbers as floats; the service makes whole ones ints)."""
    return MessageToDict(message)


def record(version: RecordVersion) -> records_pb2.Record:
    return records_pb2.Record(
        id=version.id,
        type=version.type,
        field=version.field,
        owner=principal(version.owner),
        version=version.version,
        data=struct(version.data),
        deleted=version.deleted,
        schema_version=version.schema_version,
        create_time=timestamp(version.create_time),
        update_time=timestamp(version.update_time),
        created_by=principal(version.created_by),
        updated_by=principal(version.updated_by),
        reason=version.reason,
    )


def record_type(info: TypeInfo) -> records_pb2.RecordType:
    return records_pb2.RecordType(
        id=info.name,
        field=info.field,
        display_name=info.spec.title,
        description=info.spec.description,
        json_schema=struct(dict(info.spec.schema)),
        schema_version=info.spec.version,
    )


def event(item: OutboxEvent) -> records_pb2.RecordEvent:
    return records_pb2.RecordEvent(
        event_id=item.event_id,
        event_time=timestamp(item.time),
        type=EVENT_TYPES[item.event],
        record_id=item.record_id,
        record_type=item.type,
        field=item.field,
        owner=principal(item.owner),
        version=item.version,
        actor=principal(item.actor),
        reason=item.reason,
    )
