"""A device's points as its server's nodes: each point bound to its node id (:class:`Tag`),
read in Read requests sized to the server's limits (:func:`read_tags`), a DataValue turned
into a reading with its quality and timestamps (:func:`reading_of`), and a value to write
encoded with the node's own data type (:func:`variant_for`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from asyncua import ua

from smartcity.agents.driver import DeviceStats, WriteRefusedError
from smartcity.agents.opcua.errors import SessionLostError, explain
from smartcity.agents.opcua.session import Session, batched
from smartcity.agents.opcua.status import quality_of
from smartcity.agents.profile import OpcuaDevice, OpcuaPoint
from smartcity.agents.reading import Quality, Reading, Value


@dataclass(frozen=True)
class Tag:
    """A profile point bound to its parsed node id and schedule."""

    handle: int
    point: OpcuaPoint
    node_id: ua.NodeId
    interval: float
    sampling: float


async def read_tags(
    session: Session, tags: Sequence[Tag], device: OpcuaDevice, stats: DeviceStats
) -> list[Reading]:
    """Read the Value of ``tags`` in as few Read requests as the limits allow."""

    async def read(batch: Sequence[Tag]) -> list[ua.DataValue]:
        params = ua.ReadParameters(
            MaxAge=0,
            TimestampsToReturn=ua.TimestampsToReturn.Both,
            NodesToRead=[
                ua.ReadValueId(NodeId=tag.node_id, AttributeId=ua.AttributeIds.Value)
                for tag in batch
            ],
        )
        stats.requests += 1
        return await session.client.uaclient.read(params)

    try:
        values = await batched(tags, session.read_chunk, read)
    except (ConnectionError, OSError, TimeoutError, ua.UaError) as exc:
        raise SessionLostError(session.lost or explain(exc, device)) from None
    now = time.time()
    return [reading_of(tag.point, value, now) for tag, value in zip(tags, values, strict=True)]


def reading_of(point: OpcuaPoint, data: ua.DataValue, now: float) -> Reading:
    """``point``'s reading from the DataValue the server sent: its status as the quality, its
    timestamps kept, and BAD with the reason for what is not a finite number or a bool."""
    quality, reason = quality_of(data.StatusCode)
    times = {
        "source_time": _seconds(data.SourceTimestamp),
        "server_time": _seconds(data.ServerTimestamp),
        "read_time": now,
    }
    if quality is Quality.BAD:
        return Reading(point.name, None, point.unit, Quality.BAD, reason, **times)
    variant = data.Value
    value = variant.Value if variant is not None else None
    if value is None:
        return Reading(point.name, None, point.unit, quality, reason or "no value", **times)
    if not isinstance(value, bool | int | float) or (variant is not None and variant.is_array):
        kind = variant.VariantType.name if variant is not None else type(value).__name__
        return Reading(
            point.name, None, point.unit, Quality.BAD, f"a {kind} is not a number or bool", **times
        )
    if isinstance(value, float) and not math.isfinite(value):
        return Reading(
            point.name, None, point.unit, Quality.BAD, f"not a finite number ({value})", **times
        )
    return Reading(point.name, value, point.unit, quality, reason, **times)


_OPC_NULL_TIME = datetime(1601, 1, 2, tzinfo=UTC)


def _seconds(moment: datetime | None) -> float | None:
    """Unix seconds; OPC-UA's MinDateTime (1601) means "not given"."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment < _OPC_NULL_TIME:
        return None
    return moment.timestamp()


_INTEGER_RANGES = {
    ua.VariantType.SByte: (-(2**7), 2**7 - 1),
    ua.VariantType.Byte: (0, 2**8 - 1),
    ua.VariantType.Int16: (-(2**15), 2**15 - 1),
    ua.VariantType.UInt16: (0, 2**16 - 1),
    ua.VariantType.Int32: (-(2**31), 2**31 - 1),
    ua.VariantType.UInt32: (0, 2**32 - 1),
    ua.VariantType.Int64: (-(2**63), 2**63 - 1),
    ua.VariantType.UInt64: (0, 2**64 - 1),
}
_FLOAT_MAX = 3.4028234663852886e38


def variant_for(name: str, value: Value, variant_type: ua.VariantType) -> ua.Variant:
    """``value`` encoded with the node's own data type, or a refusal saying why not."""
    if variant_type is ua.VariantType.Boolean:
        if isinstance(value, bool) or value in (0, 1):
            return ua.Variant(bool(value), variant_type)
        raise WriteRefusedError(f"{name}: the node is Boolean; {value!r} is not true/false or 0/1")
    if isinstance(value, bool):
        raise WriteRefusedError(f"{name}: the node is {variant_type.name}; a bool does not fit")
    if variant_type in (ua.VariantType.Float, ua.VariantType.Double):
        number = float(value)
        if not math.isfinite(number):
            raise WriteRefusedError(f"{name}: {value!r} is not a finite number")
        if variant_type is ua.VariantType.Float and abs(number) > _FLOAT_MAX:
            raise WriteRefusedError(f"{name}: {value!r} does not fit a Float")
        return ua.Variant(number, variant_type)
    if variant_type in _INTEGER_RANGES:
        if isinstance(value, float) and not value.is_integer():
            raise WriteRefusedError(
                f"{name}: the node is {variant_type.name}; {value!r} is not a whole number"
            )
        low, high = _INTEGER_RANGES[variant_type]
        if not low <= int(value) <= high:
            raise WriteRefusedError(
                f"{name}: {value!r} is outside the {variant_type.name} range {low}..{high}"
            )
        return ua.Variant(int(value), variant_type)
    if variant_type is ua.VariantType.Variant:  # BaseDataType or Number: keep the value's kind
        if isinstance(value, float):
            return ua.Variant(value, ua.VariantType.Double)
        return ua.Variant(int(value), ua.VariantType.Int64)
    raise WriteRefusedError(
        f"{name}: the node's data type is {variant_type.name}; only numbers and bools are written"
    )
