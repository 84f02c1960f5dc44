"""Read planner: fewest requests within the protocol's and the device's limits."""

from __future__ import annotations

from smartcity.agents.modbus.planner import plan_reads
from smartcity.agents.profile import ModbusPoint


def p(name: str, address: int, type_: str = "uint16", function: str = "holding", **kw: object):
    return ModbusPoint(name=name, address=address, type=type_, function=function, **kw)


def plan(points: list[ModbusPoint], max_gap: int = 8, max_registers: int = 125, max_bits=2000):
    return plan_reads(points, max_gap=max_gap, max_registers=max_registers, max_bits=max_bits)


def covered(requests) -> list[str]:
    return sorted(point.name for request in requests for point in request.points)


def test_neighbours_merge_into_one_request() -> None:
    points = [p("a", 0, "float32"), p("b", 2, "float32"), p("c", 4), p("d", 10, "uint32")]
    (request,) = plan(points)
    assert (request.address, request.count) == (0, 12)
    assert covered([request]) == ["a", "b", "c", "d"]


def test_gap_larger_than_allowed_splits() -> None:
    requests = plan([p("a", 0), p("b", 5), p("c", 20)], max_gap=4)
    assert [(r.address, r.count) for r in requests] == [(0, 6), (20, 1)]


def test_zero_gap_reads_only_contiguous_blocks() -> None:
    requests = plan([p("a", 0), p("b", 1), p("c", 3)], max_gap=0)
    assert [(r.address, r.count) for r in requests] == [(0, 2), (3, 1)]


def test_protocol_limit_of_125_registers() -> None:
    points = [p(f"r{i}", i * 2, "float32") for i in range(100)]  # 200 registers, contiguous
    requests = plan(points)
    assert [r.count for r in requests] == [124, 76]
    assert all(r.count <= 125 for r in requests)
    assert covered(requests) == sorted(pt.name for pt in points)


def test_device_cap_is_honoured() -> None:
    requests = plan([p(f"r{i}", i) for i in range(50)], max_registers=16)
    assert max(r.count for r in requests) == 16
    assert len(requests) == 4


def test_tables_are_planned_separately_and_bits_in_bit_requests() -> None:
    points = [
        p("h", 0),
        p("i", 0, function="input"),
        p("c1", 0, "bool", function="coil"),
        p("c2", 100, "bool", function="coil"),
        p("c3", 3000, "bool", function="coil"),
    ]
    requests = plan(points)
    by_table = {(r.function.value, r.address): r.count for r in requests}
    assert by_table == {("holding", 0): 1, ("input", 0): 1, ("coil", 0): 101, ("coil", 3000): 1}


def test_bits_of_one_register_share_a_read() -> None:
    requests = plan([p("s1", 7, "bool", bit=0), p("s2", 7, "bool", bit=9), p("w", 8)])
    (request,) = requests
    assert (request.address, request.count) == (7, 2)
    assert request.slice_for(request.points[2], [11, 22]) == [22]


def test_planner_never_exceeds_limits_on_a_large_random_layout() -> None:
    import random

    rng = random.Random(7)
    points, address = [], 0
    for i in range(600):
        type_ = rng.choice(["uint16", "float32", "float64", "int32"])
        address += rng.choice([0, 0, 1, 3, 30])
        points.append(p(f"x{i}", address, type_))
        address += ModbusPoint(name="t", address=0, type=type_).width
    requests = plan(points, max_gap=8)
    assert covered(requests) == sorted(pt.name for pt in points)
    for request in requests:
        assert request.count <= 125
        for point in request.points:
            assert request.address <= point.address
            assert point.address + point.width <= request.address + request.count
    # merging helps: far fewer requests than points
    assert len(requests) < len(points) / 5
