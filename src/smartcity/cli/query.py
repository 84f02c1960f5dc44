"""``smartcity query``: ask a monitoring service what the city measures, from a terminal.

``query latest`` shows the newest reading of every matching series; ``query range`` shows a
series over time, aggregated into steps. Both speak the public gRPC API, exactly as any
city application does, so what they print is what the API answers: tables for people,
``--json`` for scripts. Times are shown in the machine's time zone and given to ``--start``
and ``--end`` in ISO 8601 (a time without a zone is local time).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import grpc
import grpc.aio
import typer
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from smartcity.cli.errors import fail

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

_T = TypeVar("_T")

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

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
_QUALITY_STYLE = {"GOOD": "green", "BAD": "red", "UNCERTAIN": "yellow", "STALE": "yellow"}


class Agg(StrEnum):
    AVG = "avg"
    MIN = "min"
    MAX = "max"
    LAST = "last"
    COUNT = "count"
    SUM = "sum"


def parse_duration(text: str) -> timedelta:
    """``90s``, ``1m``, ``1h30m``, ``7d``, ``500ms``; ``0`` is zero. Raises ``ValueError``."""
    cleaned = text.strip().lower()
    if cleaned == "0":
        return timedelta(0)
    if not cleaned or _DURATION_PART.sub("", cleaned):
        raise ValueError(
            f"{text!r} is not a duration: use a number and a unit, e.g. 30s, 5m, 1h30m, 7d "
            "(units ms, s, m, h, d, w)"
        )
    return sum(
        (float(amount) * _UNITS[unit] for amount, unit in _DURATION_PART.findall(cleaned)),
        timedelta(0),
    )


def parse_time(text: str) -> datetime:
    """An ISO 8601 instant (``2026-11-22T08:00``, ``...Z``, ``...+07:00``); without a zone it
    is local time. Raises ``ValueError``."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO 8601 time, e.g. 2026-11-22T08:00:00+07:00"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.astimezone()


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
        typer.echo(json.dumps([_reading_json(item) for item in readings], indent=2))
        return
    Console().print(_latest_table(readings))


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
            "series": [_series_json(item) for item in series],
        }
        typer.echo(json.dumps(document, indent=2))
        return
    console = Console()
    if not series:
        console.print("no readings in that range", style="yellow")
        return
    for item in series:
        console.print(_series_title(item, agg.value, width), highlight=False)
        console.print(_series_table(item))
    if rollup is not None:
        console.print(f"served from the {_span(rollup)} roll-up", style="dim")


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

    try:
        return asyncio.run(run())
    except grpc.aio.AioRpcError as exc:
        _rpc_failed(target, exc)


def _rpc_failed(target: str, exc: grpc.aio.AioRpcError) -> NoReturn:
    code = exc.code()
    if code == grpc.StatusCode.UNAVAILABLE:
        fail(f"cannot reach the monitoring service at {target}: {exc.details()}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        fail(f"the monitoring service at {target} did not answer in time")
    usage = code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)
    fail(f"{code.name.lower().replace('_', ' ')}: {exc.details()}", 2 if usage else 1)


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


def _utc(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def _iso(stamp: Timestamp) -> str:
    return _utc(stamp).isoformat().replace("+00:00", "Z")


def _local(stamp: Timestamp) -> str:
    return _utc(stamp).astimezone().isoformat(sep=" ", timespec="seconds")


def _quality(value: int) -> str:
    from smartcity.common.v1 import common_pb2

    return common_pb2.Quality.Name(value).removeprefix("QUALITY_")  # type: ignore[arg-type]


def _value(reading: Any) -> float | None:
    return reading.value if reading.HasField("value") else None


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def _span(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    if seconds <= 0 or span != timedelta(seconds=seconds):
        return f"{span.total_seconds():g}s"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _age(stamp: Timestamp) -> str:
    seconds = (datetime.now(UTC) - _utc(stamp)).total_seconds()
    if seconds < 0:
        return "in the future"
    if seconds < 1:
        return "now"
    parts = []
    rest = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size and len(parts) < 2:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts) + " ago"


def _reading_json(item: Any) -> dict[str, Any]:
    reading = item.reading
    return {
        "field": item.field,
        "site": item.site,
        "device": item.device,
        "metric": reading.metric,
        "value": _value(reading),
        "unit": reading.unit,
        "quality": _quality(reading.quality),
        "quality_reason": reading.quality_reason,
        "time": _iso(reading.read_time),
        "sequence": reading.sequence,
    }


def _series_json(item: Any) -> dict[str, Any]:
    return {
        "field": item.field,
        "site": item.site,
        "device": item.device,
        "metric": item.metric,
        "unit": item.unit,
        "points": [
            {"time": _iso(point.time), "value": point.value, "count": point.count}
            for point in item.points
        ],
    }


def _latest_table(readings: list[Any]) -> Table:
    table = Table(title=f"{len(readings)} series", title_justify="left")
    for name, options in (
        ("Field", {"no_wrap": True}),
        ("Site", {"no_wrap": True}),
        ("Device", {"no_wrap": True}),
        ("Metric", {"no_wrap": True}),
        ("Value", {"justify": "right"}),
        ("Unit", {"no_wrap": True}),
        ("Quality", {}),
        ("Time", {"no_wrap": True}),
    ):
        table.add_column(name, **options)
    for item in readings:
        reading = item.reading
        quality = _quality(reading.quality)
        style = _QUALITY_STYLE.get(quality, "")
        shown = f"[{style}]{quality}[/{style}]" if style else quality
        if reading.quality_reason:
            shown += f" {escape(reading.quality_reason)}"
        table.add_row(
            escape(item.field),
            escape(item.site),
            escape(item.device),
            escape(reading.metric),
            _number(_value(reading)),
            escape(reading.unit),
            shown,
            f"{_local(reading.read_time)} ({_age(reading.read_time)})",
        )
    return table


def _series_title(item: Any, aggregation: str, step: timedelta) -> str:
    what = "raw readings" if not step else f"{aggregation} per {_span(step)}"
    return (
        f"[bold]{escape(item.field)}/{escape(item.site)}/{escape(item.device)} "
        f"{escape(item.metric)}[/bold] [{escape(item.unit)}], {what}"
    )


def _series_table(item: Any) -> Table:
    table = Table()
    table.add_column("Time", no_wrap=True)
    table.add_column("Value", justify="right")
    table.add_column("Readings", justify="right")
    for point in item.points:
        table.add_row(_local(point.time), _number(point.value), str(point.count))
    return table
