"""Device patterns: the ``(field, site, device)`` part of a selector, by which live streams
(:mod:`.live`) and the fan-out between replicas (:mod:`.fanout`) index who watches what.

A batch belongs to one device, so it is looked up once per pattern shape (which of the three
a pattern names), not once per pattern or subscriber.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from smartcity.services.monitoring.model import Selector

__all__ = [
    "DevicePattern",
    "Shape",
    "describe",
    "device_pattern",
    "pattern_shapes",
    "patterns_of",
]

DevicePattern = tuple[str | None, str | None, str | None]
"""``(field, site, device)`` of a selector, ``None`` for "any"."""

Shape = tuple[bool, bool, bool]
"""Which of field, site and device a pattern names."""


def device_pattern(selector: Selector) -> DevicePattern:
    return (selector.field or None, selector.site or None, selector.device or None)


def pattern_shapes(patterns: Iterable[DevicePattern]) -> list[Shape]:
    """The shapes of ``patterns``, each once: a batch is looked up once per shape, not once
    per pattern or subscriber."""
    return sorted({(f is not None, s is not None, d is not None) for f, s, d in patterns})


def patterns_of(
    field: str, site: str, device: str, shapes: Iterable[Shape]
) -> Iterator[DevicePattern]:
    """The pattern of each shape that a batch of ``field``, ``site`` and ``device`` matches."""
    for with_field, with_site, with_device in shapes:
        yield (
            field if with_field else None,
            site if with_site else None,
            device if with_device else None,
        )


def describe(selector: Selector) -> str:
    """``selector`` for logs: ``field=water_supply site=cau-do``, or ``everything``."""
    parts = (
        f"{name}={value}"
        for name, value in (
            ("field", selector.field),
            ("site", selector.site),
            ("device", selector.device),
            ("metric", selector.metric),
        )
        if value
    )
    return " ".join(parts) or "everything"
