"""Durations and instants as people type them after an option.

``smartcity query`` takes ``--since 1h30m``, ``--step 5m`` and ``--start 2026-11-22T08:00``;
``smartcity alerts silence add`` takes ``--for 2h``. Both read them here, so the same text
means the same span everywhere on the command line. A duration follows the platform's one
rule, :func:`smartcity.runtime.durations.parse_duration`, the one device profiles follow too.
"""

from __future__ import annotations

from datetime import datetime

from smartcity.runtime.durations import parse_duration

__all__ = ["parse_duration", "parse_time"]


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
