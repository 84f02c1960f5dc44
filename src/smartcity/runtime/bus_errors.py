"""What the bus raises: :class:`BusError` and the refusals and stream failures under it."""

from __future__ import annotations

import nats.errors


class BusError(RuntimeError):
    """The bus cannot be reached or used as asked."""


class BusPermissionError(BusError, nats.errors.Error):
    """The server refused this connection's user a publish or a subscription; the message
    names both. It is also a ``nats.errors.Error``, which callers already handle."""


class StreamConfigError(BusError):
    """A JetStream stream cannot be given the configured limits; the message names it."""
