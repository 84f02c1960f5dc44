"""Values as devices report them and as ``derive`` returns them: a reading of one metric at
one instant, and the hourly history of a device that ``derive`` is handed once an hour.

How a reading is judged against its metric is :meth:`smartcity.fields.metric.Metric.check`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import ClassVar

from smartcity.fields.checks import check_member, check_name, check_number, normalise
from smartcity.fields.enums import Quality

_BAD = Quality.BAD
_NUMBER = (int, float)


@dataclass(frozen=True, slots=True)
class Reading:
    """One value of one metric at one instant, with its quality.

    A value that is not finite is only acceptable with bad quality: the platform keeps
    such readings (so that a failing sensor is visible) but never computes with them.
    ``reason`` says why the quality is not good.
    """

    metric: str
    value: float | int | bool
    unit: str
    timestamp: datetime
    quality: Quality = Quality.GOOD
    reason: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not self.metric:
            raise ValueError(f"a reading needs a metric name, not {self.metric!r}")
        if not isinstance(self.value, _NUMBER):
            raise TypeError(
                f"reading {self.metric!r}: value must be a number or bool, "
                f"not {type(self.value).__name__}"
            )
        timestamp = self.timestamp
        if not isinstance(timestamp, datetime) or (
            timestamp.tzinfo is not UTC and timestamp.utcoffset() is None
        ):
            raise ValueError(
                f"reading {self.metric!r}: timestamp must be a timezone-aware datetime"
            )
        quality = self.quality
        if type(quality) is not Quality:
            quality = check_member(Quality, quality, f"reading {self.metric!r}: quality")
            normalise(self, "quality", quality)
        if quality is not _BAD and not math.isfinite(self.value):
            raise ValueError(
                f"reading {self.metric!r}: value {self.value!r} is only valid with bad quality"
            )

    @classmethod
    def checked_elsewhere(
        cls,
        metric: str,
        value: float,
        unit: str,
        timestamp: datetime,
        quality: Quality,
        reason: str = "",
    ) -> Reading:
        """A reading the host has already validated (decoded from a stored batch), built
        without repeating the checks: the host hands a plugin thousands per second, and
        the checks are for what plugins return."""
        reading = object.__new__(cls)
        _READING_SLOTS[0](reading, metric)
        _READING_SLOTS[1](reading, value)
        _READING_SLOTS[2](reading, unit)
        _READING_SLOTS[3](reading, timestamp)
        _READING_SLOTS[4](reading, quality)
        _READING_SLOTS[5](reading, reason)
        return reading


# The slots' own setters: a frozen dataclass refuses plain assignment, and going through
# object.__setattr__ costs a name lookup per field.
_READING_SLOTS = tuple(
    Reading.__dict__[name].__set__
    for name in ("metric", "value", "unit", "timestamp", "quality", "reason")
)


@dataclass(frozen=True, slots=True, repr=False)
class HourlyHistory:
    """The hourly means of one device's metrics over the last day, handed to ``derive``
    once per completed hour.

    Some derived values are defined on hourly means rather than on readings: VN_AQI, for
    one, weighs the last twelve hourly means of PM2.5 (the NowCast). A batch cannot supply
    them and ``derive`` must not fetch them, so the monitoring service, which keeps hourly
    roll-ups anyway, hands them over with the first batch of a device after each hour
    boundary (and ``None`` with every other batch).

    ``hour_end`` is the end of the hour that has just completed, a timezone-aware
    ``datetime`` on a whole hour of UTC (and so of Vietnam's UTC+7): the hour from 09:00 to
    10:00 ends at 10:00. It is the timestamp of whatever is derived for that hour.

    ``means`` maps each metric of the device to its last :attr:`HOURS` hourly means,
    **oldest first**, the last entry being the hour that ends at ``hour_end``. A mean is
    that of the hour's GOOD readings only, ``None`` for an hour without one, so that a bad
    reading can never reach a value derived from the history. A metric missing from the
    mapping has no good reading in the whole window.
    """

    HOURS: ClassVar[int] = 24
    """Hours of history: a day, enough for the NowCast's twelve and for 8-hour means."""

    hour_end: datetime
    means: Mapping[str, Sequence[float | None]] = field(hash=False)

    def __post_init__(self) -> None:
        end = self.hour_end
        if not isinstance(end, datetime) or end.utcoffset() is None:
            raise ValueError(
                f"hourly history: hour_end must be a timezone-aware datetime, not {end!r}"
            )
        utc = end.astimezone(UTC)
        if (utc.minute, utc.second, utc.microsecond) != (0, 0, 0):
            raise ValueError(
                f"hourly history: hour_end {end.isoformat()} is not on a whole hour of UTC"
            )
        if not isinstance(self.means, Mapping):
            raise TypeError("hourly history: means must be a mapping of metric to hourly means")
        means: dict[str, tuple[float | None, ...]] = {}
        for metric, values in self.means.items():
            what = f"hourly history of {check_name(metric, 'hourly history: metric')!r}"
            if isinstance(values, str | bytes) or not isinstance(values, Sequence):
                raise TypeError(f"{what} must be a sequence of hourly means")
            if len(values) != self.HOURS:
                raise ValueError(
                    f"{what} has {len(values)} hourly means, not {self.HOURS} (oldest first, "
                    "None for an hour without a good reading)"
                )
            means[metric] = tuple(
                None if value is None else check_number(value, f"{what}, hour {index + 1}")
                for index, value in enumerate(values)
            )
        normalise(self, "means", MappingProxyType(means))

    def recent(self, metric: str, hours: int) -> tuple[float | None, ...]:
        """The last ``hours`` hourly means of ``metric``, **newest first** (the hour ending
        at ``hour_end`` first), which is how indices such as the NowCast number them;
        all ``None`` for a metric without history."""
        if isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= self.HOURS:
            raise ValueError(f"hours must be an int from 1 to {self.HOURS}, not {hours!r}")
        values = self.means.get(metric)
        if values is None:
            return (None,) * hours
        return values[: -hours - 1 : -1]

    def __repr__(self) -> str:
        # A day of means per metric would drown a traced hook call; the shape says enough.
        return (
            f"HourlyHistory(hour_end={self.hour_end.isoformat()}, "
            f"metrics=[{', '.join(sorted(self.means))}])"
        )
