"""What a Modbus device refused, remembered for a while: cuts that merged reads must not cross.

A merged read answered with exception 2 (illegal data address) says that *something* in its
range is not readable: one wrong address in the profile, an unmapped gap, two memory banks a
read may not span. The driver finds out what by bisecting the refused read (a few extra
requests, once) and records a cut at each boundary that must not be crossed; the planner
keeps every other point merged. On an RS-485 line at 9600 baud the difference is the whole
budget: one wrong address costs one or two requests per cycle, not a read per point.

A cut is not forever. Firmware gets updated and maps change, so each cut expires after
``remerge_after`` seconds and the merged read is tried again; a cut learned again lasts twice
as long as the previous one, up to ``maximum``, so a device that keeps refusing pays the
bisection a few times an hour at most.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from smartcity.agents.profile import Function

REMERGE_AFTER = 60.0
"""Seconds before a merged read is tried again across a first-time cut."""
REMERGE_MAX = 3600.0
"""The longest a cut lasts before the merged read is tried again."""


@dataclass
class _Cut:
    until: float
    strikes: int


class Refusals:
    """The cuts of one device, each with its expiry."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        remerge_after: float = REMERGE_AFTER,
        maximum: float = REMERGE_MAX,
    ) -> None:
        self.clock = clock
        self.remerge_after = remerge_after
        self.maximum = max(maximum, remerge_after)
        self._cuts: dict[tuple[Function, int], _Cut] = {}
        self.in_force: dict[Function, frozenset[int]] = {}
        """The cuts the planner must respect now, per data table."""
        self._next_expiry = math.inf

    def add(self, function: Function, address: int) -> bool:
        """Cut before ``address`` (between ``address - 1`` and ``address``). Returns whether
        the cut is new: a cut still in force is left as it is, so reading a point that is on
        its own again and again does not keep its cut alive."""
        now = self.clock()
        key = (function, address)
        cut = self._cuts.get(key)
        if cut is not None and now < cut.until:
            return False
        strikes = cut.strikes + 1 if cut is not None else 0
        lifetime = min(self.maximum, self.remerge_after * 2**strikes)
        self._cuts[key] = _Cut(now + lifetime, strikes)
        self._refresh(now)
        return True

    def expire(self) -> bool:
        """Let cuts whose time has come drop out; True when the cuts in force changed (the
        read plans must then be made again). Their strikes are kept for next time."""
        now = self.clock()
        if now < self._next_expiry:
            return False
        self._refresh(now)
        return True

    def _refresh(self, now: float) -> None:
        in_force: dict[Function, set[int]] = {}
        next_expiry = math.inf
        for (function, address), cut in self._cuts.items():
            if now < cut.until:
                in_force.setdefault(function, set()).add(address)
                next_expiry = min(next_expiry, cut.until)
        self.in_force = {function: frozenset(found) for function, found in in_force.items()}
        self._next_expiry = next_expiry

    def __len__(self) -> int:
        return sum(len(addresses) for addresses in self.in_force.values())
