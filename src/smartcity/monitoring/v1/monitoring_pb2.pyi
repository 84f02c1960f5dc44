import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from smartcity.common.v1 import common_pb2 as _common_pb2
from smartcity.telemetry.v1 import telemetry_pb2 as _telemetry_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Aggregation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGGREGATION_UNSPECIFIED: _ClassVar[Aggregation]
    AGGREGATION_AVG: _ClassVar[Aggregation]
    AGGREGATION_MIN: _ClassVar[Aggregation]
    AGGREGATION_MAX: _ClassVar[Aggregation]
    AGGREGATION_LAST: _ClassVar[Aggregation]
    AGGREGATION_COUNT: _ClassVar[Aggregation]
    AGGREGATION_SUM: _ClassVar[Aggregation]

class DeviceState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEVICE_STATE_UNSPECIFIED: _ClassVar[DeviceState]
    DEVICE_STATE_UNKNOWN: _ClassVar[DeviceState]
    DEVICE_STATE_ONLINE: _ClassVar[DeviceState]
    DEVICE_STATE_STALE: _ClassVar[DeviceState]
    DEVICE_STATE_OFFLINE: _ClassVar[DeviceState]

class Pillar(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PILLAR_UNSPECIFIED: _ClassVar[Pillar]
    PILLAR_GOVERNANCE: _ClassVar[Pillar]
    PILLAR_CITIZEN: _ClassVar[Pillar]
    PILLAR_MOBILITY: _ClassVar[Pillar]
    PILLAR_LIVING: _ClassVar[Pillar]
    PILLAR_ENVIRONMENT: _ClassVar[Pillar]
    PILLAR_ECONOMY: _ClassVar[Pillar]

class KpiDirection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KPI_DIRECTION_UNSPECIFIED: _ClassVar[KpiDirection]
    KPI_DIRECTION_HIGHER_IS_BETTER: _ClassVar[KpiDirection]
    KPI_DIRECTION_LOWER_IS_BETTER: _ClassVar[KpiDirection]
AGGREGATION_UNSPECIFIED: Aggregation
AGGREGATION_AVG: Aggregation
AGGREGATION_MIN: Aggregation
AGGREGATION_MAX: Aggregation
AGGREGATION_LAST: Aggregation
AGGREGATION_COUNT: Aggregation
AGGREGATION_SUM: Aggregation
DEVICE_STATE_UNSPECIFIED: DeviceState
DEVICE_STATE_UNKNOWN: DeviceState
DEVICE_STATE_ONLINE: DeviceState
DEVICE_STATE_STALE: DeviceState
DEVICE_STATE_OFFLINE: DeviceState
PILLAR_UNSPECIFIED: Pillar
PILLAR_GOVERNANCE: Pillar
PILLAR_CITIZEN: Pillar
PILLAR_MOBILITY: Pillar
PILLAR_LIVING: Pillar
PILLAR_ENVIRONMENT: Pillar
PILLAR_ECONOMY: Pillar
KPI_DIRECTION_UNSPECIFIED: KpiDirection
KPI_DIRECTION_HIGHER_IS_BETTER: KpiDirection
KPI_DIRECTION_LOWER_IS_BETTER: KpiDirection

class DeviceReading(_message.Message):
    __slots__ = ("field", "site", "device", "reading")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    READING_FIELD_NUMBER: _ClassVar[int]
    field: str
    site: str
    device: str
    reading: _telemetry_pb2.Reading
    def __init__(self, field: _Optional[str] = ..., site: _Optional[str] = ..., device: _Optional[str] = ..., reading: _Optional[_Union[_telemetry_pb2.Reading, _Mapping]] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ("time", "value", "count", "quality")
    TIME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    value: float
    count: int
    quality: _common_pb2.Quality
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., value: _Optional[float] = ..., count: _Optional[int] = ..., quality: _Optional[_Union[_common_pb2.Quality, str]] = ...) -> None: ...

class Series(_message.Message):
    __slots__ = ("field", "site", "device", "metric", "unit", "points")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    field: str
    site: str
    device: str
    metric: str
    unit: str
    points: _containers.RepeatedCompositeFieldContainer[Point]
    def __init__(self, field: _Optional[str] = ..., site: _Optional[str] = ..., device: _Optional[str] = ..., metric: _Optional[str] = ..., unit: _Optional[str] = ..., points: _Optional[_Iterable[_Union[Point, _Mapping]]] = ...) -> None: ...

class Device(_message.Message):
    __slots__ = ("field", "site", "device", "agent_id", "state", "last_seen_time", "poll_interval", "metrics", "stats", "state_change_time")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_TIME_FIELD_NUMBER: _ClassVar[int]
    POLL_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    STATE_CHANGE_TIME_FIELD_NUMBER: _ClassVar[int]
    field: str
    site: str
    device: str
    agent_id: str
    state: DeviceState
    last_seen_time: _timestamp_pb2.Timestamp
    poll_interval: _duration_pb2.Duration
    metrics: _containers.RepeatedScalarFieldContainer[str]
    stats: _telemetry_pb2.DeviceStats
    state_change_time: _timestamp_pb2.Timestamp
    def __init__(self, field: _Optional[str] = ..., site: _Optional[str] = ..., device: _Optional[str] = ..., agent_id: _Optional[str] = ..., state: _Optional[_Union[DeviceState, str]] = ..., last_seen_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., poll_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., metrics: _Optional[_Iterable[str]] = ..., stats: _Optional[_Union[_telemetry_pb2.DeviceStats, _Mapping]] = ..., state_change_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Kpi(_message.Message):
    __slots__ = ("id", "display_name", "value", "unit", "target", "direction", "compute_time", "description")
    ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_TIME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    id: str
    display_name: str
    value: float
    unit: str
    target: float
    direction: KpiDirection
    compute_time: _timestamp_pb2.Timestamp
    description: str
    def __init__(self, id: _Optional[str] = ..., display_name: _Optional[str] = ..., value: _Optional[float] = ..., unit: _Optional[str] = ..., target: _Optional[float] = ..., direction: _Optional[_Union[KpiDirection, str]] = ..., compute_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., description: _Optional[str] = ...) -> None: ...

class FieldSummary(_message.Message):
    __slots__ = ("field", "device_count", "online_count", "stale_count", "offline_count", "unknown_count", "series_count", "readings_last_hour", "kpis")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    DEVICE_COUNT_FIELD_NUMBER: _ClassVar[int]
    ONLINE_COUNT_FIELD_NUMBER: _ClassVar[int]
    STALE_COUNT_FIELD_NUMBER: _ClassVar[int]
    OFFLINE_COUNT_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_COUNT_FIELD_NUMBER: _ClassVar[int]
    SERIES_COUNT_FIELD_NUMBER: _ClassVar[int]
    READINGS_LAST_HOUR_FIELD_NUMBER: _ClassVar[int]
    KPIS_FIELD_NUMBER: _ClassVar[int]
    field: str
    device_count: int
    online_count: int
    stale_count: int
    offline_count: int
    unknown_count: int
    series_count: int
    readings_last_hour: int
    kpis: _containers.RepeatedCompositeFieldContainer[Kpi]
    def __init__(self, field: _Optional[str] = ..., device_count: _Optional[int] = ..., online_count: _Optional[int] = ..., stale_count: _Optional[int] = ..., offline_count: _Optional[int] = ..., unknown_count: _Optional[int] = ..., series_count: _Optional[int] = ..., readings_last_hour: _Optional[int] = ..., kpis: _Optional[_Iterable[_Union[Kpi, _Mapping]]] = ...) -> None: ...

class MetricSpec(_message.Message):
    __slots__ = ("name", "unit", "description", "min_value", "max_value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    MIN_VALUE_FIELD_NUMBER: _ClassVar[int]
    MAX_VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    unit: str
    description: str
    min_value: float
    max_value: float
    def __init__(self, name: _Optional[str] = ..., unit: _Optional[str] = ..., description: _Optional[str] = ..., min_value: _Optional[float] = ..., max_value: _Optional[float] = ...) -> None: ...

class Field(_message.Message):
    __slots__ = ("id", "pillar", "display_name", "description", "metrics", "record_types", "kpis", "plugin_version")
    ID_FIELD_NUMBER: _ClassVar[int]
    PILLAR_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    RECORD_TYPES_FIELD_NUMBER: _ClassVar[int]
    KPIS_FIELD_NUMBER: _ClassVar[int]
    PLUGIN_VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    pillar: Pillar
    display_name: str
    description: str
    metrics: _containers.RepeatedCompositeFieldContainer[MetricSpec]
    record_types: _containers.RepeatedScalarFieldContainer[str]
    kpis: _containers.RepeatedScalarFieldContainer[str]
    plugin_version: str
    def __init__(self, id: _Optional[str] = ..., pillar: _Optional[_Union[Pillar, str]] = ..., display_name: _Optional[str] = ..., description: _Optional[str] = ..., metrics: _Optional[_Iterable[_Union[MetricSpec, _Mapping]]] = ..., record_types: _Optional[_Iterable[str]] = ..., kpis: _Optional[_Iterable[str]] = ..., plugin_version: _Optional[str] = ...) -> None: ...

class GetLatestRequest(_message.Message):
    __slots__ = ("selector", "page")
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    selector: _common_pb2.SeriesSelector
    page: _common_pb2.PageRequest
    def __init__(self, selector: _Optional[_Union[_common_pb2.SeriesSelector, _Mapping]] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class GetLatestResponse(_message.Message):
    __slots__ = ("readings", "page")
    READINGS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    readings: _containers.RepeatedCompositeFieldContainer[DeviceReading]
    page: _common_pb2.PageResponse
    def __init__(self, readings: _Optional[_Iterable[_Union[DeviceReading, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class QueryRangeRequest(_message.Message):
    __slots__ = ("selector", "time_range", "step", "aggregation", "page")
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    TIME_RANGE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    AGGREGATION_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    selector: _common_pb2.SeriesSelector
    time_range: _common_pb2.TimeRange
    step: _duration_pb2.Duration
    aggregation: Aggregation
    page: _common_pb2.PageRequest
    def __init__(self, selector: _Optional[_Union[_common_pb2.SeriesSelector, _Mapping]] = ..., time_range: _Optional[_Union[_common_pb2.TimeRange, _Mapping]] = ..., step: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., aggregation: _Optional[_Union[Aggregation, str]] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class QueryRangeResponse(_message.Message):
    __slots__ = ("series", "from_rollup", "rollup_resolution", "page")
    SERIES_FIELD_NUMBER: _ClassVar[int]
    FROM_ROLLUP_FIELD_NUMBER: _ClassVar[int]
    ROLLUP_RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    series: _containers.RepeatedCompositeFieldContainer[Series]
    from_rollup: bool
    rollup_resolution: _duration_pb2.Duration
    page: _common_pb2.PageResponse
    def __init__(self, series: _Optional[_Iterable[_Union[Series, _Mapping]]] = ..., from_rollup: _Optional[bool] = ..., rollup_resolution: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class StreamReadingsRequest(_message.Message):
    __slots__ = ("selector", "include_latest")
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_LATEST_FIELD_NUMBER: _ClassVar[int]
    selector: _common_pb2.SeriesSelector
    include_latest: bool
    def __init__(self, selector: _Optional[_Union[_common_pb2.SeriesSelector, _Mapping]] = ..., include_latest: _Optional[bool] = ...) -> None: ...

class StreamReadingsResponse(_message.Message):
    __slots__ = ("readings",)
    READINGS_FIELD_NUMBER: _ClassVar[int]
    readings: _containers.RepeatedCompositeFieldContainer[DeviceReading]
    def __init__(self, readings: _Optional[_Iterable[_Union[DeviceReading, _Mapping]]] = ...) -> None: ...

class ListDevicesRequest(_message.Message):
    __slots__ = ("page", "field", "site", "states")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    page: _common_pb2.PageRequest
    field: str
    site: str
    states: _containers.RepeatedScalarFieldContainer[DeviceState]
    def __init__(self, page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., field: _Optional[str] = ..., site: _Optional[str] = ..., states: _Optional[_Iterable[_Union[DeviceState, str]]] = ...) -> None: ...

class ListDevicesResponse(_message.Message):
    __slots__ = ("devices", "page")
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[Device]
    page: _common_pb2.PageResponse
    def __init__(self, devices: _Optional[_Iterable[_Union[Device, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class GetDeviceRequest(_message.Message):
    __slots__ = ("site", "device", "field")
    SITE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    site: str
    device: str
    field: str
    def __init__(self, site: _Optional[str] = ..., device: _Optional[str] = ..., field: _Optional[str] = ...) -> None: ...

class GetDeviceResponse(_message.Message):
    __slots__ = ("device",)
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    device: Device
    def __init__(self, device: _Optional[_Union[Device, _Mapping]] = ...) -> None: ...

class GetFieldSummaryRequest(_message.Message):
    __slots__ = ("field",)
    FIELD_FIELD_NUMBER: _ClassVar[int]
    field: str
    def __init__(self, field: _Optional[str] = ...) -> None: ...

class GetFieldSummaryResponse(_message.Message):
    __slots__ = ("summary",)
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    summary: FieldSummary
    def __init__(self, summary: _Optional[_Union[FieldSummary, _Mapping]] = ...) -> None: ...

class ListFieldsRequest(_message.Message):
    __slots__ = ("page", "pillar")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    PILLAR_FIELD_NUMBER: _ClassVar[int]
    page: _common_pb2.PageRequest
    pillar: Pillar
    def __init__(self, page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., pillar: _Optional[_Union[Pillar, str]] = ...) -> None: ...

class ListFieldsResponse(_message.Message):
    __slots__ = ("fields", "page")
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    fields: _containers.RepeatedCompositeFieldContainer[Field]
    page: _common_pb2.PageResponse
    def __init__(self, fields: _Optional[_Iterable[_Union[Field, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...
