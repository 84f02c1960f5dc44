"""How a JetStream consumer is doing: :class:`ConsumerStats` (what it did since it started),
its JetStream state as last refreshed (lag, ack floor) and the ``smartcity.consumer.*``
metrics made of both.

:class:`ConsumerProgress` is the part of
:class:`~smartcity.runtime.consumer.JetStreamConsumer` that reports; the consumer sets the
attributes it declares.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

import nats.errors
from nats.js.api import ConsumerInfo
from opentelemetry import metrics

from smartcity.runtime.bus import Bus
from smartcity.runtime.config import ConsumerSettings
from smartcity.runtime.logs import get_logger

__all__ = ["INFO_INTERVAL_SECONDS", "ConsumerProgress", "ConsumerStats"]

INFO_INTERVAL_SECONDS = 5.0
"""How often the consumer's JetStream state (lag, ack floor) is refreshed."""

# Every part of the consumer logs under one logger, the consumer's, so that one level tunes
# all of them.
_log = get_logger("smartcity.runtime.consumer")


@dataclass
class ConsumerStats:
    """What the consumer did since it started; the figures behind its metrics."""

    fetched: int = 0
    """Messages received, redeliveries included."""
    redelivered: int = 0
    """Messages that arrived for at least the second time."""
    handled: int = 0
    """Messages committed and acknowledged."""
    deadlettered: int = 0
    retried: int = 0
    """Messages handed back to JetStream after a failed commit."""
    commit_failures: int = 0
    deadletter_failures: int = 0
    """Dead letters that could not be published (their messages come back later)."""


class ConsumerProgress:
    """The consumer's figures and JetStream state, and the metrics that report them."""

    bus: Bus
    stream: str
    settings: ConsumerSettings
    stats: ConsumerStats
    info: ConsumerInfo | None

    @property
    def name(self) -> str:
        return self.settings.durable

    async def refresh_info(self) -> ConsumerInfo | None:
        """The consumer's JetStream state now (``None`` when NATS does not answer)."""
        try:
            self.info = await self.bus.js.consumer_info(self.stream, self.name)
        except (TimeoutError, nats.errors.Error) as exc:
            _log.debug("consumer info unavailable", consumer=self.name, error=repr(exc))
            return None
        return self.info

    async def acked_through(self) -> int:
        """The stream sequence up to which every message of the consumer (on any replica)
        has been acknowledged; 0 when unknown."""
        info = await self.refresh_info()
        if info is None or info.ack_floor is None:
            return 0
        return info.ack_floor.stream_seq or 0

    @property
    def lag(self) -> int | None:
        """Messages not yet acknowledged (waiting plus in flight), as last refreshed."""
        info = self.info
        if info is None:
            return None
        return (info.num_pending or 0) + (info.num_ack_pending or 0)

    async def _refresh_info_forever(self) -> None:
        while True:
            await self.refresh_info()
            await asyncio.sleep(INFO_INTERVAL_SECONDS)

    def _register_metrics(self, meter: metrics.Meter) -> None:
        attributes = {"consumer": self.name, "stream": self.stream}

        def counter(field: str) -> metrics.CallbackT:
            def observe(options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
                yield metrics.Observation(getattr(self.stats, field), attributes)

            return observe

        for field, unit, description in (
            ("fetched", "{message}", "Messages received, redeliveries included"),
            ("handled", "{message}", "Messages committed and acknowledged"),
            ("deadlettered", "{message}", "Messages dead-lettered with a reason"),
            ("redelivered", "{message}", "Messages received again after a failure"),
            ("retried", "{message}", "Messages handed back after a failed commit"),
        ):
            meter.create_observable_counter(
                f"smartcity.consumer.{field}", [counter(field)], unit=unit, description=description
            )

        def lag(options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
            if self.lag is not None:
                yield metrics.Observation(self.lag, attributes)

        meter.create_observable_gauge(
            "smartcity.consumer.lag",
            [lag],
            unit="{message}",
            description="Messages of the stream not yet acknowledged by the consumer",
        )
