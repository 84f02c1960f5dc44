"""Durations and instants as people type them after an option.

``smartcity query`` takes ``--since 1h30m``, ``--step 5m`` and ``--start 2026-11-22T08:00``;
``smartcity alerts silence add`` takes ``--for 2h``. Both read them here, so the same text
means the same span everywhere on the command line.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

__all__ = ["parse_duration", "parse_time"]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``1m``, ``1h30m``, ``7d``, ``500ms``; ``0`` is zero. Raises ``ValueError``."""
    cleaned = text.strip().lower()
    if cleaned == "0":
        return timedelta(0)
    if not cleaned or _DURATION_PART.sub("", cleaned):
        raise ValueError(
            f"{text!r} is not a duration: use a number and a unit, e.g. 30s, 5m, 1h30m, 7d "
            "(units ms, s, m, h, d, w)"
        )
    return sum(
        (float(amount) * _UNITS[unit] for amount, unit in _DURATION_PART.findall(cleaned)),
        timedelta(0),
    )


def parse_time(text: str) -> datetime:
    """An ISO 8601 instant (``2026-11-22T08:00``, ``...Z``, ``...+07:00``); without a zone it
    is local time. Raises ``ValueError``."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO 8601 time, e.g. 2026-11-22T08:00:00+07:00"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.astimezone()
