"""Hook-call tracing into the standard logging tree.

pluggy already knows how to trace every hook call (name, arguments, result, nesting); this
only sends its lines to the ``smartcity.fields.trace`` logger, so that they go wherever the
process sends its logs, interleaved with everything else and carrying the same context.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pluggy

TRACE_LOGGER = "smartcity.fields.trace"

_lock = threading.Lock()
_active = 0
_level_before = logging.NOTSET


def enable_hook_tracing(pm: pluggy.PluginManager) -> Callable[[], None]:
    """Log every hook call of ``pm`` at DEBUG on :data:`TRACE_LOGGER`; returns the undo.

    The logger's own level is lowered to DEBUG: asking for a trace is an explicit request to
    see it, whatever level the rest of the process logs at (handlers still filter by theirs).
    It goes back to what it was when the last traced plugin manager stops tracing.
    """
    global _active, _level_before
    logger = logging.getLogger(TRACE_LOGGER)
    with _lock:
        if _active == 0:
            _level_before = logger.level
        _active += 1
        logger.setLevel(logging.DEBUG)

    def write(message: str) -> None:
        logger.debug("%s", message.rstrip("\n"))

    pm.trace.root.setwriter(write)
    undo_tracing = pm.enable_tracing()
    done = False

    def undo() -> None:
        global _active
        nonlocal done
        if done:
            return
        done = True
        undo_tracing()
        pm.trace.root.setwriter(None)
        with _lock:
            _active -= 1
            if _active == 0:
                logger.setLevel(_level_before)

    return undo
