"""Device health judged from how long a device has been silent, measured in its own poll
intervals.

A fixed timeout cannot serve a city whose devices report every second (substation bays) and
every fifteen minutes (river-quality stations) alike, so silence is counted in intervals: a
device is ONLINE while its last batch is at most ``stale_after_intervals`` intervals old,
STALE up to ``offline_after_intervals`` intervals, OFFLINE beyond. The interval is the one
storage estimates from the spacing of the device's batches; until it has one (a single
batch seen so far) the state is UNKNOWN rather than a guess.

Everything here is a pure function of a device record and ``now``, so the answer is the same
on every replica that reads the same store, and the tests need no clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from smartcity.runtime.config import MonitoringSettings
from smartcity.services.monitoring.model import DeviceRecord, DeviceState

__all__ = ["DeviceHealth", "HealthPolicy", "count_states", "device_health"]


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """How many poll intervals of silence make a device stale, and offline."""

    stale_after_intervals: float = 3.0
    offline_after_intervals: float = 10.0

    def __post_init__(self) -> None:
        if not self.stale_after_intervals > 0:
            raise ValueError(
                f"stale_after_intervals must be positive, not {self.stale_after_intervals}"
            )
        if not self.offline_after_intervals > self.stale_after_intervals:
            raise ValueError(
                f"offline_after_intervals ({self.offline_after_intervals}) must be greater "
                f"than stale_after_intervals ({self.stale_after_intervals})"
            )

    @classmethod
    def from_settings(cls, settings: MonitoringSettings) -> HealthPolicy:
        return cls(settings.stale_after_intervals, settings.offline_after_intervals)


@dataclass(frozen=True, slots=True)
class DeviceHealth:
    state: DeviceState
    since: int | None
    """When ``state`` began (µs), where it follows from the record alone: the moment silence
    crossed a limit for STALE and OFFLINE, the first batch for UNKNOWN. ``None`` for ONLINE,
    whose start (the end of an earlier outage) is not kept."""


def device_health(record: DeviceRecord, now: int, policy: HealthPolicy) -> DeviceHealth:
    """The health of the device ``record`` describes, at ``now`` (µs)."""
    return assess(record.last_seen, record.poll_interval, record.first_seen, now, policy)


def assess(
    last_seen: int, poll_interval: int, first_seen: int, now: int, policy: HealthPolicy
) -> DeviceHealth:
    """The state of a device last heard from at ``last_seen`` that reports every
    ``poll_interval`` µs (0: not known yet). A ``last_seen`` after ``now`` (another
    replica's clock ahead of ours) counts as just heard from."""
    if poll_interval <= 0:
        return DeviceHealth(DeviceState.UNKNOWN, first_seen)
    stale_at = last_seen + round(policy.stale_after_intervals * poll_interval)
    offline_at = last_seen + round(policy.offline_after_intervals * poll_interval)
    if now <= stale_at:
        return DeviceHealth(DeviceState.ONLINE, None)
    if now <= offline_at:
        return DeviceHealth(DeviceState.STALE, stale_at)
    return DeviceHealth(DeviceState.OFFLINE, offline_at)


def count_states(healths: Iterable[DeviceHealth]) -> dict[DeviceState, int]:
    """How many devices are in each state; every state is present, zero or not."""
    counted = Counter(health.state for health in healths)
    return {state: counted.get(state, 0) for state in DeviceState}
