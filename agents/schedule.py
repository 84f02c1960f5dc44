"""When to read what: a device's points grouped by poll interval (the fast class, the slow
class, and points with an ``interval`` of their own), each group due at its own ticks.

The agent's device loop asks :meth:`Schedule.due` which points to read now and sleeps until
:meth:`Schedule.next_wakeup`; the same schedule for every protocol. A cycle that overran
(a slow device, a timeout) skips the ticks it missed rather than bursting to catch up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from smartcity.agents.profile import DeviceBase, PointBase


class Schedule:
    """The points of one device grouped by their interval; a group is due when its next tick
    has come."""

    def __init__(self, profile: DeviceBase, now: float) -> None:
        by_interval: dict[float, list[PointBase]] = {}
        for point in profile.points:
            by_interval.setdefault(profile.interval_of(point), []).append(point)
        self.intervals = sorted(by_interval)
        self.points = [tuple(by_interval[interval]) for interval in self.intervals]
        self.next_due = [now] * len(self.intervals)
        self._combined: dict[tuple[int, ...], tuple[tuple[str, ...], tuple[PointBase, ...]]] = {}

    def due(self, now: float) -> tuple[int, ...]:
        """Indices of the groups due at ``now``; their next ticks are scheduled."""
        due = []
        for index, interval in enumerate(self.intervals):
            if self.next_due[index] <= now:
                due.append(index)
                ticks = math.floor((now - self.next_due[index]) / interval) + 1
                self.next_due[index] += ticks * interval
        return tuple(due)

    def points_of(self, groups: Sequence[int]) -> tuple[tuple[str, ...], tuple[PointBase, ...]]:
        """The names and points of ``groups`` (as :meth:`due` returns them), in profile
        group order; the same tuples each time the same groups are due."""
        key = tuple(groups)
        found = self._combined.get(key)
        if found is None:
            points = tuple(point for index in key for point in self.points[index])
            found = self._combined[key] = (tuple(point.name for point in points), points)
        return found

    def next_wakeup(self) -> float:
        return min(self.next_due)
