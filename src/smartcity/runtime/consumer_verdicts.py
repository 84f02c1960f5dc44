"""How a fetched message ends in :class:`~smartcity.runtime.consumer.JetStreamConsumer`:
handled (committed, then acknowledged), dead-lettered with the reason, retried, or handed
back to JetStream.

:class:`MessageVerdicts` is the part of the consumer that commits a fetch's items and deals
with a commit that fails: it waits out a store that is down, with back-off and no dead
letters, and isolates a message the store refuses by committing halves, retrying it and
dead-lettering it after ``max_deliveries``. A dead letter goes to
``city.deadletter.<stream>`` with the ``DEADLETTER_*_HEADER`` headers. Each verdict ends the
message's span with the attribute :data:`VERDICT_ATTRIBUTE`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Generic, TypeVar

from nats.aio.msg import Msg
from opentelemetry import trace
from opentelemetry.trace import Link, Span, Status, StatusCode, Tracer

from smartcity.runtime.consumer_handler import Handler
from smartcity.runtime.consumer_progress import ConsumerProgress
from smartcity.runtime.logs import get_logger

__all__ = [
    "DEADLETTER_CONSUMER_HEADER",
    "DEADLETTER_DELIVERIES_HEADER",
    "DEADLETTER_REASON_HEADER",
    "DEADLETTER_SEQUENCE_HEADER",
    "DEADLETTER_SUBJECT_HEADER",
    "MAX_REASON_LENGTH",
    "VERDICT_ATTRIBUTE",
    "MessageVerdicts",
    "nak",
]

T = TypeVar("T")

DEADLETTER_REASON_HEADER = "Smartcity-Deadletter-Reason"
DEADLETTER_SUBJECT_HEADER = "Smartcity-Original-Subject"
DEADLETTER_SEQUENCE_HEADER = "Smartcity-Original-Sequence"
DEADLETTER_CONSUMER_HEADER = "Smartcity-Consumer"
DEADLETTER_DELIVERIES_HEADER = "Smartcity-Deliveries"
MAX_REASON_LENGTH = 1000
"""Characters of a reason kept in the dead-letter header (a header is one line)."""
VERDICT_ATTRIBUTE = "smartcity.consumer.verdict"

# Every part of the consumer logs under one logger, the consumer's, so that one level tunes
# all of them.
_log = get_logger("smartcity.runtime.consumer")


class MessageVerdicts(ConsumerProgress, Generic[T]):
    """Committing, acknowledging, retrying and dead-lettering; the consumer sets the
    attributes declared here."""

    handler: Handler[T]
    deadletter_subject: str
    problem: str | None
    _backoff: float
    _resume_at: float
    _tracer: Tracer

    async def _commit(self, items: list[tuple[Msg, T, Span]]) -> None:
        """Commit and acknowledge; on failure, wait out the store or isolate the message
        that fails. Never raises (but for cancellation)."""
        try:
            with self._tracer.start_as_current_span(
                f"commit {self.name}",
                links=[Link(span.get_span_context()) for _, _, span in items],
                attributes={
                    "messaging.consumer.group.name": self.name,
                    "messaging.batch.message_count": len(items),
                },
            ):
                await self.handler.commit([item for _, item, _ in items])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.stats.commit_failures += 1
            if self._is_transient(exc):
                await self._store_unavailable(items, exc)
            elif len(items) > 1:
                middle = len(items) // 2
                await self._commit(items[:middle])
                await self._commit(items[middle:])
            else:
                await self._refused(*items[0], exc)
            return
        if self._backoff:
            _log.info("consumer resumed", consumer=self.name)
            self._backoff = 0.0
            self.problem = None
        for msg, _, span in items:
            await _ack(msg)
            _end(span, "handled")
        self.stats.handled += len(items)

    def _is_transient(self, exc: Exception) -> bool:
        try:
            return bool(self.handler.is_transient(exc))
        except Exception:
            return False

    async def _store_unavailable(self, items: list[tuple[Msg, T, Span]], exc: Exception) -> None:
        settings = self.settings
        self._backoff = min(
            settings.retry_max_seconds, max(settings.retry_initial_seconds, self._backoff * 2)
        )
        self._resume_at = time.monotonic() + self._backoff
        problem = f"storage unavailable: {exc}"
        if self.problem != problem:
            _log.warning(
                "commit failed, storage unavailable; messages come back later",
                consumer=self.name,
                error=str(exc),
                retry_in_seconds=self._backoff,
            )
        self.problem = problem
        await self._hand_back(items, self._backoff)

    async def _hand_back(self, items: list[tuple[Msg, T, Span]], delay: float) -> None:
        for msg, _, span in items:
            await nak(msg, delay)
            _end(span, "handed_back", self.problem)
        self.stats.retried += len(items)

    async def _refused(self, msg: Msg, item: T, span: Span, exc: Exception) -> None:
        deliveries = msg.metadata.num_delivered
        reason = f"{type(exc).__name__}: {exc}"
        if deliveries >= self.settings.max_deliveries:
            await self._deadletter(
                msg,
                f"commit refused {deliveries} time(s), giving up: {reason}",
                deliveries,
                span=span,
            )
            return
        delay = self._delay(deliveries)
        _log.warning(
            "commit refused one message; it comes back",
            consumer=self.name,
            subject=msg.subject,
            delivery=deliveries,
            retry_in_seconds=delay,
            error=reason,
        )
        await nak(msg, delay)
        _end(span, "retried", f"commit refused: {reason}")
        self.stats.retried += 1

    async def _deadletter(
        self, msg: Msg, reason: str, deliveries: int | None = None, *, span: Span
    ) -> None:
        """Publish ``msg`` with ``reason`` to the dead-letter stream, then acknowledge it;
        the dead letter continues the message's trace."""
        metadata = msg.metadata
        reason = " ".join(reason.split())[:MAX_REASON_LENGTH] or "no reason given"
        headers = {
            DEADLETTER_REASON_HEADER: reason,
            DEADLETTER_SUBJECT_HEADER: msg.subject,
            DEADLETTER_SEQUENCE_HEADER: str(metadata.sequence.stream),
            DEADLETTER_CONSUMER_HEADER: self.name,
            DEADLETTER_DELIVERIES_HEADER: str(deliveries or metadata.num_delivered),
        }
        try:
            with trace.use_span(span, end_on_exit=False):
                await self.bus.jetstream_publish(
                    self.deadletter_subject,
                    msg.data,
                    headers=headers,
                    # A dead letter published twice (a crash before the acknowledgement) is
                    # stored once.
                    msg_id=f"{self.stream}/{metadata.sequence.stream}",
                )
        except Exception as exc:
            self.stats.deadletter_failures += 1
            _log.error(
                "dead letter not published; the message comes back later",
                consumer=self.name,
                subject=msg.subject,
                reason=reason,
                error=repr(exc),
            )
            await nak(msg, self._delay(2))
            _end(span, "handed_back", f"dead letter not published: {exc!r}")
            return
        self.stats.deadlettered += 1
        _log.warning(
            "message dead-lettered", consumer=self.name, subject=msg.subject, reason=reason
        )
        await _ack(msg)
        _end(span, "deadlettered", reason)

    async def _wait_out_backoff(self) -> None:
        remaining = self._resume_at - time.monotonic()
        if remaining > 0:
            await asyncio.sleep(remaining)

    def _delay(self, attempt: int) -> float:
        settings = self.settings
        return min(settings.retry_max_seconds, settings.retry_initial_seconds * 2 ** (attempt - 1))


def _end(span: Span, verdict: str, problem: str | None = None) -> None:
    span.set_attribute(VERDICT_ATTRIBUTE, verdict)
    if problem:
        span.set_status(Status(StatusCode.ERROR, problem))
    span.end()


async def _ack(msg: Msg) -> None:
    # A lost acknowledgement only means a redelivery, which the commit's idempotence absorbs.
    with contextlib.suppress(Exception):
        await msg.ack()


async def nak(msg: Msg, delay: float) -> None:
    """Hand ``msg`` back to JetStream, to be delivered again after ``delay`` seconds."""
    with contextlib.suppress(Exception):
        await msg.nak(delay=delay)
