"""Energy: demand management, consumption and the rooftop-solar potential.

Da Nang takes all of its electricity from the national grid and has no power plant of its
own, renewable or otherwise (Tuong 2021, 4.2 (5)). Its tasks are a database for
energy-demand management and one of rooftop-solar potential (Tuong 2021, 4.1): the field
measures what public buildings and large consumers draw, and what rooftop PV systems and
irradiance sensors show can be produced on the city's roofs.
"""

from __future__ import annotations

from smartcity.fields import (
    Aggregation,
    Direction,
    FieldInfo,
    Kpi,
    Metric,
    MetricKind,
    Pillar,
    ValueType,
    hookimpl,
)

FIELD_ID = "energy"
MONTH = 30 * 24 * 3600


@hookimpl
def field_info() -> FieldInfo:
    return FieldInfo(
        id=FIELD_ID,
        pillar=Pillar.ENVIRONMENT,
        title="Energy",
        description=(
            "Energy demand and consumption of buildings and large consumers, rooftop solar "
            "generation and solar potential"
        ),
    )


@hookimpl
def metrics() -> list[Metric]:
    return [
        Metric(
            "energy_consumption",
            "kWh",
            "Energy consumed by the site (meter register)",
            0,
            kind=MetricKind.COUNTER,
        ),
        Metric("power_demand", "kW", "Active power drawn by the site", 0, 100000),
        Metric("rooftop_pv_power", "kW", "AC output of the site's rooftop PV inverters", 0, 10000),
        Metric(
            "rooftop_pv_energy",
            "kWh",
            "Energy produced by the rooftop PV inverters (register)",
            0,
            kind=MetricKind.COUNTER,
        ),
        Metric(
            "grid_export_energy",
            "kWh",
            "Energy fed back into the grid (meter register)",
            0,
            kind=MetricKind.COUNTER,
        ),
        Metric(
            "solar_irradiance",
            "W/m2",
            "Global irradiance on the plane of the array",
            0,
            1500,
        ),
        Metric("pv_module_temperature", "degC", "PV module back-surface temperature", -10, 100),
        Metric(
            "inverter_state",
            "{state}",
            "Operating state of a PV inverter",
            kind=MetricKind.STATE,
            value_type=ValueType.INT,
            states={0: "standby", 1: "producing", 2: "fault"},
        ),
    ]


@hookimpl
def kpis() -> list[Kpi]:
    return [
        Kpi(
            id="solar_share",
            title="Consumption covered by rooftop solar",
            unit="%",
            description="Rooftop PV energy as a share of energy consumed, over 30 days",
            direction=Direction.HIGHER,
            aggregation=Aggregation.RATIO,
            metric="rooftop_pv_energy",
            denominator="energy_consumption",
            scale=100,
            window_seconds=MONTH,
        ),
        Kpi(
            id="peak_demand",
            title="Peak demand",
            unit="kW",
            description="Highest active power drawn over 30 days",
            direction=Direction.LOWER,
            aggregation=Aggregation.MAX,
            metric="power_demand",
            window_seconds=MONTH,
        ),
        Kpi(
            id="monthly_consumption",
            title="Energy consumed",
            unit="kWh",
            description="Energy consumed over 30 days",
            direction=Direction.LOWER,
            aggregation=Aggregation.INCREASE,
            metric="energy_consumption",
            window_seconds=MONTH,
        ),
    ]
