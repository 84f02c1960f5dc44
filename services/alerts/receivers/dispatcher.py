"""The dispatcher: takes notifications, keeps them on disk, and delivers them in the
background until each is delivered or given up.

``await dispatcher.submit(notification)`` returns once the notification is in the outbox
(:mod:`.store`), with its id; delivery happens later, in a background task, so a slow or
unreachable receiver never holds the caller up. A failed attempt that may succeed later
(a 5xx, a timeout, an SMTP 4xx) is tried again after an exponential back-off, capped; the
last attempt is made when ``give_up_after_seconds`` have passed since submission, and if it
fails too the notification is failed for good. A refusal that retrying cannot cure (a 4xx,
an SMTP 5xx, a receiver no longer configured) fails it at once. Every attempt is recorded
with its start, duration, outcome, HTTP status or SMTP code, and error: :meth:`attempts`.

Across a restart nothing is lost: :meth:`start` resumes every notification still pending.
Delivery is at least once: a process that dies after a receiver accepted a notification but
before the attempt was recorded sends it again on restart (the payload's ``groupKey`` and
the alerts' fingerprints let a receiver recognise it).
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

import aiohttp

from smartcity.runtime.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from smartcity.runtime.logs import get_logger
from smartcity.runtime.storage.errors import StoreError
from smartcity.services.alerts.receivers import email, webhook
from smartcity.services.alerts.receivers.config import (
    EmailReceiver,
    ReceiversConfig,
    WebhookReceiver,
)
from smartcity.services.alerts.receivers.model import (
    DeliveryAttempt,
    DeliveryState,
    DeliveryStatus,
    Notification,
    Outcome,
    SendResult,
)
from smartcity.services.alerts.receivers.store import OutboxStore, Pending

_log = get_logger(__name__)
USER_AGENT = "smartcity-alerts/1"


class Dispatcher:
    """Delivers notifications to the receivers named in ``config``, keeping its outbox in
    the SQLite file at ``store`` (a path or a ``sqlite:`` URL). ``clock`` gives wall-clock
    seconds; the outbox's times are wall-clock so that they mean the same after a restart.
    """

    def __init__(
        self,
        config: ReceiversConfig,
        store: str | Path,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._store = OutboxStore(store)
        self._clock = clock
        self._waiting: dict[int, Pending] = {}
        self._due: list[tuple[float, int]] = []
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the outbox, resume what is pending and start delivering."""
        if self._worker is not None:
            raise FailedPrecondition("the dispatcher is already running")
        await self._store.open()
        try:
            for pending in await self._store.pending():
                self._schedule(pending)
        except BaseException:
            await self._store.close()
            raise
        self._session = aiohttp.ClientSession()
        self._worker = asyncio.create_task(self._run(), name="alerts-dispatcher")
        if self._waiting:
            _log.info("resuming pending notifications", count=len(self._waiting))

    async def close(self) -> None:
        """Stop delivering; what is in flight stays pending in the outbox for next time."""
        worker, self._worker = self._worker, None
        tasks = [task for task in (worker, *self._inflight.values()) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._inflight.clear()
        self._waiting.clear()
        self._due.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self._store.close()

    async def __aenter__(self) -> Dispatcher:
        await self.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # -- what callers use ------------------------------------------------------------------

    async def submit(self, notification: Notification) -> int:
        """Keep ``notification`` in the outbox and return its id; delivery follows in the
        background. Refused: anything but a :class:`Notification`, or one naming a
        receiver that is not configured."""
        if not isinstance(notification, Notification):
            raise InvalidArgument(
                f"a notification must be a Notification, not {type(notification).__name__}"
            )
        if notification.receiver not in self._config.receivers:
            known = ", ".join(sorted(self._config.receivers)) or "none"
            raise InvalidArgument(
                f"receiver {notification.receiver!r} is not configured (configured: {known})"
            )
        if self._worker is None:
            raise FailedPrecondition("the dispatcher is not running")
        now = self._clock()
        try:
            notification_id = await self._store.add(notification, now)
        except StoreError as exc:
            raise Unavailable(f"the notification could not be stored: {exc}") from exc
        self._schedule(Pending(notification_id, notification, now, 0, now))
        return notification_id

    async def attempts(self, notification_id: int) -> list[DeliveryAttempt]:
        """Every attempt to deliver the notification, oldest first."""
        await self.status(notification_id)
        return await self._store.attempts(notification_id)

    async def status(self, notification_id: int) -> DeliveryStatus:
        status = await self._store.status(notification_id)
        if status is None:
            raise NotFound(f"no notification {notification_id}")
        return status

    @property
    def pending(self) -> int:
        """Notifications not yet delivered or given up."""
        return len(self._waiting)

    # -- delivery --------------------------------------------------------------------------

    def _schedule(self, pending: Pending) -> None:
        # Waiting is timed on the monotonic clock, so that a wall clock set back does not
        # hold deliveries up; the outbox keeps wall-clock times, which outlive the process.
        wait = max(pending.next_attempt_at - self._clock(), 0.0)
        self._waiting[pending.notification_id] = pending
        heapq.heappush(self._due, (time.monotonic() + wait, pending.notification_id))
        self._wake.set()

    async def _run(self) -> None:
        limit = self._config.concurrency
        while True:
            now = time.monotonic()
            while self._due and self._due[0][0] <= now and len(self._inflight) < limit:
                _, notification_id = heapq.heappop(self._due)
                pending = self._waiting.get(notification_id)
                if pending is None or notification_id in self._inflight:
                    continue
                task = asyncio.create_task(self._deliver(pending))
                self._inflight[notification_id] = task
                task.add_done_callback(lambda _, key=notification_id: self._finished(key))
            delay = None
            if self._due and len(self._inflight) < limit:
                delay = max(self._due[0][0] - now, 0.0)
            self._wake.clear()
            try:
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def _finished(self, notification_id: int) -> None:
        self._inflight.pop(notification_id, None)
        self._wake.set()

    async def _send(self, pending: Pending) -> SendResult:
        receiver = self._config.receivers.get(pending.notification.receiver)
        external_url = self._config.external_url
        if isinstance(receiver, WebhookReceiver):
            assert self._session is not None
            return await webhook.send(
                self._session,
                receiver,
                pending.notification,
                external_url=external_url,
                user_agent=USER_AGENT,
            )
        if isinstance(receiver, EmailReceiver):
            return await email.send(receiver, pending.notification, external_url=external_url)
        # Possible after a restart with a different configuration.
        return SendResult(
            Outcome.FAILED, None, f"receiver {pending.notification.receiver!r} is not configured"
        )

    async def _deliver(self, pending: Pending) -> None:
        number = pending.attempts + 1
        started = self._clock()
        clock_start = time.perf_counter()
        try:
            result = await self._send(pending)
        except Exception as exc:  # a receiver's bug must not stop the others
            _log.exception("receiver failed unexpectedly", receiver=pending.notification.receiver)
            result = SendResult(Outcome.RETRY, None, f"{type(exc).__name__}: {exc}")
        duration = time.perf_counter() - clock_start
        outcome, error, next_at = result.outcome, result.error, None
        if outcome is Outcome.RETRY:
            now = self._clock()
            deadline = pending.submitted_at + self._config.retry.give_up_after_seconds
            if now >= deadline:
                outcome = Outcome.FAILED
                error = f"gave up after {number} attempts over {now - pending.submitted_at:.0f} s: "
                error += result.error
            else:
                next_at = min(now + self._config.retry.backoff(number), deadline)
        state = {
            Outcome.DELIVERED: DeliveryState.DELIVERED,
            Outcome.RETRY: DeliveryState.PENDING,
            Outcome.FAILED: DeliveryState.FAILED,
        }[outcome]
        attempt = DeliveryAttempt(
            notification_id=pending.notification_id,
            number=number,
            receiver=pending.notification.receiver,
            started_at=datetime.fromtimestamp(started, UTC),
            duration_seconds=duration,
            outcome=outcome,
            code=result.code,
            error=error,
        )
        try:
            await self._store.record(attempt, state, next_at)
        except StoreError:
            # Unrecorded, the attempt did not happen as far as the outbox knows: try again
            # later (a receiver that did take it may then see it twice).
            _log.exception("delivery attempt not recorded", notification=pending.notification_id)
            retry_at = self._clock() + self._config.retry.backoff(number)
            self._schedule(replace(pending, next_attempt_at=retry_at))
            return
        if state is DeliveryState.PENDING and next_at is not None:
            self._schedule(replace(pending, attempts=number, next_attempt_at=next_at))
        else:
            self._waiting.pop(pending.notification_id, None)
            if state is DeliveryState.FAILED:
                _log.warning(
                    "notification not delivered",
                    notification=pending.notification_id,
                    receiver=pending.notification.receiver,
                    error=error,
                )
