"""Protobuf answers as the JSON the page reads: lower-case enum words, times in milliseconds
since the epoch (what ``Date`` and the chart take), absent values as ``null``."""

from __future__ import annotations

import math
from typing import Any

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from smartcity.alerts.v1 import alerts_pb2
from smartcity.common.v1 import common_pb2
from smartcity.monitoring.v1 import monitoring_pb2
from smartcity.records.v1 import records_pb2
from smartcity.telemetry.v1 import telemetry_pb2

__all__ = [
    "PILLARS",
    "alert",
    "alert_event",
    "device",
    "field",
    "millis",
    "reading",
    "series",
    "site_record",
    "summary",
]

PILLARS = ("governance", "citizen", "mobility", "living", "environment", "economy")
"""The six pillars of the city's programme, in the order the page shows them."""


def _word(name: str, prefix: str) -> str:
    """``QUALITY_GOOD`` -> ``good``; an unknown number stays ``unspecified``."""
    return name.removeprefix(prefix).lower() if name.startswith(prefix) else "unspecified"


def _enum(enum: Any, number: int, prefix: str) -> str:
    try:
        return _word(enum.Name(number), prefix)
    except ValueError:
        return "unspecified"


def millis(stamp: Timestamp) -> int | None:
    if stamp.seconds == 0 and stamp.nanos == 0:
        return None
    return stamp.seconds * 1000 + stamp.nanos // 1_000_000


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _principal(ref: common_pb2.PrincipalRef) -> str | None:
    return (ref.display_name or ref.id) or None


def reading(item: monitoring_pb2.DeviceReading) -> dict[str, Any]:
    r: telemetry_pb2.Reading = item.reading
    typed = r.WhichOneof("typed_value")
    stamp = r.source_time if r.HasField("source_time") else r.read_time
    return {
        "field": item.field,
        "site": item.site,
        "device": item.device,
        "metric": r.metric,
        "value": _finite(r.value) if r.HasField("value") else None,
        "text": str(getattr(r, typed)) if typed else None,
        "unit": r.unit,
        "quality": _enum(common_pb2.Quality, r.quality, "QUALITY_"),
        "reason": r.quality_reason,
        "time": millis(stamp) or millis(r.server_time),
    }


def device(item: monitoring_pb2.Device) -> dict[str, Any]:
    stats = item.stats if item.HasField("stats") else None
    return {
        "field": item.field,
        "site": item.site,
        "device": item.device,
        "agent": item.agent_id,
        "state": _enum(monitoring_pb2.DeviceState, item.state, "DEVICE_STATE_"),
        "last_seen": millis(item.last_seen_time),
        "state_since": millis(item.state_change_time),
        "poll_seconds": item.poll_interval.ToTimedelta().total_seconds() or None,
        "metrics": list(item.metrics),
        "connected": stats.connected if stats is not None else None,
        "last_error": stats.last_error if stats is not None else "",
    }


def field(item: monitoring_pb2.Field) -> dict[str, Any]:
    return {
        "id": item.id,
        "pillar": _enum(monitoring_pb2.Pillar, item.pillar, "PILLAR_"),
        "name": item.display_name or item.id,
        "description": item.description,
        "metrics": [
            {
                "name": m.name,
                "unit": m.unit,
                "description": m.description,
                "min": m.min_value if m.HasField("min_value") else None,
                "max": m.max_value if m.HasField("max_value") else None,
            }
            for m in item.metrics
        ],
    }


def summary(item: monitoring_pb2.FieldSummary) -> dict[str, Any]:
    return {
        "devices": item.device_count,
        "online": item.online_count,
        "stale": item.stale_count,
        "offline": item.offline_count,
        "unknown": item.unknown_count,
        "readings_last_hour": item.readings_last_hour,
        "kpis": [
            {
                "id": k.id,
                "name": k.display_name or k.id,
                "value": _finite(k.value),
                "unit": k.unit,
                "target": k.target if k.HasField("target") else None,
                "direction": _enum(monitoring_pb2.KpiDirection, k.direction, "KPI_DIRECTION_"),
                "description": k.description,
            }
            for k in item.kpis
        ],
    }


def series(item: monitoring_pb2.Series) -> dict[str, Any]:
    return {
        "field": item.field,
        "site": item.site,
        "device": item.device,
        "metric": item.metric,
        "unit": item.unit,
        "points": [
            [
                millis(p.time),
                _finite(p.value),
                p.count,
                _enum(common_pb2.Quality, p.quality, "QUALITY_"),
            ]
            for p in item.points
        ],
    }


def alert(item: alerts_pb2.Alert) -> dict[str, Any]:
    labels = dict(item.labels)
    return {
        "fingerprint": item.fingerprint,
        "rule": item.rule_id,
        "name": labels.get("alertname", item.rule_id),
        "state": _enum(alerts_pb2.AlertState, item.state, "ALERT_STATE_"),
        "severity": _enum(alerts_pb2.Severity, item.severity, "SEVERITY_"),
        "field": item.field,
        "site": labels.get("site", ""),
        "device": labels.get("device", ""),
        "metric": labels.get("metric", ""),
        "labels": labels,
        "summary": item.annotations.get("summary", ""),
        "value": _finite(item.value),
        "active_since": millis(item.active_time),
        "firing_since": millis(item.start_time),
        "ended": millis(item.end_time),
        "acknowledged_by": _principal(item.acknowledged_by),
        "acknowledged_at": millis(item.acknowledge_time),
        "acknowledge_comment": item.acknowledge_comment,
        "assignee": _principal(item.assignee),
        "silenced": bool(item.silenced_by),
        "inhibited": bool(item.inhibited_by),
        "escalation_level": item.escalation_level,
        "updated": millis(item.update_time),
    }


def alert_event(item: alerts_pb2.AlertEvent) -> dict[str, Any]:
    return {
        "id": item.event_id,
        "type": _enum(alerts_pb2.AlertEvent.Type, item.type, "TYPE_"),
        "time": millis(item.event_time),
        "revision": item.revision,
        "actor": _principal(item.actor),
        "comment": item.comment,
        "alert": alert(item.alert),
    }


def _number(value: Any, low: float, high: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and low <= number <= high else None


def site_record(record: records_pb2.Record) -> dict[str, Any] | None:
    """A ``site`` record as a point on the map, or ``None`` when it has no usable location.
    The site id that devices report is ``site_id`` (or ``id``) of the data, else the
    record's own id; ``name_vi`` is the Vietnamese name, ``name`` when there is none."""
    data = json_format.MessageToDict(record.data)
    location = data.get("location")
    if not isinstance(location, dict):
        return None
    lat = _number(location.get("lat"), -90, 90)
    lon = _number(location.get("lon"), -180, 180)
    if lat is None or lon is None:
        return None
    site_id = next(
        (data[key] for key in ("site_id", "id") if isinstance(data.get(key), str) and data[key]),
        record.id,
    )
    name = data["name"] if isinstance(data.get("name"), str) and data["name"] else site_id
    name_vi = data["name_vi"] if isinstance(data.get("name_vi"), str) and data["name_vi"] else name
    return {"id": site_id, "name": name, "name_vi": name_vi, "lat": lat, "lon": lon}
