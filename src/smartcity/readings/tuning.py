"""Interpreter settings for a process whose hot path is decoding telemetry and writing it
(monitoring, alerts): :func:`tune_for_ingest` and the values it sets."""

from __future__ import annotations

import gc
import sys

__all__ = ["INGEST_GC_THRESHOLDS", "INGEST_SWITCH_INTERVAL", "tune_for_ingest"]

INGEST_SWITCH_INTERVAL = 0.00025
"""Seconds between the interpreter's thread switches in a process that decodes telemetry
(monitoring, alerts). Storage writes run in their own thread while the event loop decodes
the next fetch, and every statement that thread runs must take the interpreter back when
the database returns: up to one interval of waiting each, while the loop is busy. At
Python's default 5 ms that thread waits for the busy loop most of the time; at 1 ms a
write of one fetch still spent as long waiting as working, enough to hold the loop up
once decoding got faster. Switches happen only when a thread asks, a few dozen times per
write, so a shorter interval costs nothing else."""

INGEST_GC_THRESHOLDS = (50_000, 20, 20)
"""Ingest allocates a few tuples per reading, hundreds of thousands a second, nearly all of
them gone within one fetch and none of them in reference cycles. With Python's default
(700 allocations) the cyclic collector runs thousands of times a second for nothing; it
measured as a fifth of ingest's time."""


def tune_for_ingest() -> None:
    """Interpreter settings for a process whose hot path is decoding telemetry and writing it
    (see the constants)."""
    sys.setswitchinterval(INGEST_SWITCH_INTERVAL)
    gc.set_threshold(*INGEST_GC_THRESHOLDS)
