"""The JSON endpoints behind the page's picture of the city: fields and KPIs, the map's sites,
devices and their latest values, a metric over time (the alerts are :mod:`.actions`').

Each endpoint is one or a few calls to a service with the user's token, and a translation of
the answer; what the user may see or do is the services' decision. A user whose roles name
some fields only is asked about per field, since asking about every field at once needs a
role on every field.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from starlette.requests import Request
from starlette.responses import Response

from smartcity.common.v1 import common_pb2
from smartcity.monitoring.v1 import monitoring_pb2
from smartcity.records.v1 import records_pb2
from smartcity.services.console import convert
from smartcity.services.console.backend import ApiError
from smartcity.services.console.sessions import Session
from smartcity.services.console.web import (
    Console,
    endpoint,
    identifier,
    integer,
    json_response,
)

__all__ = ["MAX_ITEMS", "ROUTES", "pages"]

MAX_ITEMS = 5000
"""The most items one listing gathers over its pages."""
_AGGREGATIONS = {
    "avg": monitoring_pb2.AGGREGATION_AVG,
    "min": monitoring_pb2.AGGREGATION_MIN,
    "max": monitoring_pb2.AGGREGATION_MAX,
    "last": monitoring_pb2.AGGREGATION_LAST,
    "count": monitoring_pb2.AGGREGATION_COUNT,
    "sum": monitoring_pb2.AGGREGATION_SUM,
}


async def pages(fetch: Callable[[common_pb2.PageRequest], Awaitable[Any]], items: str) -> list[Any]:
    """Every item of a paged listing, up to :data:`MAX_ITEMS`."""
    found: list[Any] = []
    token = ""
    while len(found) < MAX_ITEMS:
        reply = await fetch(common_pb2.PageRequest(page_size=1000, page_token=token))
        found.extend(getattr(reply, items))
        token = reply.page.next_page_token
        if not token:
            break
    return found[:MAX_ITEMS]


def _fields_to_ask(session: Session, field: str) -> list[str]:
    """``[field]`` when one is named; ``[""]`` (every field) for a user with a role on every
    field; otherwise the fields the user's roles name."""
    if field:
        return [field]
    viewable = session.user.viewable_fields() if session.user else None
    return [""] if viewable is None else sorted(viewable)


async def _per_field(
    session: Session, field: str, ask: Callable[[str], Awaitable[list[Any]]]
) -> list[Any]:
    fields = _fields_to_ask(session, field)
    if len(fields) == 1:
        return await ask(fields[0])
    found = await asyncio.gather(*(ask(name) for name in fields))
    return [item for items in found for item in items]


async def _devices(
    session: Session, console: Console, token: str, field: str, site: str
) -> list[Any]:
    b = console.backend

    async def ask(name: str) -> list[Any]:
        async def page(p: common_pb2.PageRequest) -> Any:
            request = monitoring_pb2.ListDevicesRequest(page=p, field=name, site=site)
            return await b.call("monitoring", b.monitoring.ListDevices, request, token)

        return await pages(page, "devices")

    return await _per_field(session, field, ask)


@endpoint()
async def fields(request: Request, session: Session, console: Console) -> Response:
    """The field catalogue by pillar, each field with its device counts and KPIs."""
    token = await console.auth.token(session)
    b = console.backend

    async def page(p: common_pb2.PageRequest) -> Any:
        request = monitoring_pb2.ListFieldsRequest(page=p)
        return await b.call("monitoring", b.monitoring.ListFields, request, token)

    listed = await pages(page, "fields")
    viewable = session.user.viewable_fields() if session.user else None

    async def one(item: monitoring_pb2.Field) -> dict[str, Any]:
        shown = convert.field(item)
        shown["summary"] = None
        if viewable is not None and item.id not in viewable:
            shown["note"] = "no role on this field"
            return shown
        request = monitoring_pb2.GetFieldSummaryRequest(field=item.id)
        try:
            reply = await b.call("monitoring", b.monitoring.GetFieldSummary, request, token)
        except ApiError as error:
            shown["note"] = error.message
            return shown
        shown["summary"] = convert.summary(reply.summary)
        return shown

    shown = await asyncio.gather(*(one(item) for item in listed))
    pillars = [*convert.PILLARS, "unspecified"]
    grouped = [
        {"id": pillar, "fields": [f for f in shown if f["pillar"] == pillar]} for pillar in pillars
    ]
    return json_response({"pillars": [g for g in grouped if g["fields"]]})


