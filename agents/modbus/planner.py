"""The read planner: as few Modbus requests as possible for the points due in a cycle.

Reading every tag with its own request is the classic reason gateways poll slowly: a round
trip per value. The planner sorts the due points of each data table by address and merges
neighbours into one request while the merged block stays within the device's cap (125
registers / 2,000 bits by the protocol, lower if the profile says so) and the unused gap
between two points is at most ``max_gap``. A device may refuse a merged read (an address its
firmware does not map, a read across two memory banks); the driver then learns *cuts*,
addresses a merged read must not cross (:mod:`smartcity.agents.modbus.refusals`), and the
planner keeps the rest of the device merged around them.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from smartcity.agents.profile import Function, ModbusPoint


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One Modbus read and the points decoded from its answer."""

    function: Function
    address: int
    count: int
    points: tuple[ModbusPoint, ...]

    def slice_for(self, point: ModbusPoint, values: list[int] | list[bool]) -> list:
        """The part of this request's answer that belongs to ``point``."""
        start = point.address - self.address
        return values[start : start + point.width]


def plan_reads(
    points: Iterable[ModbusPoint],
    *,
    max_gap: int,
    max_registers: int,
    max_bits: int,
    cuts: Mapping[Function, Collection[int]] | None = None,
) -> list[ReadRequest]:
    """Merge ``points`` into read requests; every point lands in exactly one request.

    A cut at address ``c`` forbids a request holding both ``c - 1`` and ``c``: cuts around a
    refused point leave it on its own, a cut in a refused gap keeps reads off both sides.
    """
    by_function: dict[Function, list[ModbusPoint]] = {}
    for point in points:
        by_function.setdefault(point.function, []).append(point)

    requests: list[ReadRequest] = []
    for function in Function:
        members = sorted(by_function.get(function, ()), key=lambda p: (p.address, p.width))
        cap = max_bits if function.is_bits else max_registers
        gap = max_gap * 16 if function.is_bits else max_gap
        walls = sorted((cuts or {}).get(function, ()))
        block: list[ModbusPoint] = []
        start = end = 0
        for point in members:
            point_end = point.address + point.width
            if (
                block
                and point.address - end <= gap
                and max(end, point_end) - start <= cap
                and not _crosses(walls, start, max(end, point_end))
            ):
                block.append(point)
                end = max(end, point_end)
                continue
            if block:
                requests.append(ReadRequest(function, start, end - start, tuple(block)))
            block, start, end = [point], point.address, point_end
        if block:
            requests.append(ReadRequest(function, start, end - start, tuple(block)))
    return requests


def _crosses(walls: list[int], start: int, end: int) -> bool:
    """Whether a request of addresses ``start..end-1`` holds both sides of a cut."""
    index = bisect.bisect_right(walls, start)
    return index < len(walls) and walls[index] < end
