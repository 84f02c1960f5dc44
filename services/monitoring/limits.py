"""What one request to the monitoring service may ask for: its page and the query limits.

Paging rules are those of ``common.proto``: a page size of 0 means the default, larger than
the maximum is lowered to it, negative is refused; a page token is opaque and only valid
with the filters it was issued for.
"""

from __future__ import annotations

from dataclasses import dataclass

from smartcity.runtime.errors import InvalidArgument

__all__ = ["PageRequest", "QueryLimits", "page_size"]


@dataclass(frozen=True, slots=True)
class PageRequest:
    """``size`` 0 asks for the default; ``token`` ``None`` (or empty) for the first page."""

    size: int = 0
    token: str | None = None


@dataclass(frozen=True, slots=True)
class QueryLimits:
    default_page_size: int = 100
    max_page_size: int = 1000
    max_steps: int = 11_000
    """Steps per series a range query may span (``monitoring.proto``)."""
    max_raw_points: int = 100_000
    """Readings a raw range query (step 0) may return across its series."""
    max_range_points: int = 100_000
    """Series times steps one page of a range query may span: about what fits a reply of
    4 MiB, and checked before any work is done."""
    stream_chunk: int = 1000
    """Readings per stream message at most."""
    device_scan_factor: int = 10
    """Filtering devices by state reads at most this many pages' worth of devices per page
    answered; what it could not fill comes back short, with a token to go on."""


def page_size(page: PageRequest, limits: QueryLimits) -> int:
    """The number of items to answer ``page`` with."""
    if page.size < 0:
        raise InvalidArgument(f"page_size must not be negative, not {page.size}")
    if page.size == 0:
        return limits.default_page_size
    return min(page.size, limits.max_page_size)
