"""What ``smartcity query`` prints: tables for people, JSON for scripts.

Tables show times in the machine's time zone with their age, values without trailing noise
and qualities in colour; JSON keeps UTC times (``...Z``) and every field of the answer, so a
script sees what the API said.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from rich.markup import escape
from rich.table import Table

__all__ = [
    "latest_table",
    "reading_json",
    "series_json",
    "series_table",
    "series_title",
    "span_text",
]

_QUALITY_STYLE = {"GOOD": "green", "BAD": "red", "UNCERTAIN": "yellow", "STALE": "yellow"}


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


def span_text(span: timedelta) -> str:
    """A step or roll-up width as it would be typed: ``5m``, ``1h``, ``1d``, ``90s``."""
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


def reading_json(item: Any) -> dict[str, Any]:
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


def series_json(item: Any) -> dict[str, Any]:
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


def latest_table(readings: list[Any]) -> Table:
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


def series_title(item: Any, aggregation: str, step: timedelta) -> str:
    what = "raw readings" if not step else f"{aggregation} per {span_text(step)}"
    return (
        f"[bold]{escape(item.field)}/{escape(item.site)}/{escape(item.device)} "
        f"{escape(item.metric)}[/bold] [{escape(item.unit)}], {what}"
    )


def series_table(item: Any) -> Table:
    table = Table()
    table.add_column("Time", no_wrap=True)
    table.add_column("Value", justify="right")
    table.add_column("Readings", justify="right")
    for point in item.points:
        table.add_row(_local(point.time), _number(point.value), str(point.count))
    return table
