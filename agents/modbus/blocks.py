"""A planned read compiled once and reused every cycle (:class:`Block`): the request, its
decoder (:class:`~smartcity.agents.modbus.codec.BlockDecoder`, where byte and word order are
applied) and what turns the decoded values into readings; and, for a merged read the device
refuses, where to split it in two (:func:`split_index`, :func:`block_of`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from smartcity.agents.modbus.codec import BlockDecoder
from smartcity.agents.modbus.planner import ReadRequest
from smartcity.agents.profile import DataType, Function, ModbusPoint
from smartcity.agents.reading import Quality, Reading

_new_tuple = tuple.__new__  # builds a Reading without its constructor: the per-value hot path


class Block:
    """A planned read, compiled once and reused every cycle: the request, its decoder
    (:class:`~smartcity.agents.modbus.codec.BlockDecoder`) and what turns the decoded values
    into readings."""

    def __init__(self, request: ReadRequest) -> None:
        self.request = request
        self.function = request.function
        self.address = request.address
        self.count = request.count
        self.points = request.points
        self.metrics = tuple(point.name for point in request.points)
        self.units = tuple(point.unit for point in request.points)
        self.floats = tuple(
            point.type in (DataType.FLOAT32, DataType.FLOAT64)
            or point.scale != 1
            or point.offset != 0
            for point in request.points
        )
        self.any_float = any(self.floats)
        # Engineering values of the request's points, in ``self.points`` order.
        self.values = BlockDecoder(request).values

    def readings(
        self, answer: Sequence[int] | Sequence[bool], now: float, raw: bytes | None = None
    ) -> list[Reading]:
        values = self.values(answer, raw)
        good, bad = Quality.GOOD, Quality.BAD
        if not self.any_float or math.isfinite(sum(values)):
            # Nothing to judge (a sum is finite only if every term is): the fast path.
            return [
                _new_tuple(Reading, (metric, value, unit, good, "", None, now, None))
                for metric, unit, value in zip(self.metrics, self.units, values, strict=True)
            ]
        readings = []
        isfinite = math.isfinite
        for metric, unit, value, is_float in zip(
            self.metrics, self.units, values, self.floats, strict=True
        ):
            if is_float and not isfinite(value):
                readings.append(
                    Reading(metric, None, unit, bad, f"not a finite number ({value})", None, now)
                )
            else:
                readings.append(Reading(metric, value, unit, good, "", None, now))
        return readings


def split_index(points: Sequence[ModbusPoint]) -> int | None:
    """Where to split address-sorted ``points`` in two: at the widest gap between them, or
    as near the middle as points sharing a register allow; None if they cannot be split."""
    best: int | None = None
    best_key = (0, 0)
    end = points[0].address + points[0].width
    for index in range(1, len(points)):
        point = points[index]
        if point.address >= end:
            key = (point.address - end, -abs(2 * index - len(points)))
            if best is None or key > best_key:
                best, best_key = index, key
        end = max(end, point.address + point.width)
    return best


def block_of(function: Function, points: Sequence[ModbusPoint]) -> Block:
    """The block that reads address-sorted ``points`` of ``function`` in one request."""
    start = points[0].address
    end = max(p.address + p.width for p in points)
    return Block(ReadRequest(function, start, end - start, tuple(points)))
