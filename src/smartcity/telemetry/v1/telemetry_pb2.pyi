import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from smartcity.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Reading(_message.Message):
    __slots__ = ("metric", "value", "unit", "quality", "quality_reason", "source_time", "read_time", "sequence", "bool_value", "int_value", "string_value", "server_time")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    QUALITY_REASON_FIELD_NUMBER: _ClassVar[int]
    SOURCE_TIME_FIELD_NUMBER: _ClassVar[int]
    READ_TIME_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    metric: str
    value: float
    unit: str
    quality: _common_pb2.Quality
    quality_reason: str
    source_time: _timestamp_pb2.Timestamp
    read_time: _timestamp_pb2.Timestamp
    sequence: int
    bool_value: bool
    int_value: int
    string_value: str
    server_time: _timestamp_pb2.Timestamp
    def __init__(self, metric: _Optional[str] = ..., value: _Optional[float] = ..., unit: _Optional[str] = ..., quality: _Optional[_Union[_common_pb2.Quality, str]] = ..., quality_reason: _Optional[str] = ..., source_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., read_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sequence: _Optional[int] = ..., bool_value: _Optional[bool] = ..., int_value: _Optional[int] = ..., string_value: _Optional[str] = ..., server_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TelemetryBatch(_message.Message):
    __slots__ = ("field", "site", "device", "agent_id", "batch_id", "first_sequence", "last_sequence", "readings", "sent_time")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    READINGS_FIELD_NUMBER: _ClassVar[int]
    SENT_TIME_FIELD_NUMBER: _ClassVar[int]
    field: str
    site: str
    device: str
    agent_id: str
    batch_id: str
    first_sequence: int
    last_sequence: int
    readings: _containers.RepeatedCompositeFieldContainer[Reading]
    sent_time: _timestamp_pb2.Timestamp
    def __init__(self, field: _Optional[str] = ..., site: _Optional[str] = ..., device: _Optional[str] = ..., agent_id: _Optional[str] = ..., batch_id: _Optional[str] = ..., first_sequence: _Optional[int] = ..., last_sequence: _Optional[int] = ..., readings: _Optional[_Iterable[_Union[Reading, _Mapping]]] = ..., sent_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AgentHeartbeat(_message.Message):
    __slots__ = ("site", "agent_id", "version", "start_time", "sent_time", "interval", "buffer_bytes", "devices")
    SITE_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    SENT_TIME_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    BUFFER_BYTES_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    site: str
    agent_id: str
    version: str
    start_time: _timestamp_pb2.Timestamp
    sent_time: _timestamp_pb2.Timestamp
    interval: _duration_pb2.Duration
    buffer_bytes: int
    devices: _containers.RepeatedCompositeFieldContainer[DeviceStats]
    def __init__(self, site: _Optional[str] = ..., agent_id: _Optional[str] = ..., version: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sent_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., buffer_bytes: _Optional[int] = ..., devices: _Optional[_Iterable[_Union[DeviceStats, _Mapping]]] = ...) -> None: ...

class DeviceStats(_message.Message):
    __slots__ = ("field", "device", "connected", "polls_total", "poll_errors_total", "readings_total", "mean_poll_latency", "max_poll_latency", "buffer_depth", "last_sequence", "last_success_time", "last_error")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    POLLS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    POLL_ERRORS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    READINGS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    MEAN_POLL_LATENCY_FIELD_NUMBER: _ClassVar[int]
    MAX_POLL_LATENCY_FIELD_NUMBER: _ClassVar[int]
    BUFFER_DEPTH_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    LAST_SUCCESS_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    field: str
    device: str
    connected: bool
    polls_total: int
    poll_errors_total: int
    readings_total: int
    mean_poll_latency: _duration_pb2.Duration
    max_poll_latency: _duration_pb2.Duration
    buffer_depth: int
    last_sequence: int
    last_success_time: _timestamp_pb2.Timestamp
    last_error: str
    def __init__(self, field: _Optional[str] = ..., device: _Optional[str] = ..., connected: _Optional[bool] = ..., polls_total: _Optional[int] = ..., poll_errors_total: _Optional[int] = ..., readings_total: _Optional[int] = ..., mean_poll_latency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_poll_latency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., buffer_depth: _Optional[int] = ..., last_sequence: _Optional[int] = ..., last_success_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_error: _Optional[str] = ...) -> None: ...

class WriteCommand(_message.Message):
    __slots__ = ("command_id", "field", "site", "device", "point", "value", "token", "reason", "expire_time", "bool_value", "int_value", "string_value")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    POINT_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    field: str
    site: str
    device: str
    point: str
    value: float
    token: str
    reason: str
    expire_time: _timestamp_pb2.Timestamp
    bool_value: bool
    int_value: int
    string_value: str
    def __init__(self, command_id: _Optional[str] = ..., field: _Optional[str] = ..., site: _Optional[str] = ..., device: _Optional[str] = ..., point: _Optional[str] = ..., value: _Optional[float] = ..., token: _Optional[str] = ..., reason: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., bool_value: _Optional[bool] = ..., int_value: _Optional[int] = ..., string_value: _Optional[str] = ...) -> None: ...

class WriteCommandReply(_message.Message):
    __slots__ = ("command_id", "outcome", "error", "written_value", "write_time", "audit_id", "principal")
    class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OUTCOME_UNSPECIFIED: _ClassVar[WriteCommandReply.Outcome]
        OUTCOME_ACCEPTED: _ClassVar[WriteCommandReply.Outcome]
        OUTCOME_REFUSED: _ClassVar[WriteCommandReply.Outcome]
        OUTCOME_FAILED: _ClassVar[WriteCommandReply.Outcome]
    OUTCOME_UNSPECIFIED: WriteCommandReply.Outcome
    OUTCOME_ACCEPTED: WriteCommandReply.Outcome
    OUTCOME_REFUSED: WriteCommandReply.Outcome
    OUTCOME_FAILED: WriteCommandReply.Outcome
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_VALUE_FIELD_NUMBER: _ClassVar[int]
    WRITE_TIME_FIELD_NUMBER: _ClassVar[int]
    AUDIT_ID_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    outcome: WriteCommandReply.Outcome
    error: _common_pb2.ErrorDetail
    written_value: float
    write_time: _timestamp_pb2.Timestamp
    audit_id: str
    principal: _common_pb2.PrincipalRef
    def __init__(self, command_id: _Optional[str] = ..., outcome: _Optional[_Union[WriteCommandReply.Outcome, str]] = ..., error: _Optional[_Union[_common_pb2.ErrorDetail, _Mapping]] = ..., written_value: _Optional[float] = ..., write_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., audit_id: _Optional[str] = ..., principal: _Optional[_Union[_common_pb2.PrincipalRef, _Mapping]] = ...) -> None: ...
