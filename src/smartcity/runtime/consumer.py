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
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import nats.errors
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy
from nats.js.errors import NotFoundError
from opentelemetry import metrics, trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from smartcity.runtime import subjects
from smartcity.runtime.bus import Bus, extract_context
from smartcity.runtime.cancellation import raise_if_cancelled
from smartcity.runtime.config import ConsumerSettings
from smartcity.runtime.logs import get_logger

__all__ = [
    "DEADLETTER_CONSUMER_HEADER",
    "DEADLETTER_DELIVERIES_HEADER",
    "DEADLETTER_REASON_HEADER",
    "DEADLETTER_SEQUENCE_HEADER",
    "DEADLETTER_SUBJECT_HEADER",
    "ConsumerStats",
    "Handler",
    "JetStreamConsumer",
    "Rejected",
]

T = TypeVar("T")

DEADLETTER_REASON_HEADER = "Smartcity-Deadletter-Reason"
DEADLETTER_SUBJECT_HEADER = "Smartcity-Original-Subject"
DEADLETTER_SEQUENCE_HEADER = "Smartcity-Original-Sequence"
DEADLETTER_CONSUMER_HEADER = "Smartcity-Consumer"
DEADLETTER_DELIVERIES_HEADER = "Smartcity-Deliveries"
MAX_REASON_LENGTH = 1000
"""Characters of a reason kept in the dead-letter header (a header is one line)."""
INFO_INTERVAL_SECONDS = 5.0
"""How often the consumer's JetStream state (lag, ack floor) is refreshed."""
DECODE_SLICE_SECONDS = 0.002
"""How long decoding a fetch holds the event loop before it lets other tasks run."""

_log = get_logger(__name__)
_TRACER_NAME = "smartcity.runtime.consumer"
VERDICT_ATTRIBUTE = "smartcity.consumer.verdict"


class Rejected(Exception):  # noqa: N818 - a verdict on a message, not a failure of ours
    """The message can never be handled; the text says why (it goes with the dead letter)."""


class Handler(Protocol[T]):
    """What a service gives the consumer."""

    def decode(self, msg: Msg) -> T:
        """The item ``msg`` carries; :class:`Rejected` when it can never be one. The
        message's span is the current one while this runs."""
        ...

    async def commit(self, items: Sequence[T]) -> None:
        """Make ``items`` durable together (all or nothing); the messages are acknowledged
        once this returns. Called again with the same items after a failure, so it must be
        idempotent; and called for the next fetch before this call returned (up to
        ``commits_in_flight`` at once), so a store must keep concurrent commits apart."""
        ...

    def is_transient(self, error: Exception) -> bool:
        """Whether ``error`` from :meth:`commit` means "the store cannot now" (wait and
        retry everything) rather than "the store refuses these items"."""
        ...


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


class JetStreamConsumer(Generic[T]):
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

    @property
    def name(self) -> str:
        return self.settings.durable

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
                        await _nak(msg, 0.0)
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
            await _nak(msg, delay)

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
            await _nak(msg, delay)
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
        await _nak(msg, delay)
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
            await _nak(msg, self._delay(2))
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

    # -- state -----------------------------------------------------------------------------

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


def _end(span: Span, verdict: str, problem: str | None = None) -> None:
    span.set_attribute(VERDICT_ATTRIBUTE, verdict)
    if problem:
        span.set_status(Status(StatusCode.ERROR, problem))
    span.end()


async def _ack(msg: Msg) -> None:
    # A lost acknowledgement only means a redelivery, which the commit's idempotence absorbs.
    with contextlib.suppress(Exception):
        await msg.ack()


async def _nak(msg: Msg, delay: float) -> None:
    with contextlib.suppress(Exception):
        await msg.nak(delay=delay)
