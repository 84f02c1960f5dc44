"""Installing a third party's field plugin for real, without pip.

A distribution is a ``<name>-<version>.dist-info`` folder with ``METADATA`` and
``entry_points.txt`` next to its module on ``sys.path``: that is all importlib.metadata
(and so pluggy) looks at, so a plugin installed this way is discovered exactly as one
installed by pip would be.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

Install = Callable[..., str]

GOOD_PLUGIN = '''
"""Parking guidance, a third party's field."""

from smartcity.fields import (
    Aggregation, AlertRuleTemplate, Comparison, ConditionKind, DeviceProfileTemplate,
    Direction, FieldInfo, Kpi, Metric, Quality, Reading, RecordAccess, RecordType, Severity,
    hookimpl,
)


@hookimpl
def field_info():
    return FieldInfo(
        id="parking_guidance",
        pillar="mobility",
        title="Parking guidance",
        description="Free spaces shown on street signs",
    )


@hookimpl
def metrics():
    return [
        Metric("spaces_free", "{space}", "Free spaces", 0, 5000, value_type="int"),
        Metric("spaces_total", "{space}", "Spaces", 0, 5000, value_type="int"),
        Metric("occupancy", "%", "Occupied share", 0, 100),
    ]


@hookimpl
def kpis():
    return [
        Kpi(
            id="mean_occupancy", title="Occupancy", unit="%", description="Mean occupancy",
            direction=Direction.LOWER, aggregation=Aggregation.MEAN, metric="occupancy",
        )
    ]


@hookimpl
def alert_rules():
    return [
        AlertRuleTemplate(
            name="car_park_full", metric="occupancy", condition=ConditionKind.THRESHOLD,
            severity=Severity.WARNING, summary="Car park nearly full",
            comparison=Comparison.GE, threshold=95, hysteresis=5, for_seconds=300,
        ),
        AlertRuleTemplate(
            name="counter_silent", metric="spaces_free", condition=ConditionKind.NO_DATA,
            severity=Severity.CRITICAL, summary="Space counter silent", for_seconds=600,
        ),
    ]


@hookimpl
def record_types():
    return [
        RecordType(
            name="parking_permit", title="Resident parking permit",
            schema={
                "type": "object",
                "properties": {"citizen_id": {"type": "string"}, "plate": {"type": "string"}},
                "required": ["citizen_id", "plate"],
            },
            access=RecordAccess.OWNER, owner_property="citizen_id",
        )
    ]


@hookimpl
def device_profiles():
    return [
        DeviceProfileTemplate(
            name="entrance-counter",
            description="Loop counter at a car-park entrance",
            profile={
                "field": "parking_guidance", "protocol": "modbus", "unit_id": 1,
                "poll_interval": "5s",
                "points": [
                    {"name": "spaces_free", "unit": "{space}", "address": 0,
                     "function": "input", "type": "uint16"},
                ],
            },
        )
    ]


@hookimpl
def derive(readings):
    by_name = {reading.metric: reading for reading in readings}
    free, total = by_name.get("spaces_free"), by_name.get("spaces_total")
    if free is None or total is None or not total.value:
        return []
    good = free.quality is Quality.GOOD and total.quality is Quality.GOOD
    return [
        Reading(
            metric="occupancy",
            value=100 * (1 - free.value / total.value),
            unit="%",
            timestamp=max(free.timestamp, total.timestamp),
            quality=Quality.GOOD if good else Quality.UNCERTAIN,
        )
    ]
'''


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Install]:
    """``install(dist, source, entry_point=..., version=...)`` installs a one-module
    distribution registering ``entry_point`` (default: the module name) in the
    ``smartcity.fields`` group; returns the module name."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    modules: list[str] = []

    def _install(
        dist: str,
        source: str,
        *,
        entry_point: str | None = None,
        version: str = "1.0.0",
        module: str | None = None,
    ) -> str:
        module = module or f"{dist.replace('-', '_')}_field"
        (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8"
        )
        (info / "entry_points.txt").write_text(
            f"[smartcity.fields]\n{entry_point or module} = {module}\n", encoding="utf-8"
        )
        modules.append(module)
        return module

    yield _install
    for module in modules:
        sys.modules.pop(module, None)


@pytest.fixture
def good_plugin_source() -> str:
    return GOOD_PLUGIN


def _plugin_source(
    field_id: str,
    *,
    pillar: str = "mobility",
    metrics: str = 'Metric("level", "m", "Water level", 0, 10)',
    kpis: str = (
        'Kpi(id="mean_level", title="Level", unit="m", description="Mean level", '
        'direction="lower", aggregation="mean", metric="level")'
    ),
    extra: str = "",
) -> str:
    """The source of a minimal field plugin, with parts replaceable to break it."""
    return f"""
from smartcity.fields import FieldInfo, Kpi, Metric, hookimpl


@hookimpl
def field_info():
    return FieldInfo(id={field_id!r}, pillar={pillar!r}, title="T", description="D")


@hookimpl
def metrics():
    return [{metrics}]


@hookimpl
def kpis():
    return [{kpis}]

{extra}
"""


@pytest.fixture
def plugin_source() -> Callable[..., str]:
    """``plugin_source(field_id, pillar=..., metrics=..., kpis=..., extra=...)``: the source of
    a minimal valid field plugin whose parts a test replaces to break it."""
    return _plugin_source
