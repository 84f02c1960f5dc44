"""Request values checked, and refusals worded, for every query of the monitoring service.

Names in selectors must be subject tokens; storage refusals become what they mean to the
caller; times and durations in refusals are written for people.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime

from smartcity.runtime.errors import InvalidArgument, Unavailable
from smartcity.runtime.subjects import SubjectError, token
from smartcity.services.monitoring.model import MICROS, Selector
from smartcity.services.monitoring.store.base import InvalidQuery, StoreUnavailable

__all__ = ["checked_selector", "checked_token", "iso", "span", "store_errors"]


@contextlib.contextmanager
def store_errors() -> Iterator[None]:
    """Storage refusals as what they mean to the caller: the request is wrong
    (INVALID_ARGUMENT; the service checks everything but page tokens before, so that is
    what it is about), or storage is unavailable now (UNAVAILABLE: retry later). Anything
    else is the service's fault and stays an internal error."""
    try:
        yield
    except InvalidQuery as exc:
        raise InvalidArgument(
            f"page_token is not one this service issued for these filters; start again "
            f"without it ({exc})"
        ) from None
    except StoreUnavailable:
        raise Unavailable("the monitoring storage is unavailable just now; retry shortly") from None


def checked_token(value: str | None, what: str) -> str | None:
    """``value`` as a subject token, ``None`` when it is empty."""
    if not value:
        return None
    try:
        return token(value, what)
    except SubjectError as exc:
        raise InvalidArgument(str(exc)) from None


def checked_selector(selector: Selector) -> Selector:
    """``selector`` with each of its names checked (empty ones become ``None``)."""
    return Selector(
        field=checked_token(selector.field, "field"),
        site=checked_token(selector.site, "site"),
        device=checked_token(selector.device, "device"),
        metric=checked_token(selector.metric, "metric"),
    )


def iso(micros: int) -> str:
    """A time in µs since the epoch as ISO 8601 UTC: ``2025-01-02T03:04:05Z``."""
    return datetime.fromtimestamp(micros / MICROS, UTC).isoformat().replace("+00:00", "Z")


def span(micros: int) -> str:
    """A duration for people: ``90s``, ``1m30s``, ``250ms``."""
    if micros < 0:
        return f"-{span(-micros)}"
    if micros % MICROS:
        return f"{micros / 1000:g}ms" if micros < MICROS else f"{micros / MICROS:g}s"
    seconds = micros // MICROS
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"
