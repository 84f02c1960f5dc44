"""The JetStream consumer every service uses: each message handled once, or dead-lettered with
the reason; no message can stop or block it.

A service supplies a :class:`Handler` with two parts: ``decode`` turns one message into an
item (or raises :class:`Rejected` with the reason it can never be one) and ``commit`` makes
a list of items durable in one go. :class:`JetStreamConsumer` does the rest, the same way
for ingest, alert evaluation and whatever comes next:

* one durable pull consumer shared by every replica; a fetch of up to ``fetch_batch``
  messages is decoded while earlier fetches commit (``commits_in_flight`` at once) and the
  next fetch is on its way, and acknowledged only once its own commit returned, so an
  acknowledgement never covers anything that is not durable. Decoding lets the event loop
  run between messages every ``DECODE_SLICE_SECONDS``, so that a commit waiting for its
  database's reply is not held up by a whole fetch's decoding; a consumer that stops
  hands back at once what it fetched and did not decode;
* a message that cannot be decoded (or whose decoding raises anything) is published to
  ``city.deadletter.<stream>`` with the reason in a header, then acknowledged: redelivering
  it would only fail again;
* when a commit fails and the handler says the failure is the store's (``is_transient``:
  down, locked, out of space), the fetch is handed back to JetStream with a delay and the
  consumer waits, backing off exponentially, before fetching more. Such an outage is not the
  messages' fault and JetStream keeps them, so they are never dead-lettered for it;
* when a commit fails for any other reason, the fetch is split in halves and each half
  committed on its own, down to the one message that fails. That message alone is retried
  (with a growing delay, through JetStream redelivery, so its attempts are counted across
  restarts and replicas) and dead-lettered with the reason after ``max_deliveries``
  attempts; the other messages of its fetch are stored and acknowledged at once, so one
  poison message delays the rest by no more than its own fetch.
* nothing a message does, and no NATS or storage failure, ends :meth:`JetStreamConsumer.run`;
  only cancellation does. A failed dead-letter publish leaves its message unacknowledged,
  to come back later.
* each message is handled in a CONSUMER span ``process <subject filter>``, a child of its
  publisher's span (the trace context its headers carry), from its decoding to its verdict
  (attribute ``smartcity.consumer.verdict``: ``handled``, ``deadlettered``, ``retried``,
  ``handed_back``); it is the current span while the handler decodes the message, so a
  handler that keeps ``opentelemetry.context.get_current()`` then can continue the
  message's trace later. Each commit is a span ``commit <durable>`` linked to the spans of
  the messages it makes durable.

Counting contract, tested by counting: every message fetched ends handled (acknowledged
after a commit), dead-lettered (and acknowledged), or handed back for a later delivery.

Its parts live beside this module, and every name is importable from here too: what a
service gives the consumer in :mod:`.consumer_handler`; committing, retrying and
dead-lettering in :mod:`.consumer_verdicts`; its figures, JetStream state and metrics in
:mod:`.consumer_progress`. This module is the loop: binding, fetching and decoding.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, TypeVar

import nats.errors
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy
from nats.js.errors import NotFoundError
from opentelemetry import metrics, trace
from opentelemetry.trace import Span, SpanKind

from smartcity.runtime import subjects
from smartcity.runtime.bus import Bus, extract_context
from smartcity.runtime.cancellation import raise_if_cancelled
from smartcity.runtime.config import ConsumerSettings
from smartcity.runtime.consumer_handler import Handler, Rejected
from smartcity.runtime.consumer_progress import INFO_INTERVAL_SECONDS, ConsumerStats
from smartcity.runtime.consumer_verdicts import (
    DEADLETTER_CONSUMER_HEADER,
    DEADLETTER_DELIVERIES_HEADER,
    DEADLETTER_REASON_HEADER,
    DEADLETTER_SEQUENCE_HEADER,
    DEADLETTER_SUBJECT_HEADER,
    MAX_REASON_LENGTH,
    VERDICT_ATTRIBUTE,
    MessageVerdicts,
    nak,
)
from smartcity.runtime.logs import get_logger

__all__ = [
    "DEADLETTER_CONSUMER_HEADER",
    "DEADLETTER_DELIVERIES_HEADER",
    "DEADLETTER_REASON_HEADER",
    "DEADLETTER_SEQUENCE_HEADER",
    "DEADLETTER_SUBJECT_HEADER",
    "INFO_INTERVAL_SECONDS",
    "MAX_REASON_LENGTH",
    "VERDICT_ATTRIBUTE",
    "ConsumerStats",
    "Handler",
    "JetStreamConsumer",
    "Rejected",
]

T = TypeVar("T")

DECODE_SLICE_SECONDS = 0.002
"""How long decoding a fetch holds the event loop before it lets other tasks run."""

_log = get_logger(__name__)
_TRACER_NAME = "smartcity.runtime.consumer"


class JetStreamConsumer(MessageVerdicts[T]):
    """One replica's end of a durable pull consumer (see the module docstring)."""

    def __init__(
        self,
        bus: Bus,
        *,
        stream: str,
        subject: str,
        settings: ConsumerSettings,
        handler: Handler[T],
        meter: metrics.Meter | None = None,
    ) -> None:
        self.bus = bus
        self.stream = stream
        self.subject = subject
        self.settings = settings
        self.handler = handler
        self.deadletter_subject = subjects.deadletter_subject(stream.lower())
        self.stats = ConsumerStats()
        self.info: ConsumerInfo | None = None
        """The consumer's JetStream state as last refreshed (lag, ack floor)."""
        self.problem: str | None = None
        """Why the consumer cannot make progress now (storage or NATS down); ``None`` when
        it can. Health checks report it."""
        self.last_fetched_sequence = 0
        """The highest stream sequence this replica has fetched."""
        self._backoff = 0.0
        self._resume_at = 0.0
        self._tracer = trace.get_tracer(_TRACER_NAME, tracer_provider=bus.tracer_provider)
        self._register_metrics(meter or metrics.get_meter(_TRACER_NAME))

    # -- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        """Fetch, decode, commit and acknowledge until cancelled."""
        refreshing = asyncio.create_task(self._refresh_info_forever(), name="consumer-info")
        try:
            while True:
                subscription = await self._subscribe()
                try:
                    await self._consume(subscription)
                finally:
                    # A pull subscription left open makes the connection's drain wait for it.
                    with contextlib.suppress(Exception):
                        await subscription.unsubscribe()
        finally:
            refreshing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refreshing

    async def _subscribe(self) -> Any:
        """Bind to (or create) the durable consumer; waits out a missing stream or NATS."""
        settings = self.settings
        config = ConsumerConfig(
            durable_name=settings.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=settings.ack_wait_seconds,
            # Redelivery is bounded here, not by JetStream: its max_deliver would silently
            # stop delivering a message, where this consumer dead-letters it with the reason.
            max_deliver=-1,
            max_ack_pending=settings.max_ack_pending,
            filter_subject=self.subject,
        )
        attempt = 0
        while True:
            raise_if_cancelled()
            try:
                subscription = await self.bus.js.pull_subscribe(
                    self.subject, durable=settings.durable, stream=self.stream, config=config
                )
            except NotFoundError:
                problem = (
                    f"JetStream stream {self.stream} does not exist; create the platform's "
                    "streams with 'smartcity streams ensure'"
                )
            except (TimeoutError, nats.errors.Error) as exc:
                problem = f"cannot bind consumer {settings.durable!r} on {self.stream}: {exc!r}"
            else:
                if attempt:
                    _log.info("consumer bound", consumer=settings.durable, stream=self.stream)
                self.problem = None
                return subscription
            attempt += 1
            if self.problem != problem:
                _log.warning("consumer waiting", consumer=settings.durable, problem=problem)
            self.problem = problem
            await asyncio.sleep(self._delay(attempt))

    async def _consume(self, subscription: Any) -> None:
        # Decoding a fetch overlaps the commits of the previous ones (a store writes in its
        # own thread or connection, and prepares the next write meanwhile) and the next
        # fetch, asked for before this one is decoded; a fetch is acknowledged only once its
        # own commit is done.
        committing: deque[asyncio.Task[None]] = deque()
        fetching: asyncio.Future[list[Msg]] | None = None
        failures = 0
        try:
            while True:
                raise_if_cancelled()
                if fetching is not None and self._resume_at > time.monotonic():
                    # Asked for before the store was found down: not held through the wait.
                    await self._give_back(fetching, self._resume_at - time.monotonic())
                    fetching = None
                await self._wait_out_backoff()
                try:
                    messages = await (fetching or self._fetch(subscription))
                except (TimeoutError, nats.errors.TimeoutError):
                    failures = 0
                    continue
                except nats.errors.Error as exc:
                    failures += 1
                    self.problem = f"fetching from {self.stream} failed: {exc!r}"
                    _log.warning("consumer fetch failed", consumer=self.name, error=repr(exc))
                    await asyncio.sleep(self._delay(failures))
                    if failures >= 3:  # the consumer itself may be gone: bind again
                        return
                    continue
                finally:
                    fetching = None
                failures = 0
                fetching = self._fetch(subscription)
                try:
                    items = await self._decode(messages)
                except asyncio.CancelledError:
                    # Stopped between two messages: the fetch goes back at once, for any
                    # replica to take (a dead letter's acknowledgement stands).
                    for msg in messages:
                        await nak(msg, 0.0)
                    raise
                while len(committing) >= self.settings.commits_in_flight:
                    await committing.popleft()
                if items and self._resume_at > time.monotonic():
                    # Fetched before an earlier commit found the store down: hand them back
                    # rather than try a store known to be down.
                    await self._hand_back(items, self._resume_at - time.monotonic())
                elif items:
                    committing.append(asyncio.create_task(self._commit(items)))
        finally:
            # Let the commits in flight finish and acknowledge, even when cancelled; what
            # was fetched and not decoded goes back at once, for any replica to take.
            for task in committing:
                with contextlib.suppress(Exception):
                    await asyncio.shield(task)
            if fetching is not None:
                await self._give_back(fetching, 0.0)

    def _fetch(self, subscription: Any) -> asyncio.Future[list[Msg]]:
        """The next fetch, under way: it travels while the event loop does other work."""
        return asyncio.ensure_future(
            subscription.fetch(
                self.settings.fetch_batch, timeout=self.settings.fetch_timeout_seconds
            )
        )

    async def _give_back(self, fetching: asyncio.Future[list[Msg]], delay: float) -> None:
        """Hand the messages of a fetch that will not be decoded back to JetStream."""
        try:
            messages = await asyncio.shield(fetching)
        except Exception:  # nothing came (a timeout), or NATS failed: nothing to give back
            return
        for msg in messages:
            await nak(msg, delay)

    async def _decode(self, messages: Sequence[Msg]) -> list[tuple[Msg, T, Span]]:
        decoded: list[tuple[Msg, T, Span]] = []
        decode = self.handler.decode
        clock = time.perf_counter
        slice_end = 0.0  # the next fetch's request goes out first
        for msg in messages:
            if clock() > slice_end:
                # Let the loop run between messages: the commits in flight (a database's
                # replies, a writer thread's result) and the next fetch go on meanwhile.
                await asyncio.sleep(0)
                slice_end = clock() + DECODE_SLICE_SECONDS
            self.stats.fetched += 1
            metadata = msg.metadata
            self.last_fetched_sequence = max(self.last_fetched_sequence, metadata.sequence.stream)
            if metadata.num_delivered > 1:
                self.stats.redelivered += 1
            span = self._message_span(msg)
            try:
                with trace.use_span(
                    span, end_on_exit=False, record_exception=False, set_status_on_exception=False
                ):
                    item = decode(msg)
            except Rejected as exc:
                await self._deadletter(msg, str(exc), span=span)
            except Exception as exc:  # a bug met by this message: it must not stop the rest
                _log.exception("decoding raised", consumer=self.name, subject=msg.subject)
                reason = f"decoding raised {type(exc).__name__}: {exc}"
                await self._deadletter(msg, reason, span=span)
            else:
                decoded.append((msg, item, span))
        return decoded

    def _message_span(self, msg: Msg) -> Span:
        """The span of one message's handling, a child of its publisher's span; ended when
        the message gets its verdict."""
        metadata = msg.metadata
        return self._tracer.start_span(
            f"process {self.subject}",
            context=extract_context(msg),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "nats",
                "messaging.destination.name": msg.subject,
                "messaging.operation.name": "process",
                "messaging.operation.type": "process",
                "messaging.message.body.size": len(msg.data),
                "messaging.consumer.group.name": self.name,
                "messaging.nats.stream": self.stream,
                "messaging.nats.sequence": metadata.sequence.stream,
                "messaging.nats.delivered": metadata.num_delivered,
            },
        )
