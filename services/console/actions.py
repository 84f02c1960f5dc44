"""The alert endpoints: the open alerts, an alert's history, and what an operator does with
them (acknowledge, give back, assign, silence). Whether the user may is the alerts service's
decision, made on the user's own token."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from starlette.requests import Request
from starlette.responses import Response

from smartcity.alerts.v1 import alerts_pb2
from smartcity.common.v1 import common_pb2
from smartcity.services.console import convert
from smartcity.services.console.api import pages
from smartcity.services.console.backend import ApiError
from smartcity.services.console.sessions import Session
from smartcity.services.console.web import (
    Console,
    comment,
    endpoint,
    identifier,
    integer,
    json_response,
    read_body,
)

__all__ = ["ROUTES"]


@endpoint()
async def alerts(request: Request, session: Session, console: Console) -> Response:
    """Open alerts (``all=1``: resolved ones too), silenced and inhibited ones marked, with
    the revision to watch from."""
    query = request.query_params
    field = identifier(query, "field")
    states = [alerts_pb2.ALERT_STATE_PENDING, alerts_pb2.ALERT_STATE_FIRING]
    if query.get("all") == "1":
        states.append(alerts_pb2.ALERT_STATE_RESOLVED)
    token = await console.auth.token(session)
    b = console.backend
    revision = 0

    async def page(p: common_pb2.PageRequest) -> Any:
        nonlocal revision
        request_message = alerts_pb2.ListAlertsRequest(
            page=p, field=field, states=states, include_silenced=True, include_inhibited=True
        )
        reply = await b.call("alerts", b.alerts.ListAlerts, request_message, token)
        revision = revision or reply.revision
        return reply

    listed = await pages(page, "alerts")
    return json_response({"alerts": [convert.alert(a) for a in listed], "revision": revision})


@endpoint()
async def alert_history(request: Request, session: Session, console: Console) -> Response:
    fingerprint = identifier(request.path_params, "fingerprint", required=True)
    token = await console.auth.token(session)
    b = console.backend
    request_message = alerts_pb2.GetAlertHistoryRequest(
        fingerprint=fingerprint, page=common_pb2.PageRequest(page_size=200)
    )
    reply = await b.call("alerts", b.alerts.GetAlertHistory, request_message, token)
    return json_response({"events": [convert.alert_event(e) for e in reply.events]})


async def _act(request: Request, session: Session, console: Console, action: str) -> Response:
    fingerprint = identifier(request.path_params, "fingerprint", required=True)
    body = await read_body(request, console.settings.max_body_bytes)
    note = comment(body)
    token = await console.auth.token(session)
    b = console.backend
    if action == "ack":
        message: Any = alerts_pb2.AcknowledgeAlertRequest(fingerprint=fingerprint, comment=note)
        reply = await b.call("alerts", b.alerts.AcknowledgeAlert, message, token)
    elif action == "unack":
        message = alerts_pb2.UnacknowledgeAlertRequest(fingerprint=fingerprint, comment=note)
        reply = await b.call("alerts", b.alerts.UnacknowledgeAlert, message, token)
    else:
        assignee = identifier(body, "assignee")
        message = alerts_pb2.AssignAlertRequest(
            fingerprint=fingerprint, assignee=assignee, comment=note
        )
        reply = await b.call("alerts", b.alerts.AssignAlert, message, token)
    return json_response({"alert": convert.alert(reply.alert)})


@endpoint()
async def acknowledge(request: Request, session: Session, console: Console) -> Response:
    return await _act(request, session, console, "ack")


@endpoint()
async def unacknowledge(request: Request, session: Session, console: Console) -> Response:
    return await _act(request, session, console, "unack")


@endpoint()
async def assign(request: Request, session: Session, console: Console) -> Response:
    """``assignee``: a user name; empty assigns the caller, ``-`` clears."""
    return await _act(request, session, console, "assign")


@endpoint()
async def silence(request: Request, session: Session, console: Console) -> Response:
    """A silence of ``minutes`` on the alerts whose labels equal the ``field``, ``site``,
    ``device``, ``metric`` and ``alertname`` given."""
    body = await read_body(request, console.settings.max_body_bytes)
    matchers = [
        alerts_pb2.Matcher(name=label, value=value, type=alerts_pb2.Matcher.TYPE_EQUAL)
        for label in ("field", "site", "device", "metric", "alertname")
        if (value := identifier(body, label))
    ]
    if not matchers:
        raise ApiError(400, "name at least one of field, site, device, metric, alertname")
    minutes = integer(body, "minutes", 60, 1, 7 * 24 * 60)
    note = comment(body)
    request_id = identifier(body, "request_id") or uuid.uuid4().hex
    start, end = Timestamp(), Timestamp()
    now = int(time.time())
    start.FromSeconds(now)
    end.FromSeconds(now + minutes * 60)
    message = alerts_pb2.CreateSilenceRequest(
        silence=alerts_pb2.Silence(matchers=matchers, start_time=start, end_time=end, comment=note),
        request_id=request_id,
    )
    token = await console.auth.token(session)
    b = console.backend
    reply = await b.call("alerts", b.alerts.CreateSilence, message, token)
    created = reply.silence
    return json_response(
        {
            "silence": {
                "id": created.id,
                "ends": convert.millis(created.end_time),
                "comment": created.comment,
            }
        }
    )


ROUTES: list[tuple[str, Callable[..., Any], list[str]]] = [
    ("/api/alerts", alerts, ["GET"]),
    ("/api/alerts/{fingerprint}/history", alert_history, ["GET"]),
    ("/api/alerts/{fingerprint}/ack", acknowledge, ["POST"]),
    ("/api/alerts/{fingerprint}/unack", unacknowledge, ["POST"]),
    ("/api/alerts/{fingerprint}/assign", assign, ["POST"]),
    ("/api/silences", silence, ["POST"]),
]