@endpoint()
async def sites(request: Request, session: Session, console: Console) -> Response:
    """The map's sites: ``site`` records with a location, else the sites devices report,
    placed on a grid."""
    token = await console.auth.token(session)
    b = console.backend
    note = ""

    async def page(p: common_pb2.PageRequest) -> Any:
        request = records_pb2.SearchRecordsRequest(page=p, type="site")
        return await b.call("records", b.records.SearchRecords, request, token)

    try:
        located = [s for s in map(convert.site_record, await pages(page, "records")) if s]
    except ApiError as error:
        located, note = [], f"{error.service or 'records'}: {error.message}"
    if located:
        return json_response({"source": "records", "sites": located, "note": note})
    names = sorted({d.site for d in await _devices(session, console, token, "", "")})
    columns = max(1, math.ceil(math.sqrt(len(names))))
    rows = max(1, math.ceil(len(names) / columns))
    grid = [
        {
            "id": name,
            "name": name,
            "x": (index % columns + 0.5) / columns,
            "y": (index // columns + 0.5) / rows,
        }
        for index, name in enumerate(names)
    ]
    return json_response({"source": "devices", "sites": grid, "note": note})


@endpoint()
async def devices(request: Request, session: Session, console: Console) -> Response:
    """Devices and their health (``field``, ``site`` narrow the list)."""
    query = request.query_params
    field, site = identifier(query, "field"), identifier(query, "site")
    token = await console.auth.token(session)
    found = await _devices(session, console, token, field, site)
    return json_response({"devices": [convert.device(d) for d in found]})


@endpoint()
async def latest(request: Request, session: Session, console: Console) -> Response:
    """The newest reading of every series (``field``, ``site``, ``device``, ``metric``)."""
    query = request.query_params
    selector = common_pb2.SeriesSelector(
        site=identifier(query, "site"),
        device=identifier(query, "device"),
        metric=identifier(query, "metric"),
    )
    field = identifier(query, "field")
    token = await console.auth.token(session)
    b = console.backend

    async def ask(name: str) -> list[Any]:
        chosen = common_pb2.SeriesSelector()
        chosen.CopyFrom(selector)
        chosen.field = name

        async def page(p: common_pb2.PageRequest) -> Any:
            request = monitoring_pb2.GetLatestRequest(selector=chosen, page=p)
            return await b.call("monitoring", b.monitoring.GetLatest, request, token)

        return await pages(page, "readings")

    found = await _per_field(session, field, ask)
    return json_response({"readings": [convert.reading(r) for r in found]})


@endpoint()
async def history_range(request: Request, session: Session, console: Console) -> Response:
    """One metric over the last ``since`` seconds in steps of ``step`` seconds (chosen for
    about 240 points when absent), combined by ``agg``."""
    query = request.query_params
    selector = common_pb2.SeriesSelector(
        field=identifier(query, "field", required=True),
        site=identifier(query, "site"),
        device=identifier(query, "device"),
        metric=identifier(query, "metric", required=True),
    )
    since = integer(query, "since", 3600, 60, 366 * 86400)
    step = integer(query, "step", max(since // 240, 1), 0, 86400)
    aggregation = query.get("agg", "avg") or "avg"
    if aggregation not in _AGGREGATIONS:
        raise ApiError(400, f"agg: one of {', '.join(_AGGREGATIONS)}")
    start = Timestamp()
    start.FromSeconds(int(time.time()) - since)
    request_message = monitoring_pb2.QueryRangeRequest(
        selector=selector,
        time_range=common_pb2.TimeRange(start_time=start),
        step=Duration(seconds=step),
        aggregation=_AGGREGATIONS[aggregation],
        page=common_pb2.PageRequest(page_size=20),
    )
    token = await console.auth.token(session)
    b = console.backend
    reply = await b.call("monitoring", b.monitoring.QueryRange, request_message, token)
    return json_response(
        {
            "series": [convert.series(s) for s in reply.series],
            "step": step,
            "from_rollup": reply.from_rollup,
        }
    )


ROUTES: list[tuple[str, Callable[..., Any], list[str]]] = [
    ("/api/fields", fields, ["GET"]),
    ("/api/sites", sites, ["GET"]),
    ("/api/devices", devices, ["GET"]),
    ("/api/latest", latest, ["GET"]),
    ("/api/range", history_range, ["GET"]),
]
