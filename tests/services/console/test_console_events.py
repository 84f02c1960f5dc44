"""The live stream (``/api/events``): what the services stream reaches the tab with the user's
token; a tab that falls behind is told to re-fetch instead of slowing anything; streams per
session are capped; a stream ends when its session does; a refreshed token reopens the
service streams; a source that fails is reported and reopened. The service stand-ins answer
in-process; the HTTP side runs on a real uvicorn on loopback."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
from console_fakes import PASSWORD, Services, reading, rpc_error
from console_support import serving, settings
from support import eventually

from smartcity.alerts.v1 import alerts_pb2
from smartcity.monitoring.v1 import monitoring_pb2
from smartcity.services.console.app import ConsoleServer
from smartcity.services.console.events import EventHub, LiveEvents
from smartcity.services.console.sessions import SessionStore, TokenPair, User


async def _next_event(frames: AsyncIterator[str]) -> tuple[str, Any]:
    """The next event of a stream of SSE frames (comments and ``retry`` skipped)."""
    async for frame in frames:
        if frame.startswith("event: "):
            head, data = frame.strip("\n").split("\n", 1)
            return head.removeprefix("event: "), json.loads(data.removeprefix("data: "))
    raise AssertionError("the stream ended")


def _live(services: Services, **overrides: Any) -> tuple[LiveEvents, SessionStore]:
    store = SessionStore(settings(**overrides))
    now = time.time()
    session = store.promote(
        store.open(), TokenPair("access-1", now + 900, "r", now), User("p", "u", "u", None)
    )
    services.tokens["access-1"] = "op.an"

    async def token(_: object) -> str:
        return "access-1"

    hub = EventHub(settings(**overrides), services.backend(), token, time.time)
    return hub.open(session, [""], "", 0), store


def _event(revision: int) -> alerts_pb2.WatchAlertsResponse:
    event = alerts_pb2.AlertEvent(revision=revision, type=alerts_pb2.AlertEvent.TYPE_FIRING)
    event.alert.fingerprint = f"fp-{revision}"
    return alerts_pb2.WatchAlertsResponse(event=event)


async def test_a_tab_that_falls_behind_is_told_to_resync_and_nothing_waits() -> None:
    services = Services()
    stream, _ = _live(services, stream_queue_size=3)
    frames = stream.frames()
    assert (await _next_event(frames))[0] == "hello"
    for revision in range(1, 11):  # ten events while the tab reads nothing
        stream.push("alert", {"revision": revision})
    got = [await _next_event(frames) for _ in range(4)]
    assert got == [
        ("resync", {"what": "alerts"}),
        ("resync", {"what": "readings"}),
        ("alert", {"revision": 9}),
        ("alert", {"revision": 10}),
    ]
    stream.close("test over")
    assert await _next_event(frames) == ("end", {"reason": "test over"})
    await frames.aclose()


async def test_a_refreshed_token_reopens_the_service_streams_with_it() -> None:
    services = Services()
    stream, store = _live(services)
    frames = stream.frames()
    assert (await _next_event(frames))[0] == "hello"
    await eventually(lambda: len(services.streams) == 2, what="the alert and reading streams")
    assert {s.token for s in services.streams} == {"access-1"}
    watch = services.streams[0]
    watch.queue.put_nowait(_event(41))
    assert (await _next_event(frames))[1]["revision"] == 41
    (session,) = list(store)
    now = time.time()
    session.renewed(TokenPair("access-2", now + 900, "r2", now))
    await eventually(lambda: len(services.streams) == 4, what="the streams reopened")
    assert [s.token for s in services.streams[2:]] == ["access-2", "access-2"]
    assert all(s.cancelled for s in services.streams[:2])
    reopened = next(
        s for s in services.streams[2:] if isinstance(s.request, alerts_pb2.WatchAlertsRequest)
    )
    assert reopened.request.since_revision == 41  # nothing in between is missed
    await frames.aclose()
    await eventually(lambda: all(s.cancelled for s in services.streams), what="streams closed")


async def test_a_failing_source_is_reported_and_reopened() -> None:
    services = Services()
    stream, _ = _live(services)
    frames = stream.frames()
    assert (await _next_event(frames))[0] == "hello"
    await eventually(lambda: len(services.streams) == 2, what="the service streams")
    readings = next(
        s for s in services.streams if isinstance(s.request, monitoring_pb2.StreamReadingsRequest)
    )
    readings.queue.put_nowait(rpc_error(grpc.StatusCode.UNAVAILABLE, "monitoring restarts"))
    assert await _next_event(frames) == (
        "status",
        {"source": "monitoring:*", "ok": False, "message": "monitoring restarts"},
    )
    await eventually(lambda: len(services.streams) == 3, what="the reading stream reopened")
    services.streams[2].queue.put_nowait(
        monitoring_pb2.StreamReadingsResponse(readings=[reading(2.0)])
    )
    assert await _next_event(frames) == (
        "status",
        {"source": "monitoring:*", "ok": True, "message": ""},
    )
    kind, data = await _next_event(frames)
    assert kind == "readings"
    assert data[0]["value"] == 2.0
    await frames.aclose()


# -- over HTTP ----------------------------------------------------------------------------------


def _serving(services: Services, **overrides: Any) -> contextlib.AbstractAsyncContextManager[str]:
    return serving(ConsoleServer(settings(**overrides), "127.0.0.1", 0, backend=services.backend))


@contextlib.asynccontextmanager
async def _browser(url: str, username: str) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    async with aiohttp.ClientSession(url, cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get("/api/session") as reply:
            csrf = (await reply.json())["csrf_token"]
        body = {"username": username, "password": PASSWORD}
        async with http.post("/api/login", json=body, headers={"X-CSRF-Token": csrf}) as reply:
            assert reply.status == 200, await reply.text()
            yield http, (await reply.json())["csrf_token"]


async def _sse(reply: aiohttp.ClientResponse) -> AsyncIterator[str]:
    frame = ""
    async for line in reply.content:
        frame += line.decode()
        if frame.endswith("\n\n"):
            yield frame
            frame = ""


async def test_the_stream_carries_alert_events_and_readings_with_the_users_token() -> None:
    services = Services()
    async with (
        _serving(services) as url,
        _browser(url, "op.an") as (http, _),
        http.get("/api/events", params={"since": "7"}) as reply,
    ):
        assert reply.status == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        frames = _sse(reply)
        assert await _next_event(frames) == (
            "hello",
            {"revision": 7, "fields": [""], "site": ""},
        )
        await eventually(lambda: len(services.streams) == 2, what="the service streams")
        assert {s.token for s in services.streams} == {"access-1"}
        live, watch = sorted(services.streams, key=lambda s: type(s.request).__name__)
        assert watch.request.since_revision == 7
        watch.queue.put_nowait(_event(8))
        kind, data = await _next_event(frames)
        assert kind == "alert"
        assert data["revision"] == 8
        assert data["alert"]["fingerprint"] == "fp-8"
        live.queue.put_nowait(monitoring_pb2.StreamReadingsResponse(readings=[reading(1.25)]))
        kind, data = await _next_event(frames)
        assert kind == "readings"
        assert data[0]["value"] == 1.25


async def test_streams_per_session_are_capped_and_end_with_the_session() -> None:
    services = Services()
    async with (
        _serving(services, max_streams_per_session=1) as url,
        _browser(url, "op.an") as (
            http,
            csrf,
        ),
    ):
        async with http.get("/api/events") as first:
            frames = _sse(first)
            assert (await _next_event(frames))[0] == "hello"
            async with http.get("/api/events") as second:
                assert second.status == 429
                assert "live streams open" in (await second.json())["error"]
            async with http.post("/api/logout", headers={"X-CSRF-Token": csrf}) as out:
                assert out.status == 200
            assert await _next_event(frames) == ("end", {"reason": "logged out"})
            assert await first.content.read() == b""  # and the response is over
        await eventually(lambda: all(s.cancelled for s in services.streams), what="streams closed")
