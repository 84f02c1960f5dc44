import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from smartcity.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecordType(_message.Message):
    __slots__ = ("id", "field", "display_name", "description", "json_schema", "schema_version")
    ID_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    JSON_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    field: str
    display_name: str
    description: str
    json_schema: _struct_pb2.Struct
    schema_version: int
    def __init__(self, id: _Optional[str] = ..., field: _Optional[str] = ..., display_name: _Optional[str] = ..., description: _Optional[str] = ..., json_schema: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., schema_version: _Optional[int] = ...) -> None: ...

class Record(_message.Message):
    __slots__ = ("id", "type", "field", "owner", "version", "data", "deleted", "schema_version", "create_time", "update_time", "created_by", "updated_by", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    UPDATED_BY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: str
    field: str
    owner: _common_pb2.PrincipalRef
    version: int
    data: _struct_pb2.Struct
    deleted: bool
    schema_version: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    created_by: _common_pb2.PrincipalRef
    updated_by: _common_pb2.PrincipalRef
    reason: str
    def __init__(self, id: _Optional[str] = ..., type: _Optional[str] = ..., field: _Optional[str] = ..., owner: _Optional[_Union[_common_pb2.PrincipalRef, _Mapping]] = ..., version: _Optional[int] = ..., data: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., deleted: _Optional[bool] = ..., schema_version: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_by: _Optional[_Union[_common_pb2.PrincipalRef, _Mapping]] = ..., updated_by: _Optional[_Union[_common_pb2.PrincipalRef, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class CreateRecordRequest(_message.Message):
    __slots__ = ("type", "owner_id", "data", "reason", "request_id")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    type: str
    owner_id: str
    data: _struct_pb2.Struct
    reason: str
    request_id: str
    def __init__(self, type: _Optional[str] = ..., owner_id: _Optional[str] = ..., data: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class CreateRecordResponse(_message.Message):
    __slots__ = ("record",)
    RECORD_FIELD_NUMBER: _ClassVar[int]
    record: Record
    def __init__(self, record: _Optional[_Union[Record, _Mapping]] = ...) -> None: ...

class GetRecordRequest(_message.Message):
    __slots__ = ("id", "version", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    version: int
    reason: str
    def __init__(self, id: _Optional[str] = ..., version: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class GetRecordResponse(_message.Message):
    __slots__ = ("record",)
    RECORD_FIELD_NUMBER: _ClassVar[int]
    record: Record
    def __init__(self, record: _Optional[_Union[Record, _Mapping]] = ...) -> None: ...

class UpdateRecordRequest(_message.Message):
    __slots__ = ("id", "data", "expected_version", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    data: _struct_pb2.Struct
    expected_version: int
    reason: str
    def __init__(self, id: _Optional[str] = ..., data: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., expected_version: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class UpdateRecordResponse(_message.Message):
    __slots__ = ("record",)
    RECORD_FIELD_NUMBER: _ClassVar[int]
    record: Record
    def __init__(self, record: _Optional[_Union[Record, _Mapping]] = ...) -> None: ...

class DeleteRecordRequest(_message.Message):
    __slots__ = ("id", "expected_version", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    expected_version: int
    reason: str
    def __init__(self, id: _Optional[str] = ..., expected_version: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class DeleteRecordResponse(_message.Message):
    __slots__ = ("record",)
    RECORD_FIELD_NUMBER: _ClassVar[int]
    record: Record
    def __init__(self, record: _Optional[_Union[Record, _Mapping]] = ...) -> None: ...

class ListRecordHistoryRequest(_message.Message):
    __slots__ = ("id", "page", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    page: _common_pb2.PageRequest
    reason: str
    def __init__(self, id: _Optional[str] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class ListRecordHistoryResponse(_message.Message):
    __slots__ = ("records", "page")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[Record]
    page: _common_pb2.PageResponse
    def __init__(self, records: _Optional[_Iterable[_Union[Record, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class SearchRecordsRequest(_message.Message):
    __slots__ = ("page", "type", "owner_id", "field", "query", "update_time_range", "order_by", "include_deleted", "reason")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_RANGE_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_DELETED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    page: _common_pb2.PageRequest
    type: str
    owner_id: str
    field: str
    query: str
    update_time_range: _common_pb2.TimeRange
    order_by: str
    include_deleted: bool
    reason: str
    def __init__(self, page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., type: _Optional[str] = ..., owner_id: _Optional[str] = ..., field: _Optional[str] = ..., query: _Optional[str] = ..., update_time_range: _Optional[_Union[_common_pb2.TimeRange, _Mapping]] = ..., order_by: _Optional[str] = ..., include_deleted: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class SearchRecordsResponse(_message.Message):
    __slots__ = ("records", "page")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[Record]
    page: _common_pb2.PageResponse
    def __init__(self, records: _Optional[_Iterable[_Union[Record, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class ListRecordTypesRequest(_message.Message):
    __slots__ = ("page", "field")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    page: _common_pb2.PageRequest
    field: str
    def __init__(self, page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., field: _Optional[str] = ...) -> None: ...

class ListRecordTypesResponse(_message.Message):
    __slots__ = ("record_types", "page")
    RECORD_TYPES_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    record_types: _containers.RepeatedCompositeFieldContainer[RecordType]
    page: _common_pb2.PageResponse
    def __init__(self, record_types: _Optional[_Iterable[_Union[RecordType, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class RecordEvent(_message.Message):
    __slots__ = ("event_id", "event_time", "type", "record_id", "record_type", "field", "owner", "version", "actor", "reason")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TYPE_UNSPECIFIED: _ClassVar[RecordEvent.Type]
        TYPE_CREATED: _ClassVar[RecordEvent.Type]
        TYPE_UPDATED: _ClassVar[RecordEvent.Type]
        TYPE_DELETED: _ClassVar[RecordEvent.Type]
    TYPE_UNSPECIFIED: RecordEvent.Type
    TYPE_CREATED: RecordEvent.Type
    TYPE_UPDATED: RecordEvent.Type
    TYPE_DELETED: RecordEvent.Type
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    RECORD_TYPE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    event_time: _timestamp_pb2.Timestamp
    type: RecordEvent.Type
    record_id: str
    record_type: str
    field: str
    owner: _common_pb2.PrincipalRef
    version: int
    actor: _common_pb2.PrincipalRef
    reason: str
    def __init__(self, event_id: _Optional[str] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., type: _Optional[_Union[RecordEvent.Type, str]] = ..., record_id: _Optional[str] = ..., record_type: _Optional[str] = ..., field: _Optional[str] = ..., owner: _Optional[_Union[_common_pb2.PrincipalRef, _Mapping]] = ..., version: _Optional[int] = ..., actor: _Optional[_Union[_common_pb2.PrincipalRef, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...
