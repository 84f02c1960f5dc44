"""A derived metric that is a function of one reading of another metric.

Most values a field adds to what its devices measure depend on one reading alone: whether
a chlorine residual is within its limits, a level as a share of a tank's height, a flow in
another unit. A plugin declares such a value once, as a :class:`Derivation`, through the
``derivations`` hook, instead of writing a ``derive`` that loops over a batch: the host
then applies it to every reading of its source as the reading is decoded, without building
a :class:`~smartcity.fields.reading.Reading` on either side, which on the ingest path costs
ten times the computation itself. ``derive`` stays for what needs several readings at once
(a voltage unbalance from three phases) or the hourly history (VN_AQI).

:meth:`Derivation.apply` is the one place where the rule is written: the decoder on the
ingest path and :meth:`smartcity.fields.Field.derive` both call it, and the derived value
is then judged by its own metric's :meth:`~smartcity.fields.metric.Metric.check` like any
reading.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from smartcity.fields.checks import check_name, check_text
from smartcity.fields.enums import Quality

DerivedValue = float | int | bool
Applied = tuple[DerivedValue | None, Quality, str]
"""``(value, quality, reason)`` of a derived reading; ``value`` is ``None`` only when the
computation failed, and the reading is then BAD with the reason."""

_BAD = Quality.BAD
_NUMBER = (int, float)
_FLOAT_MAX = int(sys.float_info.max)


@dataclass(frozen=True, slots=True)
class Derivation:
    """``metric`` is ``compute(value)`` of every reading of ``source`` that has a value.

    The derived reading has its source's timestamp, quality and reason: an uncertain
    reading gives an uncertain value with the same reason, and a bad reading gives none
    (it has no value to compute with, and is itself stored with its reason). Both metrics
    are in the field's catalogue; ``compute`` takes a float and returns a number or a
    bool, and must be pure and cheap, as it runs once per reading on the ingest path.
    """

    metric: str
    source: str
    compute: Callable[[float], DerivedValue] = field(repr=False)
    description: str = ""

    def __post_init__(self) -> None:
        check_name(self.metric, "derivation metric")
        check_name(self.source, f"derivation {self.metric!r}: source")
        if self.metric == self.source:
            raise ValueError(f"derivation {self.metric!r} derives a metric from itself")
        if not callable(self.compute):
            raise TypeError(
                f"derivation {self.metric!r}: compute must be callable, "
                f"not {type(self.compute).__name__}"
            )
        if self.description:
            check_text(self.description, f"derivation {self.metric!r}: description")

    def apply(self, value: float | None, quality: Quality, reason: str) -> Applied | None:
        """The derived reading of a source reading, or ``None`` when there is none (a bad
        source reading, or one without a value). A ``compute`` that raises or returns
        anything but a number gives a BAD reading saying so, never an exception: the
        source reading is stored all the same."""
        if value is None or quality is _BAD:
            return None
        try:
            result = self.compute(value)
        except Exception as exc:  # a plugin's bug: a verdict on this reading, not a crash
            return None, _BAD, f"{self.metric} = f({self.source}) raised {type(exc).__name__}"
        if not isinstance(result, _NUMBER):
            return (
                None,
                _BAD,
                f"{self.metric} = f({self.source}) gave a {type(result).__name__}, not a number",
            )
        if type(result) is int and not -_FLOAT_MAX <= result <= _FLOAT_MAX:
            # Stored as a double: an integer beyond its range has no value to keep.
            return None, _BAD, f"{self.metric} = f({self.source}) gave an integer beyond 1e308"
        return result, quality, reason
