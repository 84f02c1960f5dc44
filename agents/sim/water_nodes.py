"""The water station's OPC-UA address space: its variables, the nodes that hold them, and how
a change of a node reaches a subscriber.

Every variable is a node ``ns=<namespace>;s=<station>.<variable>`` under the station object
(``Station1``) in the namespace :data:`NAMESPACE_URI`; a variable with a unit says it in the
node's description (``Outflow to the network [m3/h]``), and the set-points are writable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from asyncua import Server, ua
from asyncua.common.node import Node
from asyncua.server.monitored_item_service import MonitoredItemService, MonitoredItemValues

from smartcity.agents.sim.water_model import PUMPS

__all__ = ["BY_NAME", "NAMESPACE_URI", "VARIABLES", "Variable", "add_station"]

NAMESPACE_URI = "urn:smartcity:sim:water-station"


@dataclass(frozen=True)
class Variable:
    """One node of the station: its browse name, unit and OPC-UA type."""

    name: str
    unit: str
    kind: ua.VariantType = ua.VariantType.Double
    writable: bool = False
    description: str = ""


VARIABLES: tuple[Variable, ...] = (
    Variable("Flow", "m3/h", description="Outflow to the network"),
    Variable("TotalVolume", "m3", description="Outflow totaliser"),
    Variable("Pressure", "bar", description="Discharge pressure"),
    Variable("TankLevel", "m", description="Clear-water tank level"),
    Variable("LevelSetpoint", "m", writable=True, description="Tank level set-point"),
    Variable("Turbidity", "NTU", description="Treated-water turbidity"),
    Variable("pH", "pH", description="Treated-water pH"),
    Variable("Salinity", "g/kg", description="Raw-water salinity at the intake (per mille)"),
    Variable("ResidualChlorine", "mg/L", description="Free residual chlorine at the outlet"),
    Variable("ChlorineDoseSetpoint", "mg/L", writable=True, description="Chlorine dose set-point"),
    *(
        Variable(f"Pump{n}.Running", "", ua.VariantType.Boolean, description=f"Pump {n} running")
        for n in range(1, PUMPS + 1)
    ),
)
BY_NAME = {variable.name: variable for variable in VARIABLES}


async def add_station(
    server: Server,
    name: str,
    idx: int,
    values: Mapping[str, float | bool],
    extra_tags: int,
) -> tuple[Node, dict[str, ua.NodeId]]:
    """Add the station object ``name``, in the namespace of index ``idx``, with a node per
    variable holding ``values`` and ``extra_tags`` static Double nodes (``Load.Tag00001``...);
    the object and the node id of each variable."""
    station = await server.nodes.objects.add_object(
        ua.NodeId(name, idx), ua.QualifiedName(name, idx)
    )
    nodes: dict[str, ua.NodeId] = {}
    for variable in VARIABLES:
        node = await station.add_variable(
            ua.NodeId(f"{name}.{variable.name}", idx),
            ua.QualifiedName(variable.name, idx),
            ua.Variant(values[variable.name], variable.kind),
            varianttype=variable.kind,
        )
        if variable.unit:
            await node.write_attribute(
                ua.AttributeIds.Description,
                ua.DataValue(
                    ua.Variant(ua.LocalizedText(f"{variable.description} [{variable.unit}]"))
                ),
            )
        if variable.writable:
            await node.set_writable()
        nodes[variable.name] = node.nodeid
    for number in range(1, extra_tags + 1):
        tag = f"Load.Tag{number:05d}"
        node = await station.add_variable(
            ua.NodeId(f"{name}.{tag}", idx),
            ua.QualifiedName(tag, idx),
            ua.Variant(number * 0.25, ua.VariantType.Double),
        )
    return station, nodes


def _deadband_exceeded(
    self: MonitoredItemService, values: MonitoredItemValues, flt: ua.DataChangeFilter
) -> bool:
    """An absolute deadband as OPC 10000-4 §7.22.2 defines it: a change of status is always
    reported, and so is a value that appears or disappears (a Bad status carries none)."""
    current, previous = values.get_current_datavalue(), values.get_old_datavalue()
    if current is None or previous is None or flt.DeadbandType != ua.DeadbandType.Absolute:
        return True
    if (current.StatusCode or ua.StatusCode()) != (previous.StatusCode or ua.StatusCode()):
        return True
    now = current.Value.Value if current.Value is not None else None
    before = previous.Value.Value if previous.Value is not None else None
    if not isinstance(now, int | float) or not isinstance(before, int | float):
        return bool(now != before)
    return abs(now - before) > flt.DeadbandValue


# asyncua 2.1.0's server compares only values under a deadband: a status change within the
# deadband is never notified, and a value turning Null (every Bad status) raises TypeError
# inside the server so that notification is lost too. A monitored item with a deadband would
# then never see the faults this simulator exists to show; this restores the standard rule
# for the servers of this process.
MonitoredItemService._is_deadband_exceeded = _deadband_exceeded  # type: ignore[method-assign]
