"""Durations as people write them: in a device profile (``poll_interval: 250ms``) and after
a command-line option (``--since 1h30m``). One rule, so the same text means the same span
everywhere.

A duration is a plain number of seconds (``5``, ``0.5``), or one or more parts written
together, each a number and a unit (``90s``, ``1h30m``, ``1.5h``); a space may stand between
a number and its unit (``250 ms``), not between two parts. The units are ``ms``, ``s``,
``m`` or ``min``, ``h``, ``d`` and ``w``, in any case. Whether zero is allowed is the
caller's to say: a profile's poll interval must be positive, a query step may be ``0``.
"""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["format_duration", "parse_duration", "parse_seconds"]

_NUMBER = r"\d+(?:\.\d+)?"
# "min" before "m", "ms" before "m" and "s": the longest unit that fits is the one meant.
_UNIT = r"ms|min|s|m|h|d|w"
_PART = re.compile(rf"({_NUMBER})\s*({_UNIT})")
_DURATION = re.compile(rf"{_NUMBER}|(?:{_NUMBER}\s*(?:{_UNIT}))+")

_SECONDS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}
_SPANS = {unit: timedelta(seconds=seconds) for unit, seconds in _SECONDS.items()}


def _parts(text: str) -> list[tuple[str, str]]:
    """``(number, unit)`` of each part of ``text``; a plain number is in seconds."""
    cleaned = text.strip().lower()
    if not _DURATION.fullmatch(cleaned):
        raise ValueError(
            f"{text!r} is not a duration: use a number and a unit, e.g. 250ms, 30s, 5m, "
            "1h30m, 7d (units ms, s, m or min, h, d, w), or a number of seconds"
        )
    return _PART.findall(cleaned) or [(cleaned, "s")]


def parse_duration(text: str) -> timedelta:
    """The span ``text`` says (``90s``, ``1h30m``, ``7d``, ``500ms``, ``0``), to the
    microsecond. Raises ``ValueError`` naming the text when it is not a duration, or is too
    long for a :class:`~datetime.timedelta`."""
    try:
        return sum((float(number) * _SPANS[unit] for number, unit in _parts(text)), timedelta(0))
    except OverflowError:
        raise ValueError(f"{text!r} is too long a duration") from None


def parse_seconds(text: str) -> float:
    """Seconds in ``text`` (``20ms``, ``1s``, ``2min``, ``1h30m`` or a number of seconds), as
    a float that is not rounded to the microsecond. Raises ``ValueError`` naming the text
    when it is not a duration."""
    return sum((float(number) * _SECONDS[unit] for number, unit in _parts(text)), 0.0)


def format_duration(span: timedelta) -> str:
    """``span`` as :func:`parse_duration` reads it back exactly: ``1h30m``, ``2d3h``,
    ``12.5s``, ``0.25s``, ``0``. Raises ``ValueError`` for a negative span."""
    if span < timedelta(0):
        raise ValueError(f"{span} is negative: a duration is not")
    whole, micros = divmod(span // timedelta(microseconds=1), 1_000_000)
    parts: list[str] = []
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    if micros:
        parts.append(f"{whole}.{micros:06d}".rstrip("0") + "s")
    elif whole:
        parts.append(f"{whole}s")
    return "".join(parts) or "0"
