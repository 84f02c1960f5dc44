"""``smartcity query``: ask a monitoring service what the city measures, from a terminal.

``query latest`` shows the newest reading of every matching series; ``query range`` shows a
series over time, aggregated into steps. Both speak the public gRPC API, exactly as any
city application does, so what they print is what the API answers: tables for people,
``--json`` for scripts. Times are shown in the machine's time zone and given to ``--start``
and ``--end`` in ISO 8601 (a time without a zone is local time).

This module holds the commands and how they ask the service; the tables and JSON they
print are :mod:`.query_output`, durations and times as typed :mod:`.times`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console

from smartcity.cli.errors import fail, run_rpc
from smartcity.cli.query_output import (
    latest_table,
    reading_json,
    series_json,
    series_table,
    series_title,
    span_text,
)
from smartcity.cli.times import parse_duration, parse_time

__all__ = ["parse_duration", "parse_time", "query_app"]

query_app = typer.Typer(
    name="query",
    help="Latest values and time ranges from a monitoring service.",
    no_args_is_help=True,
)
"""The ``query`` group: ``latest`` and ``range``."""

TARGET_ENV = "SMARTCITY_MONITORING_TARGET"
TOKEN_ENV = "SMARTCITY_TOKEN"
_PAGE_SIZE = 1000


FieldOption = Annotated[str | None, typer.Option("--field", "-f", help="Field id.")]
SiteOption = Annotated[str | None, typer.Option("--site", "-s", help="Site id.")]
DeviceOption = Annotated[str | None, typer.Option("--device", "-d", help="Device id.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead.")]
TargetOption = Annotated[
    str | None,
    typer.Option(
        "--target",
        "-t",
        envvar=TARGET_ENV,
        help="Monitoring service host:port (default: grpc.host and grpc.port of the "
        "configuration, port 50051 when it is 0; "
        "configuration).",
        show_envvar=True,
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar=TOKEN_ENV,
        help="Access token from the identity service (sent as a bearer token).",
        show_envvar=True,
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", dir_okay=False, help="YAML configuration (default: $SMARTCITY_CONFIG)."
    ),
]
TimeoutOption = Annotated[
    float, typer.Option("--timeout", min=0.1, help="Seconds to wait for the answer.")
]


class Agg(StrEnum):
    AVG = "avg"
    MIN = "min"
    MAX = "max"
    LAST = "last"
    COUNT = "count"
    SUM = "sum"


# -- commands ----------------------------------------------------------------------------------


@query_app.command("latest")
def latest_command(
    field: FieldOption = None,
    site: SiteOption = None,
    device: DeviceOption = None,
    metric: Annotated[str | None, typer.Option("--metric", "-m", help="Metric name.")] = None,
    json_output: JsonOption = False,
    target: TargetOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
    timeout: TimeoutOption = 10.0,
) -> None:
    """The newest reading of every series the filters match (no filter: all of them)."""
    from smartcity.common.v1 import common_pb2
    from smartcity.monitoring.v1 import monitoring_pb2

    selector = common_pb2.SeriesSelector(
        field=field or "", site=site or "", device=device or "", metric=metric or ""
    )

    async def ask(stub: Any) -> list[Any]:
        readings: list[Any] = []
        page_token = ""
        while True:
            response = await stub.GetLatest(
                monitoring_pb2.GetLatestRequest(
                    selector=selector,
                    page=common_pb2.PageRequest(page_size=_PAGE_SIZE, page_token=page_token),
                ),
                timeout=timeout,
            )
            readings.extend(response.readings)
            page_token = response.page.next_page_token
            if not page_token:
                return readings

    readings = _call(_resolve_target(target, config), token, timeout, ask)
    if json_output:
        typer.echo(json.dumps([reading_json(item) for item in readings], indent=2))
        return
    Console().print(latest_table(readings))


@query_app.command("range")
def range_command(
    metric: Annotated[str, typer.Option("--metric", "-m", help="Metric name.")],
    field: FieldOption = None,
    site: SiteOption = None,
    device: DeviceOption = None,
    since: Annotated[
        str | None,
        typer.Option(help="How far back from now, e.g. 1h, 7d (default 1h)."),
    ] = None,
    start: Annotated[str | None, typer.Option(help="Start, ISO 8601 (instead of --since).")] = None,
    end: Annotated[str | None, typer.Option(help="End, ISO 8601 (default: now).")] = None,
    step: Annotated[
        str,
        typer.Option(help="Step width, e.g. 1m, 1h; 0 for the raw readings."),
    ] = "1m",
    agg: Annotated[
        Agg, typer.Option("--agg", "-a", help="How the readings of a step are combined.")
    ] = Agg.AVG,
    json_output: JsonOption = False,
    target: TargetOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
    timeout: TimeoutOption = 30.0,
) -> None:
    """A metric over time: one value per step and series (GOOD readings only)."""
    from smartcity.common.v1 import common_pb2
    from smartcity.monitoring.v1 import monitoring_pb2

    start_time, end_time = _time_range(since, start, end)
    try:
        width = parse_duration(step)
    except ValueError as exc:
        fail(f"--step: {exc}", 2)
    aggregation = monitoring_pb2.Aggregation.Value(f"AGGREGATION_{agg.name}")
    time_range = common_pb2.TimeRange(start_time=_timestamp(start_time))
    if end_time is not None:
        time_range.end_time.CopyFrom(_timestamp(end_time))
    step_message = Duration()
    step_message.FromTimedelta(width)
    selector = common_pb2.SeriesSelector(
        field=field or "", site=site or "", device=device or "", metric=metric
    )

    async def ask(stub: Any) -> tuple[list[Any], Any]:
        series: list[Any] = []
        page_token = ""
        while True:
            response = await stub.QueryRange(
                monitoring_pb2.QueryRangeRequest(
                    selector=selector,
                    time_range=time_range,
                    step=step_message,
                    aggregation=aggregation,
                    page=common_pb2.PageRequest(page_size=_PAGE_SIZE, page_token=page_token),
                ),
                timeout=timeout,
            )
            series.extend(response.series)
            page_token = response.page.next_page_token
            if not page_token:
                return series, response

    series, last = _call(_resolve_target(target, config), token, timeout, ask)
    rollup = last.rollup_resolution.ToTimedelta() if last.from_rollup else None
    if json_output:
        document = {
            "from_rollup": last.from_rollup,
            "rollup_resolution_seconds": rollup.total_seconds() if rollup else None,
            "series": [series_json(item) for item in series],
        }
        typer.echo(json.dumps(document, indent=2))
        return
    console = Console()
    if not series:
        console.print("no readings in that range", style="yellow")
        return
    for item in series:
        console.print(series_title(item, agg.value, width), highlight=False)
        console.print(series_table(item))
    if rollup is not None:
        console.print(f"served from the {span_text(rollup)} roll-up", style="dim")


# -- plumbing ----------------------------------------------------------------------------------


def _resolve_target(target: str | None, config: Path | None) -> str:
    if target:
        return target
    from smartcity.runtime.config import ConfigError, load_settings

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        fail(exc, 2)
    from smartcity.services.monitoring.server import DEFAULT_PORT

    port = settings.grpc.port or DEFAULT_PORT
    host = settings.grpc.host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _call(target: str, token: str | None, timeout: float, ask: Callable[[Any], Any]) -> Any:
    """Run ``ask(stub)`` on a channel to ``target``; a gRPC failure becomes one line."""
    from smartcity.monitoring.v1 import monitoring_pb2_grpc
    from smartcity.runtime.grpc_client import channel

    if token is not None and not token.strip():
        fail("--token is empty", 2)

    async def run() -> Any:
        async with channel(target, token=token) as connection:
            return await ask(monitoring_pb2_grpc.MonitoringServiceStub(connection))

    return run_rpc("monitoring", target, run)


def _time_range(
    since: str | None, start: str | None, end: str | None
) -> tuple[datetime, datetime | None]:
    if since is not None and (start is not None or end is not None):
        fail("give either --since or --start/--end, not both", 2)
    if start is None:
        if end is not None:
            fail("--end needs --start", 2)
        try:
            back = parse_duration(since or "1h")
        except ValueError as exc:
            fail(f"--since: {exc}", 2)
        if back <= timedelta(0):
            fail("--since must be longer than 0", 2)
        return datetime.now(UTC) - back, None
    try:
        begin = parse_time(start)
        finish = parse_time(end) if end is not None else None
    except ValueError as exc:
        fail(exc, 2)
    return begin, finish


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp
