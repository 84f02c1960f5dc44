"""Report by exception: which readings of a device are worth publishing.

One rule for every protocol and mode, applied by the agent between a device's driver and
the publisher. A point's reading is published when

* it is the point's first, or its quality differs from the last one published;
* it is older than the keep-alive since the point was last published (by default six slow
  intervals: a flat value, or a device that stays unreachable, can be told apart from a dead
  agent);
* it carries a value that moved by more than the point's ``deadband`` from the last value
  published, or the point has no deadband.

So a BAD reading (which has no value) is published when the point turns BAD and then at the
keep-alive, not on every cycle of a device that stays unreachable; a GOOD value within its
deadband waits for a move, a change of quality or the keep-alive.

Sources that deliver changes only (an OPC-UA subscription) never repeat a flat value by
themselves: for them every point is tracked, and :meth:`ExceptionReport.overdue` names the
points whose keep-alive has come, for the agent to read them.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter

from smartcity.agents.profile import DeviceBase
from smartcity.agents.reading import Quality, Reading, Value

KEEPALIVE_SLOW_INTERVALS = 6
"""The keep-alive, in slow poll intervals: one minute with the default 1 s poll."""

_BAD = Quality.BAD
_quality_of = itemgetter(3)


def keepalive_of(profile: DeviceBase) -> float:
    """The device's keep-alive in seconds."""
    return KEEPALIVE_SLOW_INTERVALS * profile.slow_interval


def within(value: Value | None, last: Value | None, deadband: float | None) -> bool:
    """Whether ``value`` says nothing new against ``last``: both absent, or both present and
    no further apart than ``deadband`` (a bool only when equal). No deadband: never."""
    if value is None or last is None:
        return value is None and last is None
    if deadband is None:
        return False
    if isinstance(value, bool) or isinstance(last, bool):
        return value == last
    return abs(value - last) <= deadband


class ExceptionReport:
    """The report-by-exception state of one device: what each point last published."""

    def __init__(
        self, profile: DeviceBase, *, keepalive: float | None = None, every_point: bool = False
    ) -> None:
        self.keepalive = keepalive or keepalive_of(profile)
        self.deadbands = {p.name: p.deadband for p in profile.points if p.deadband is not None}
        self.every_point = every_point
        """Track every point, not only those with a deadband or BAD: for sources that
        deliver changes only, whose keep-alive the agent must ask for (:meth:`overdue`)."""
        self.suppressed = 0
        """Readings not published: within their deadband, or BAD again."""
        self._last: dict[str, tuple[Value | None, Quality, float]] = {}
        """Per tracked point, the value, quality and read time last published. A point
        without a deadband is tracked only while it is BAD (or with ``every_point``)."""

    def keep(self, readings: Sequence[Reading]) -> list[Reading]:
        """The readings of ``readings`` to publish, in order; the rest are counted."""
        last = self._last
        deadbands = self.deadbands
        # the common case, a polled device without deadbands that is and was all GOOD:
        # ``in`` over the qualities compares by identity first, in C, without hashing them
        if (
            not last
            and not deadbands
            and not self.every_point
            and _BAD not in map(_quality_of, readings)
        ):
            return list(readings)
        kept: list[Reading] = []
        keepalive = self.keepalive
        every_point = self.every_point
        for reading in readings:
            metric, value, _, quality, _, _, read_time, _ = reading
            deadband = deadbands.get(metric)
            previous = last.get(metric)
            if (
                previous is not None
                and quality is previous[1]
                and read_time - previous[2] < keepalive
                and within(value, previous[0], deadband)
            ):
                continue
            if deadband is not None or quality is _BAD or every_point:
                last[metric] = (value, quality, read_time)
            elif previous is not None:
                del last[metric]  # no longer BAD: published on every read again
            kept.append(reading)
        self.suppressed += len(readings) - len(kept)
        return kept

    def overdue(self, now: float) -> list[str]:
        """The tracked points last published a keep-alive or more before ``now`` (Unix
        seconds)."""
        keepalive = self.keepalive
        return [metric for metric, (_, _, at) in self._last.items() if now - at >= keepalive]
