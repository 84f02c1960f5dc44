"""``GET /api/events``: one Server-Sent Events stream per browser tab, carrying the readings
of monitoring's ``StreamReadings`` and the alert events of alerts' ``WatchAlerts``.

Each stream reads its gRPC streams in tasks of its own and puts what arrives in a bounded
queue; the browser's connection drains it. A tab that cannot keep up never slows anything:
when its queue is full, what waits is dropped and the tab is sent ``resync``, telling it to
fetch the lists again. A session holds at most a few streams, and they end (with ``end``)
when the session does. When the session's access token is refreshed, the gRPC streams are
reopened with the new one (alerts from the last revision seen, readings with the latest
values first), so nothing is missed.

Events: ``hello`` (once), ``readings`` (a list of readings), ``alert`` (an alert event),
``status`` (a source went away or came back), ``resync`` (``what``: readings or alerts),
``end`` (``reason``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Any

import grpc
import grpc.aio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from smartcity.alerts.v1 import alerts_pb2
from smartcity.common.v1 import common_pb2
from smartcity.monitoring.v1 import monitoring_pb2
from smartcity.runtime.logs import get_logger
from smartcity.services.console import convert
from smartcity.services.console.backend import ApiError, Backend, bearer
from smartcity.services.console.sessions import Session
from smartcity.services.console.settings import ConsoleSettings
from smartcity.services.console.web import COOKIE, Console, error_response, identifier, integer

__all__ = ["EventHub", "LiveEvents", "events"]

_log = get_logger(__name__)
_RETRY_FIRST, _RETRY_MAX = 0.5, 15.0


class LiveEvents:
    """One browser tab's stream."""

    def __init__(
        self, hub: EventHub, session: Session, fields: list[str], site: str, since: int
    ) -> None:
        self._hub = hub
        self._session = session
        self._fields = fields
        self._site = site
        self.revision = since
        self._queue: collections.deque[str] = collections.deque()
        self._ready = asyncio.Event()
        self._lagged: set[str] = set()
        self._closed: str | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- what the session and the producers call --------------------------------------------

    def push(self, kind: str, data: Any) -> None:
        """Queue one event; never waits. A full queue is emptied and the tab told to re-fetch
        what was lost."""
        if self._closed is not None:
            return
        if len(self._queue) >= self._hub.settings.stream_queue_size:
            self._lagged.update(("readings", "alerts"))
            self._queue.clear()
        else:
            self._queue.append(f"event: {kind}\ndata: {json.dumps(data)}\n\n")
        self._ready.set()

    def renew(self) -> None:
        if self._closed is None and self._tasks:
            self._stop_tasks()
            self._start_tasks()

    def close(self, reason: str) -> None:
        if self._closed is None:
            self._closed = reason
        self._stop_tasks()
        self._ready.set()

    # -- the HTTP side ------------------------------------------------------------------------

    async def frames(self) -> AsyncGenerator[str, None]:
        session = self._session
        if len(session.streams) >= self._hub.settings.max_streams_per_session:
            yield _end("too many live streams for this session; close another tab")
            return
        session.streams.add(self)
        try:
            self._start_tasks()
            yield "retry: 3000\n\n"
            hello = {"revision": self.revision, "fields": self._fields, "site": self._site}
            yield f"event: hello\ndata: {json.dumps(hello)}\n\n"
            while True:
                self._ready.clear()
                lagged, self._lagged = self._lagged, set()
                for what in sorted(lagged):
                    yield f"event: resync\ndata: {json.dumps({'what': what})}\n\n"
                while self._queue:
                    yield self._queue.popleft()
                if self._closed is not None:
                    yield _end(self._closed)
                    return
                try:
                    async with asyncio.timeout(self._hub.settings.keepalive_seconds):
                        await self._ready.wait()
                except TimeoutError:
                    session.last_seen = self._hub.now()
                    yield ": keepalive\n\n"
        finally:
            session.streams.discard(self)
            self.close("the browser went away")

    # -- producers ----------------------------------------------------------------------------

    def _start_tasks(self) -> None:
        work = [self._alerts(), *(self._readings(field) for field in self._fields)]
        self._tasks = [asyncio.create_task(job) for job in work]

    def _stop_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks = []

    def _token(self) -> str | None:
        tokens = self._session.tokens
        return None if tokens is None or self._session.ended else tokens.access_token

    async def _alerts(self) -> None:
        backend = self._hub.backend

        def opened(token: str) -> Any:
            request = alerts_pb2.WatchAlertsRequest(since_revision=self.revision)
            return backend.alerts.WatchAlerts(request, metadata=bearer(token))

        def each(reply: alerts_pb2.WatchAlertsResponse) -> None:
            self.revision = max(self.revision, reply.event.revision)
            self.push("alert", convert.alert_event(reply.event))

        await self._follow("alerts", opened, each)

    async def _readings(self, field: str) -> None:
        backend = self._hub.backend
        selector = common_pb2.SeriesSelector(field=field, site=self._site)

        def opened(token: str) -> Any:
            request = monitoring_pb2.StreamReadingsRequest(selector=selector, include_latest=True)
            return backend.monitoring.StreamReadings(request, metadata=bearer(token))

        def each(reply: monitoring_pb2.StreamReadingsResponse) -> None:
            if reply.readings:
                self.push("readings", [convert.reading(r) for r in reply.readings])

        await self._follow(f"monitoring:{field or '*'}", opened, each)

    async def _follow(
        self, source: str, opened: Callable[[str], Any], each: Callable[[Any], None]
    ) -> None:
        """Read one gRPC stream, reopening it after failures with growing pauses; stop for
        good when the user may not read it or the session has ended."""
        pause = _RETRY_FIRST
        failing = False
        while (token := self._token()) is not None:
            call = opened(token)
            code, message = grpc.StatusCode.UNAVAILABLE, f"{source} ended the stream"
            try:
                async for reply in call:
                    if failing:
                        failing = False
                        self.push("status", {"source": source, "ok": True, "message": ""})
                    pause = _RETRY_FIRST
                    each(reply)
            except grpc.aio.AioRpcError as error:
                code, message = error.code(), error.details() or error.code().name
            except Exception:  # a bug must not end the tab's stream for good
                _log.exception("console_stream_failed", source=source)
            finally:
                call.cancel()
            if code == grpc.StatusCode.FAILED_PRECONDITION and source == "alerts":
                self.revision = 0  # the history asked for is gone: list again, watch from now
                self._lagged.add("alerts")
                self._ready.set()
                continue
            failing = True
            self.push("status", {"source": source, "ok": False, "message": message})
            if code == grpc.StatusCode.PERMISSION_DENIED:
                return
            if code == grpc.StatusCode.UNAUTHENTICATED:
                with contextlib.suppress(ApiError):
                    await self._hub.auth_token(self._session)
            await asyncio.sleep(pause)
            pause = min(pause * 2, _RETRY_MAX)


