"""The read planner: as few Modbus requests as possible for the points due in a cycle.

Reading every tag with its own request is the classic reason gateways poll slowly: a round
trip per value. The planner sorts the due points of each data table by address and merges
neighbours into one request while the merged block stays within the device's cap (125
registers / 2,000 bits by the protocol, lower if the profile says so) and the unused gap
between two points is at most ``max_gap``. Some devices refuse a read that spans unmapped
addresses; the driver then asks for a plan with ``max_gap=0`` for that device.
"""

from __future__ import annotations

from collections.abc import Iterable
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
) -> list[ReadRequest]:
    """Merge ``points`` into read requests; every point lands in exactly one request."""
    by_function: dict[Function, list[ModbusPoint]] = {}
    for point in points:
        by_function.setdefault(point.function, []).append(point)

    requests: list[ReadRequest] = []
    for function in Function:
        members = sorted(by_function.get(function, ()), key=lambda p: (p.address, p.width))
        cap = max_bits if function.is_bits else max_registers
        gap = max_gap * 16 if function.is_bits else max_gap
        block: list[ModbusPoint] = []
        start = end = 0
        for point in members:
            point_end = point.address + point.width
            if block and point.address - end <= gap and max(end, point_end) - start <= cap:
                block.append(point)
                end = max(end, point_end)
                continue
            if block:
                requests.append(ReadRequest(function, start, end - start, tuple(block)))
            block, start, end = [point], point.address, point_end
        if block:
            requests.append(ReadRequest(function, start, end - start, tuple(block)))
    return requests
