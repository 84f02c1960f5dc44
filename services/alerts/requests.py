"""What the alerts servicer reads from a request before it calls the service: pages, ids,
matchers and the filter of a listing of alerts, checked, with :class:`InvalidArgument`
naming what is wrong.

The conversions of rules, alerts, events and silences are in :mod:`.messages`.
"""

from __future__ import annotations

from typing import Any

from smartcity.alerts.v1 import alerts_pb2 as pb
from smartcity.common.v1 import common_pb2
from smartcity.runtime.errors import InvalidArgument
from smartcity.services.alerts import messages as m
from smartcity.services.alerts.model import Page, PageRequest
from smartcity.services.alerts.store import AlertFilter

__all__ = [
    "MAX_ID",
    "alert_filter",
    "checked_matchers",
    "page_offset",
    "page_request",
    "page_response",
    "request_id",
]

MAX_ID = 200


def page_request(message: common_pb2.PageRequest) -> PageRequest:
    return PageRequest(message.page_size, message.page_token)


def page_offset(page: PageRequest) -> int:
    """Where a page of a listing paged by position (groups, silences) starts."""
    if page.token and not (page.token.isdigit() and len(page.token) < 10):
        raise InvalidArgument(f"invalid page token {page.token[:40]!r}: not one this API issued")
    return int(page.token or 0)


def page_response(page: Page[Any]) -> common_pb2.PageResponse:
    return common_pb2.PageResponse(next_page_token=page.next_token)


def request_id(value: str) -> str:
    """``value``, an id the caller chose (a request id, an assignee), if it is at most
    :data:`MAX_ID` printable characters."""
    if len(value) > MAX_ID or any(ord(c) < 32 for c in value):
        raise InvalidArgument(f"request_id: at most {MAX_ID} printable characters")
    return value


def checked_matchers(items: Any) -> list[Any]:
    matchers = [m.matcher(item) for item in items]
    problems = [p for i, x in enumerate(matchers) for p in x.problems(f"matchers[{i}]")]
    if problems:
        raise InvalidArgument("; ".join(problems))
    return matchers


def alert_filter(request: pb.ListAlertsRequest) -> AlertFilter:
    """The alerts a ``ListAlerts`` request asks for (states, field, severity, time)."""
    states = []
    for number in request.states:
        if number not in m.STATE_OF:
            raise InvalidArgument(f"states: {number} is not an alert state")
        states.append(m.STATE_OF[number])
    span = request.active_time_range
    return AlertFilter(
        field=request.field,
        states=tuple(states) or AlertFilter().states,
        min_severity=m.severity_of(request.min_severity),
        active_from=span.start_time.ToMicroseconds() if span.HasField("start_time") else None,
        active_to=span.end_time.ToMicroseconds() if span.HasField("end_time") else None,
    )
