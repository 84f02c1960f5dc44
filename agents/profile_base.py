"""What every device profile has, whatever the protocol: names that are NATS subject tokens,
durations written the way engineers write them (``1s``, ``250ms``, ``2m``, read by the
platform's one rule, :mod:`smartcity.runtime.durations`), the fields of a point (unit,
deadband, poll class, write limits) and of a device (endpoint, poll intervals, timeout). The
Modbus and OPC-UA models build on these
(:mod:`~smartcity.agents.profile_modbus`, :mod:`~smartcity.agents.profile_opcua`); reading a
file is :mod:`~smartcity.agents.profile`'s.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from smartcity.runtime.durations import parse_seconds

TOKEN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
POINT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def _seconds(value: Any) -> Any:
    """Accept ``1s``, ``250ms``, ``2m``, ``1h30m`` or a plain number of seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text like 1s, 250ms, 2m")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return parse_seconds(value)
    return value


Duration = Annotated[float, BeforeValidator(_seconds), Field(gt=0)]


def parse_duration(text: str) -> float:
    """Seconds in ``text`` as a profile writes a duration (``20ms``, ``1s``, ``2m``, or a
    number of seconds); ValueError when it is none, or not positive."""
    seconds = float(_seconds(text))
    if seconds <= 0:
        raise ValueError(f"{text!r} is not a positive duration")
    return seconds


class ProfileModel(BaseModel):
    """Every model of a profile: an unknown key is a mistake, and a loaded profile is fixed."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PointBase(ProfileModel):
    """What every point has, whatever the protocol."""

    name: str
    unit: str = ""
    description: str = ""
    deadband: float | None = Field(
        default=None, ge=0, description="report only when the value moves by more than this"
    )
    poll: Literal["fast", "slow"] = "fast"
    interval: Duration | None = Field(
        default=None, description="per-point poll interval; overrides the poll class"
    )
    writable: bool = False
    min: float | None = None
    max: float | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not POINT_NAME.match(value):
            raise ValueError(
                f"{value!r} is not a point name (lower case letters, digits and _, "
                "starting with a letter)"
            )
        return value

    @model_validator(mode="after")
    def _limits(self) -> PointBase:
        for bound in (self.min, self.max):
            if bound is not None and not math.isfinite(bound):
                raise ValueError("min and max must be finite numbers")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        if (self.min is not None or self.max is not None) and not self.writable:
            raise ValueError("min/max bound what may be written: set writable: true or drop them")
        return self


class DeviceBase(ProfileModel):
    """What every device profile has, whatever the protocol."""

    site: str
    field: str
    device: str
    endpoint: str
    poll_interval: Duration = 1.0
    slow_poll_interval: Duration | None = Field(
        default=None, description="interval of the slow poll class; 10 x poll_interval if unset"
    )
    timeout: Duration = 2.0
    description: str = ""

    @field_validator("site", "field", "device")
    @classmethod
    def _token(cls, value: str) -> str:
        if not TOKEN.match(value):
            raise ValueError(
                f"{value!r} must be lower case letters, digits, - and _ (it is a NATS "
                "subject token: no dots, spaces or wildcards)"
            )
        return value

    @property
    def slow_interval(self) -> float:
        return self.slow_poll_interval or self.poll_interval * 10

    def interval_of(self, point: PointBase) -> float:
        """Seconds between two reads of ``point``."""
        if point.interval is not None:
            return point.interval
        return self.poll_interval if point.poll == "fast" else self.slow_interval

    @model_validator(mode="after")
    def _unique_names(self) -> DeviceBase:
        seen: set[str] = set()
        for point in self.points:  # type: ignore[attr-defined]
            if point.name in seen:
                raise ValueError(f"point name {point.name!r} is used twice")
            seen.add(point.name)
        return self
