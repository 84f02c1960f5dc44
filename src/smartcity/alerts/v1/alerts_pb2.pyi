import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from smartcity.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Severity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEVERITY_UNSPECIFIED: _ClassVar[Severity]
    SEVERITY_INFO: _ClassVar[Severity]
    SEVERITY_WARNING: _ClassVar[Severity]
    SEVERITY_CRITICAL: _ClassVar[Severity]

class AlertState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALERT_STATE_UNSPECIFIED: _ClassVar[AlertState]
    ALERT_STATE_PENDING: _ClassVar[AlertState]
    ALERT_STATE_FIRING: _ClassVar[AlertState]
    ALERT_STATE_RESOLVED: _ClassVar[AlertState]

class Comparison(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPARISON_UNSPECIFIED: _ClassVar[Comparison]
    COMPARISON_GREATER: _ClassVar[Comparison]
    COMPARISON_GREATER_OR_EQUAL: _ClassVar[Comparison]
    COMPARISON_LESS: _ClassVar[Comparison]
    COMPARISON_LESS_OR_EQUAL: _ClassVar[Comparison]

class RuleOrigin(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RULE_ORIGIN_UNSPECIFIED: _ClassVar[RuleOrigin]
    RULE_ORIGIN_PLUGIN: _ClassVar[RuleOrigin]
    RULE_ORIGIN_USER: _ClassVar[RuleOrigin]

class SilenceState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SILENCE_STATE_UNSPECIFIED: _ClassVar[SilenceState]
    SILENCE_STATE_PENDING: _ClassVar[SilenceState]
    SILENCE_STATE_ACTIVE: _ClassVar[SilenceState]
    SILENCE_STATE_EXPIRED: _ClassVar[SilenceState]
SEVERITY_UNSPECIFIED: Severity
SEVERITY_INFO: Severity
SEVERITY_WARNING: Severity
SEVERITY_CRITICAL: Severity
ALERT_STATE_UNSPECIFIED: AlertState
ALERT_STATE_PENDING: AlertState
ALERT_STATE_FIRING: AlertState
ALERT_STATE_RESOLVED: AlertState
COMPARISON_UNSPECIFIED: Comparison
COMPARISON_GREATER: Comparison
COMPARISON_GREATER_OR_EQUAL: Comparison
COMPARISON_LESS: Comparison
COMPARISON_LESS_OR_EQUAL: Comparison
RULE_ORIGIN_UNSPECIFIED: RuleOrigin
RULE_ORIGIN_PLUGIN: RuleOrigin
RULE_ORIGIN_USER: RuleOrigin
SILENCE_STATE_UNSPECIFIED: SilenceState
SILENCE_STATE_PENDING: SilenceState
SILENCE_STATE_ACTIVE: SilenceState
SILENCE_STATE_EXPIRED: SilenceState

class ThresholdCondition(_message.Message):
    __slots__ = ("comparison", "threshold", "hysteresis")
    COMPARISON_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    HYSTERESIS_FIELD_NUMBER: _ClassVar[int]
    comparison: Comparison
    threshold: float
    hysteresis: float
    def __init__(self, comparison: _Optional[_Union[Comparison, str]] = ..., threshold: _Optional[float] = ..., hysteresis: _Optional[float] = ...) -> None: ...

class BandCondition(_message.Message):
    __slots__ = ("low", "high", "hysteresis")
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    HYSTERESIS_FIELD_NUMBER: _ClassVar[int]
    low: float
    high: float
    hysteresis: float
    def __init__(self, low: _Optional[float] = ..., high: _Optional[float] = ..., hysteresis: _Optional[float] = ...) -> None: ...

class RateOfChangeCondition(_message.Message):
    __slots__ = ("window", "rate")
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    window: _duration_pb2.Duration
    rate: ThresholdCondition
    def __init__(self, window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., rate: _Optional[_Union[ThresholdCondition, _Mapping]] = ...) -> None: ...

class QualityBadCondition(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NoDataCondition(_message.Message):
    __slots__ = ("timeout",)
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    timeout: _duration_pb2.Duration
    def __init__(self, timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class Matcher(_message.Message):
    __slots__ = ("name", "value", "type")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TYPE_UNSPECIFIED: _ClassVar[Matcher.Type]
        TYPE_EQUAL: _ClassVar[Matcher.Type]
        TYPE_NOT_EQUAL: _ClassVar[Matcher.Type]
        TYPE_REGEX: _ClassVar[Matcher.Type]
        TYPE_NOT_REGEX: _ClassVar[Matcher.Type]
    TYPE_UNSPECIFIED: Matcher.Type
    TYPE_EQUAL: Matcher.Type
    TYPE_NOT_EQUAL: Matcher.Type
    TYPE_REGEX: Matcher.Type
    TYPE_NOT_REGEX: Matcher.Type
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    type: Matcher.Type
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ..., type: _Optional[_Union[Matcher.Type, str]] = ...) -> None: ...

class Inhibition(_message.Message):
    __slots__ = ("target_matchers", "equal_labels")
    TARGET_MATCHERS_FIELD_NUMBER: _ClassVar[int]
    EQUAL_LABELS_FIELD_NUMBER: _ClassVar[int]
    target_matchers: _containers.RepeatedCompositeFieldContainer[Matcher]
    equal_labels: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, target_matchers: _Optional[_Iterable[_Union[Matcher, _Mapping]]] = ..., equal_labels: _Optional[_Iterable[str]] = ...) -> None: ...

class EscalationStep(_message.Message):
    __slots__ = ("after", "notify", "severity")
    AFTER_FIELD_NUMBER: _ClassVar[int]
    NOTIFY_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    after: _duration_pb2.Duration
    notify: str
    severity: Severity
    def __init__(self, after: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., notify: _Optional[str] = ..., severity: _Optional[_Union[Severity, str]] = ...) -> None: ...

class Rule(_message.Message):
    __slots__ = ("id", "display_name", "field", "selector", "severity", "threshold", "rate_of_change", "no_data", "quality_bad", "band", "for_duration", "labels", "annotations", "inhibitions", "escalation", "enabled", "origin", "create_time", "update_time", "keep_firing_for", "version")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class AnnotationsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    RATE_OF_CHANGE_FIELD_NUMBER: _ClassVar[int]
    NO_DATA_FIELD_NUMBER: _ClassVar[int]
    QUALITY_BAD_FIELD_NUMBER: _ClassVar[int]
    BAND_FIELD_NUMBER: _ClassVar[int]
    FOR_DURATION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    INHIBITIONS_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    KEEP_FIRING_FOR_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    display_name: str
    field: str
    selector: _common_pb2.SeriesSelector
    severity: Severity
    threshold: ThresholdCondition
    rate_of_change: RateOfChangeCondition
    no_data: NoDataCondition
    quality_bad: QualityBadCondition
    band: BandCondition
    for_duration: _duration_pb2.Duration
    labels: _containers.ScalarMap[str, str]
    annotations: _containers.ScalarMap[str, str]
    inhibitions: _containers.RepeatedCompositeFieldContainer[Inhibition]
    escalation: _containers.RepeatedCompositeFieldContainer[EscalationStep]
    enabled: bool
    origin: RuleOrigin
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    keep_firing_for: _duration_pb2.Duration
    version: int
    def __init__(self, id: _Optional[str] = ..., display_name: _Optional[str] = ..., field: _Optional[str] = ..., selector: _Optional[_Union[_common_pb2.SeriesSelector, _Mapping]] = ..., severity: _Optional[_Union[Severity, str]] = ..., threshold: _Optional[_Union[ThresholdCondition, _Mapping]] = ..., rate_of_change: _Optional[_Union[RateOfChangeCondition, _Mapping]] = ..., no_data: _Optional[_Union[NoDataCondition, _Mapping]] = ..., quality_bad: _Optional[_Union[QualityBadCondition, _Mapping]] = ..., band: _Optional[_Union[BandCondition, _Mapping]] = ..., for_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., annotations: _Optional[_Mapping[str, str]] = ..., inhibitions: _Optional[_Iterable[_Union[Inhibition, _Mapping]]] = ..., escalation: _Optional[_Iterable[_Union[EscalationStep, _Mapping]]] = ..., enabled: _Optional[bool] = ..., origin: _Optional[_Union[RuleOrigin, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., keep_firing_for: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class Alert(_message.Message):
    __slots__ = ("fingerprint", "rule_id", "state", "severity", "field", "labels", "annotations", "active_time", "start_time", "end_time", "value", "acknowledged_by", "acknowledge_time", "acknowledge_comment", "silenced_by", "inhibited_by", "escalation_level", "update_time", "assignee", "rule_severity")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class AnnotationsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGED_BY_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGE_TIME_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGE_COMMENT_FIELD_NUMBER: _ClassVar[int]
    SILENCED_BY_FIELD_NUMBER: _ClassVar[int]
    INHIBITED_BY_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_LEVEL_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ASSIGNEE_FIELD_NUMBER: _ClassVar[int]
    RULE_SEVERITY_FIELD_NUMBER: _ClassVar[int]
    fingerprint: str
    rule_id: str
    state: AlertState
    severity: Severity
    field: str
    labels: _containers.ScalarMap[str, str]
    annotations: _containers.ScalarMap[str, str]
    active_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    value: float
    acknowledged_by: _common_pb2.PrincipalRef
    acknowledge_time: _timestamp_pb2.Timestamp
    acknowledge_comment: str
    silenced_by: _containers.RepeatedScalarFieldContainer[str]
    inhibited_by: _containers.RepeatedScalarFieldContainer[str]
    escalation_level: int
    update_time: _timestamp_pb2.Timestamp
    assignee: _common_pb2.PrincipalRef
    rule_severity: Severity
    def __init__(self, fingerprint: _Optional[str] = ..., rule_id: _Optional[str] = ..., state: _Optional[_Union[AlertState, str]] = ..., severity: _Optional[_Union[Severity, str]] = ..., field: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., annotations: _Optional[_Mapping[str, str]] = ..., active_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., value: _Optional[float] = ..., acknowledged_by: _Optional[_Union[_common_pb2.PrincipalRef, _Mapping]] = ..., acknowledge_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., acknowledge_comment: _Optional[str] = ..., silenced_by: _Optional[_Iterable[str]] = ..., inhibited_by: _Optional[_Iterable[str]] = ..., escalation_level: _Optional[int] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., assignee: _Optional[_Union[_common_pb2.PrincipalRef, _Mapping]] = ..., rule_severity: _Optional[_Union[Severity, str]] = ...) -> None: ...

class AlertGroup(_message.Message):
    __slots__ = ("labels", "alerts", "max_severity", "unhandled_count")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    MAX_SEVERITY_FIELD_NUMBER: _ClassVar[int]
    UNHANDLED_COUNT_FIELD_NUMBER: _ClassVar[int]
    labels: _containers.ScalarMap[str, str]
    alerts: _containers.RepeatedCompositeFieldContainer[Alert]
    max_severity: Severity
    unhandled_count: int
    def __init__(self, labels: _Optional[_Mapping[str, str]] = ..., alerts: _Optional[_Iterable[_Union[Alert, _Mapping]]] = ..., max_severity: _Optional[_Union[Severity, str]] = ..., unhandled_count: _Optional[int] = ...) -> None: ...

class Silence(_message.Message):
    __slots__ = ("id", "matchers", "start_time", "end_time", "comment", "created_by", "state", "create_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    MATCHERS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    matchers: _containers.RepeatedCompositeFieldContainer[Matcher]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    comment: str
    created_by: _common_pb2.PrincipalRef
    state: SilenceState
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., matchers: _Optional[_Iterable[_Union[Matcher, _Mapping]]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., comment: _Optional[str] = ..., created_by: _Optional[_Union[_common_pb2.PrincipalRef, _Mapping]] = ..., state: _Optional[_Union[SilenceState, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AlertEvent(_message.Message):
    __slots__ = ("event_id", "event_time", "type", "alert", "revision", "actor", "comment")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TYPE_UNSPECIFIED: _ClassVar[AlertEvent.Type]
        TYPE_PENDING: _ClassVar[AlertEvent.Type]
        TYPE_FIRING: _ClassVar[AlertEvent.Type]
        TYPE_RESOLVED: _ClassVar[AlertEvent.Type]
        TYPE_ACKNOWLEDGED: _ClassVar[AlertEvent.Type]
        TYPE_ESCALATED: _ClassVar[AlertEvent.Type]
        TYPE_SILENCE_CHANGED: _ClassVar[AlertEvent.Type]
        TYPE_INHIBITION_CHANGED: _ClassVar[AlertEvent.Type]
        TYPE_UNACKNOWLEDGED: _ClassVar[AlertEvent.Type]
        TYPE_ASSIGNED: _ClassVar[AlertEvent.Type]
    TYPE_UNSPECIFIED: AlertEvent.Type
    TYPE_PENDING: AlertEvent.Type
    TYPE_FIRING: AlertEvent.Type
    TYPE_RESOLVED: AlertEvent.Type
    TYPE_ACKNOWLEDGED: AlertEvent.Type
    TYPE_ESCALATED: AlertEvent.Type
    TYPE_SILENCE_CHANGED: AlertEvent.Type
    TYPE_INHIBITION_CHANGED: AlertEvent.Type
    TYPE_UNACKNOWLEDGED: AlertEvent.Type
    TYPE_ASSIGNED: AlertEvent.Type
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ALERT_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    event_time: _timestamp_pb2.Timestamp
    type: AlertEvent.Type
    alert: Alert
    revision: int
    actor: _common_pb2.PrincipalRef
    comment: str
    def __init__(self, event_id: _Optional[str] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., type: _Optional[_Union[AlertEvent.Type, str]] = ..., alert: _Optional[_Union[Alert, _Mapping]] = ..., revision: _Optional[int] = ..., actor: _Optional[_Union[_common_pb2.PrincipalRef, _Mapping]] = ..., comment: _Optional[str] = ...) -> None: ...

class ListRulesRequest(_message.Message):
    __slots__ = ("page", "field", "include_disabled")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_DISABLED_FIELD_NUMBER: _ClassVar[int]
    page: _common_pb2.PageRequest
    field: str
    include_disabled: bool
    def __init__(self, page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., field: _Optional[str] = ..., include_disabled: _Optional[bool] = ...) -> None: ...

class ListRulesResponse(_message.Message):
    __slots__ = ("rules", "page")
    RULES_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    rules: _containers.RepeatedCompositeFieldContainer[Rule]
    page: _common_pb2.PageResponse
    def __init__(self, rules: _Optional[_Iterable[_Union[Rule, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class GetRuleRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetRuleResponse(_message.Message):
    __slots__ = ("rule",)
    RULE_FIELD_NUMBER: _ClassVar[int]
    rule: Rule
    def __init__(self, rule: _Optional[_Union[Rule, _Mapping]] = ...) -> None: ...

class CreateRuleRequest(_message.Message):
    __slots__ = ("rule", "request_id")
    RULE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    rule: Rule
    request_id: str
    def __init__(self, rule: _Optional[_Union[Rule, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class CreateRuleResponse(_message.Message):
    __slots__ = ("rule",)
    RULE_FIELD_NUMBER: _ClassVar[int]
    rule: Rule
    def __init__(self, rule: _Optional[_Union[Rule, _Mapping]] = ...) -> None: ...

class UpdateRuleRequest(_message.Message):
    __slots__ = ("rule", "update_mask")
    RULE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    rule: Rule
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, rule: _Optional[_Union[Rule, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateRuleResponse(_message.Message):
    __slots__ = ("rule",)
    RULE_FIELD_NUMBER: _ClassVar[int]
    rule: Rule
    def __init__(self, rule: _Optional[_Union[Rule, _Mapping]] = ...) -> None: ...

class DeleteRuleRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteRuleResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAlertsRequest(_message.Message):
    __slots__ = ("page", "field", "states", "min_severity", "matchers", "include_silenced", "include_inhibited", "active_time_range")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    MIN_SEVERITY_FIELD_NUMBER: _ClassVar[int]
    MATCHERS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_SILENCED_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_INHIBITED_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_TIME_RANGE_FIELD_NUMBER: _ClassVar[int]
    page: _common_pb2.PageRequest
    field: str
    states: _containers.RepeatedScalarFieldContainer[AlertState]
    min_severity: Severity
    matchers: _containers.RepeatedCompositeFieldContainer[Matcher]
    include_silenced: bool
    include_inhibited: bool
    active_time_range: _common_pb2.TimeRange
    def __init__(self, page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., field: _Optional[str] = ..., states: _Optional[_Iterable[_Union[AlertState, str]]] = ..., min_severity: _Optional[_Union[Severity, str]] = ..., matchers: _Optional[_Iterable[_Union[Matcher, _Mapping]]] = ..., include_silenced: _Optional[bool] = ..., include_inhibited: _Optional[bool] = ..., active_time_range: _Optional[_Union[_common_pb2.TimeRange, _Mapping]] = ...) -> None: ...

class ListAlertsResponse(_message.Message):
    __slots__ = ("alerts", "page", "revision")
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    alerts: _containers.RepeatedCompositeFieldContainer[Alert]
    page: _common_pb2.PageResponse
    revision: int
    def __init__(self, alerts: _Optional[_Iterable[_Union[Alert, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class GetAlertRequest(_message.Message):
    __slots__ = ("fingerprint",)
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    fingerprint: str
    def __init__(self, fingerprint: _Optional[str] = ...) -> None: ...

class GetAlertResponse(_message.Message):
    __slots__ = ("alert",)
    ALERT_FIELD_NUMBER: _ClassVar[int]
    alert: Alert
    def __init__(self, alert: _Optional[_Union[Alert, _Mapping]] = ...) -> None: ...

class AcknowledgeAlertRequest(_message.Message):
    __slots__ = ("fingerprint", "comment")
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    fingerprint: str
    comment: str
    def __init__(self, fingerprint: _Optional[str] = ..., comment: _Optional[str] = ...) -> None: ...

class AcknowledgeAlertResponse(_message.Message):
    __slots__ = ("alert",)
    ALERT_FIELD_NUMBER: _ClassVar[int]
    alert: Alert
    def __init__(self, alert: _Optional[_Union[Alert, _Mapping]] = ...) -> None: ...

class UnacknowledgeAlertRequest(_message.Message):
    __slots__ = ("fingerprint", "comment")
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    fingerprint: str
    comment: str
    def __init__(self, fingerprint: _Optional[str] = ..., comment: _Optional[str] = ...) -> None: ...

class UnacknowledgeAlertResponse(_message.Message):
    __slots__ = ("alert",)
    ALERT_FIELD_NUMBER: _ClassVar[int]
    alert: Alert
    def __init__(self, alert: _Optional[_Union[Alert, _Mapping]] = ...) -> None: ...

class AssignAlertRequest(_message.Message):
    __slots__ = ("fingerprint", "assignee", "comment")
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    ASSIGNEE_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    fingerprint: str
    assignee: str
    comment: str
    def __init__(self, fingerprint: _Optional[str] = ..., assignee: _Optional[str] = ..., comment: _Optional[str] = ...) -> None: ...

class AssignAlertResponse(_message.Message):
    __slots__ = ("alert",)
    ALERT_FIELD_NUMBER: _ClassVar[int]
    alert: Alert
    def __init__(self, alert: _Optional[_Union[Alert, _Mapping]] = ...) -> None: ...

class GetAlertHistoryRequest(_message.Message):
    __slots__ = ("fingerprint", "page")
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    fingerprint: str
    page: _common_pb2.PageRequest
    def __init__(self, fingerprint: _Optional[str] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class GetAlertHistoryResponse(_message.Message):
    __slots__ = ("events", "page")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[AlertEvent]
    page: _common_pb2.PageResponse
    def __init__(self, events: _Optional[_Iterable[_Union[AlertEvent, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class ListAlertGroupsRequest(_message.Message):
    __slots__ = ("page", "group_by", "field", "matchers")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    MATCHERS_FIELD_NUMBER: _ClassVar[int]
    page: _common_pb2.PageRequest
    group_by: _containers.RepeatedScalarFieldContainer[str]
    field: str
    matchers: _containers.RepeatedCompositeFieldContainer[Matcher]
    def __init__(self, page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., group_by: _Optional[_Iterable[str]] = ..., field: _Optional[str] = ..., matchers: _Optional[_Iterable[_Union[Matcher, _Mapping]]] = ...) -> None: ...

class ListAlertGroupsResponse(_message.Message):
    __slots__ = ("groups", "page")
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[AlertGroup]
    page: _common_pb2.PageResponse
    def __init__(self, groups: _Optional[_Iterable[_Union[AlertGroup, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class CreateSilenceRequest(_message.Message):
    __slots__ = ("silence", "request_id")
    SILENCE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    silence: Silence
    request_id: str
    def __init__(self, silence: _Optional[_Union[Silence, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class CreateSilenceResponse(_message.Message):
    __slots__ = ("silence",)
    SILENCE_FIELD_NUMBER: _ClassVar[int]
    silence: Silence
    def __init__(self, silence: _Optional[_Union[Silence, _Mapping]] = ...) -> None: ...

class ListSilencesRequest(_message.Message):
    __slots__ = ("page", "states")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    page: _common_pb2.PageRequest
    states: _containers.RepeatedScalarFieldContainer[SilenceState]
    def __init__(self, page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., states: _Optional[_Iterable[_Union[SilenceState, str]]] = ...) -> None: ...

class ListSilencesResponse(_message.Message):
    __slots__ = ("silences", "page")
    SILENCES_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    silences: _containers.RepeatedCompositeFieldContainer[Silence]
    page: _common_pb2.PageResponse
    def __init__(self, silences: _Optional[_Iterable[_Union[Silence, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class ExpireSilenceRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ExpireSilenceResponse(_message.Message):
    __slots__ = ("silence",)
    SILENCE_FIELD_NUMBER: _ClassVar[int]
    silence: Silence
    def __init__(self, silence: _Optional[_Union[Silence, _Mapping]] = ...) -> None: ...

class WatchAlertsRequest(_message.Message):
    __slots__ = ("field", "min_severity", "matchers", "since_revision")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    MIN_SEVERITY_FIELD_NUMBER: _ClassVar[int]
    MATCHERS_FIELD_NUMBER: _ClassVar[int]
    SINCE_REVISION_FIELD_NUMBER: _ClassVar[int]
    field: str
    min_severity: Severity
    matchers: _containers.RepeatedCompositeFieldContainer[Matcher]
    since_revision: int
    def __init__(self, field: _Optional[str] = ..., min_severity: _Optional[_Union[Severity, str]] = ..., matchers: _Optional[_Iterable[_Union[Matcher, _Mapping]]] = ..., since_revision: _Optional[int] = ...) -> None: ...

class WatchAlertsResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: AlertEvent
    def __init__(self, event: _Optional[_Union[AlertEvent, _Mapping]] = ...) -> None: ...
