"""The alerts service's vocabulary, free of protobuf and of any database: severities,
states, label matchers, alerts, silences and events. Rules and their conditions are in
:mod:`.rules`.

Times and durations are integers of microseconds since the Unix epoch, as in monitoring.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from functools import lru_cache
from typing import Generic, TypeVar

from smartcity.readings.model import MICROS
from smartcity.runtime.errors import InvalidArgument
from smartcity.runtime.storage import InvalidQuery
from smartcity.runtime.storage.paging import decode_page_token

__all__ = [
    "ANONYMOUS",
    "LABEL",
    "MAX_TEXT",
    "MICROS",
    "Alert",
    "AlertState",
    "Comparison",
    "Event",
    "EventType",
    "MatchType",
    "Matcher",
    "Origin",
    "Page",
    "PageRequest",
    "Severity",
    "Silence",
    "matches_all",
    "page_key",
]

T = TypeVar("T")

ANONYMOUS = "anonymous"
"""The acting user recorded when the service runs without authentication."""
LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
"""A label name, as Prometheus allows it."""
MAX_TEXT = 2000


class Severity(IntEnum):
    """Numbered as in ``alerts.proto``; the lower-case name is the subject token."""

    INFO = 1
    WARNING = 2
    CRITICAL = 3

    @property
    def token(self) -> str:
        return self.name.lower()


class AlertState(StrEnum):
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


class Comparison(StrEnum):
    GT = "gt"
    GE = "ge"
    LT = "lt"
    LE = "le"


class MatchType(StrEnum):
    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


class Origin(StrEnum):
    PLUGIN = "plugin"
    USER = "user"


class EventType(StrEnum):
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"
    ACKNOWLEDGED = "acknowledged"
    UNACKNOWLEDGED = "unacknowledged"
    ASSIGNED = "assigned"
    ESCALATED = "escalated"
    SILENCE_CHANGED = "silence_changed"
    INHIBITION_CHANGED = "inhibition_changed"


@lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@dataclass(frozen=True, slots=True)
class Matcher:
    """A condition on one label, as Alertmanager's: a missing label has the empty value and
    a regular expression must match the whole value."""

    name: str
    value: str
    type: MatchType = MatchType.EQUAL

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.type is MatchType.EQUAL:
            return actual == self.value
        if self.type is MatchType.NOT_EQUAL:
            return actual != self.value
        found = _regex(self.value).fullmatch(actual) is not None
        return found if self.type is MatchType.REGEX else not found

    def problems(self, path: str) -> list[str]:
        problems = []
        if not LABEL.fullmatch(self.name):
            problems.append(f"{path}.name: {self.name[:60]!r} is not a label name")
        if not isinstance(self.type, MatchType):
            problems.append(f"{path}.type: required (equal, not equal, regex, not regex)")
            return problems
        if len(self.value) > MAX_TEXT:
            problems.append(f"{path}.value: longer than {MAX_TEXT} characters")
        if self.type in (MatchType.REGEX, MatchType.NOT_REGEX):
            try:
                _regex(self.value)
            except re.error as exc:
                problems.append(f"{path}.value: not a regular expression ({exc})")
        return problems


def matches_all(matchers: Sequence[Matcher], labels: Mapping[str, str]) -> bool:
    return all(matcher.matches(labels) for matcher in matchers)


@dataclass(slots=True)
class Alert:
    """The current occurrence of a rule's condition on one series, by fingerprint."""

    fingerprint: str
    rule_id: str
    state: AlertState
    severity: Severity
    rule_severity: Severity
    field: str
    labels: dict[str, str]
    annotations: dict[str, str]
    active_time: int
    start_time: int | None = None
    end_time: int | None = None
    value: float = 0.0
    acknowledged_by: str | None = None
    acknowledge_time: int | None = None
    acknowledge_comment: str = ""
    assignee: str | None = None
    silenced_by: tuple[str, ...] = ()
    inhibited_by: tuple[str, ...] = ()
    escalation_level: int = 0
    update_time: int = 0
    cleared_time: int | None = None
    """When the condition last stopped holding while FIRING (``keep_firing_for`` counts
    from here); ``None`` while it holds."""

    @property
    def is_open(self) -> bool:
        return self.state is not AlertState.RESOLVED

    @property
    def suppressed(self) -> bool:
        return bool(self.silenced_by or self.inhibited_by)


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    start_time: int
    end_time: int
    comment: str
    created_by: str
    create_time: int

    def active(self, now: int) -> bool:
        return self.start_time <= now < self.end_time

    def state(self, now: int) -> str:
        if now < self.start_time:
            return "pending"
        return "active" if now < self.end_time else "expired"


@dataclass(frozen=True, slots=True)
class Event:
    """One change of an alert; ``revision`` is its position in the event history (0 until
    the store assigns it)."""

    event_id: str
    time: int
    type: EventType
    alert: Alert
    actor: str | None = None
    comment: str = ""
    revision: int = 0


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: Sequence[T]
    next_token: str = ""


DEFAULT_PAGE = 100
MAX_PAGE = 1000


@dataclass(frozen=True, slots=True)
class PageRequest:
    size: int = 0
    token: str = ""

    @property
    def limit(self) -> int:
        if self.size < 0:
            raise InvalidArgument("page.page_size must not be negative")
        return min(self.size or DEFAULT_PAGE, MAX_PAGE)


def page_key(page: PageRequest, kind: str, arity: int) -> tuple[str, ...] | None:
    try:
        return decode_page_token(page.token, kind, arity)
    except InvalidQuery as exc:
        raise InvalidArgument(str(exc)) from None