def _end(reason: str) -> str:
    return f"event: end\ndata: {json.dumps({'reason': reason})}\n\n"


class EventHub:
    """Opens live streams for sessions."""

    def __init__(
        self,
        settings: ConsoleSettings,
        backend: Backend,
        auth_token: Callable[[Session], Coroutine[Any, Any, str]],
        now: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.auth_token = auth_token
        self.now = now

    def open(self, session: Session, fields: list[str], site: str, since: int) -> LiveEvents:
        if len(session.streams) >= self.settings.max_streams_per_session:
            raise ApiError(
                429,
                f"this session already has {len(session.streams)} live streams open (the "
                "most allowed); close another tab",
                "RESOURCE_EXHAUSTED",
            )
        return LiveEvents(self, session, fields, site, since)


async def events(request: Request) -> Response:
    """``GET /api/events?field=&site=&since=<alert revision>``."""
    console: Console = request.app.state.console
    try:
        session = console.sessions.get(request.cookies.get(COOKIE))
        if session is None or not session.authenticated or session.user is None:
            raise ApiError(401, "not logged in", "UNAUTHENTICATED")
        query = request.query_params
        field, site = identifier(query, "field"), identifier(query, "site")
        since = integer(query, "since", 0, 0, 2**63 - 1)
        await console.auth.token(session)  # refreshed now if due, so the streams start fresh
        if field:
            fields = [field]
        else:
            viewable = session.user.viewable_fields()
            fields = [""] if viewable is None else sorted(viewable)
        stream = console.hub.open(session, fields, site, since)
    except ApiError as error:
        return error_response(error)
    return _EventStream(
        stream.frames(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


class _EventStream(StreamingResponse):
    """Closes its frames when the response ends for any reason, so that a browser that went
    away releases its service streams at once rather than when the generator is collected."""

    def __init__(self, frames: AsyncGenerator[str, None], **options: Any) -> None:
        super().__init__(frames, **options)
        self._frames = frames

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._frames.aclose()
