"""Driving the console without a network: an in-process ASGI client with a cookie jar like a
browser's, the application built over the service stand-ins of :mod:`console_fakes`, and a
clock the tests move."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any

from console_fakes import PASSWORD, Services

from smartcity.services.console.app import ConsoleServer, build_app
from smartcity.services.console.settings import ConsoleSettings, Targets

TARGETS = Targets("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4")


def settings(**overrides: Any) -> ConsoleSettings:
    return ConsoleSettings(targets=TARGETS, **overrides)


# -- an ASGI client that needs no socket --------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class AsgiClient:
    """Requests straight into the application, with the application's lifespan around them
    and a cookie jar like a browser's."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.cookies: dict[str, str] = {}
        self.csrf = ""

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[AsgiClient]:
        started: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        await inbox.put({"type": "lifespan.startup"})

        async def send(message: dict[str, Any]) -> None:
            await started.put(message)

        task = asyncio.create_task(self.app({"type": "lifespan", "state": {}}, inbox.get, send))
        assert (await started.get())["type"] == "lifespan.startup.complete"
        try:
            yield self
        finally:
            await inbox.put({"type": "lifespan.shutdown"})
            assert (await started.get())["type"] == "lifespan.shutdown.complete"
            await task

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: str | bytes = b"",
        headers: Iterable[tuple[bytes, bytes]] = (),
        body: bytes = b"",
        json_body: Any = None,
        csrf: bool = True,
    ) -> Reply:
        given = list(headers)
        if json_body is not None:
            body = json.dumps(json_body).encode()
            given.append((b"content-type", b"application/json"))
        if csrf and self.csrf and method not in ("GET", "HEAD"):
            given.append((b"x-csrf-token", self.csrf.encode()))
        if self.cookies and not any(name == b"cookie" for name, _ in given):
            jar = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            given.append((b"cookie", jar.encode("latin-1")))
        given.append((b"host", b"console.test"))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": urllib.parse.unquote(path),
            "raw_path": path.encode(),
            "query_string": query.encode() if isinstance(query, str) else query,
            "root_path": "",
            "headers": given,
            "client": ("203.0.113.9", 50000),
            "server": ("console.test", 80),
        }
        sent = False
        done = asyncio.Event()

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        status, reply_headers, chunks = 0, {}, []

        async def send(message: dict[str, Any]) -> None:
            nonlocal status, reply_headers
            if message["type"] == "http.response.start":
                status = message["status"]
                reply_headers = {k.decode(): v.decode("latin-1") for k, v in message["headers"]}
                for key, value in message["headers"]:
                    if key == b"set-cookie":
                        self._remember(value.decode("latin-1"))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    done.set()

        await self.app(scope, receive, send)
        done.set()
        return Reply(status, reply_headers, b"".join(chunks))

    def _remember(self, header: str) -> None:
        cookie = SimpleCookie()
        cookie.load(header)
        for name, morsel in cookie.items():
            if morsel["max-age"] == "0" or not morsel.value:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = morsel.value

    async def session(self) -> dict[str, Any]:
        reply = await self.request("GET", "/api/session")
        assert reply.status == 200, reply.body
        body = reply.json()
        self.csrf = body["csrf_token"]
        return body

    async def login(self, username: str, password: str = PASSWORD) -> Reply:
        await self.session()
        reply = await self.request(
            "POST", "/api/login", json_body={"username": username, "password": password}
        )
        if reply.status == 200:
            self.csrf = reply.json()["csrf_token"]
        return reply


@dataclass
class Clock:
    """Seconds since the epoch, starting now and moved by the tests."""

    now: float = field(default_factory=time.time)

    def __call__(self) -> float:
        return self.now


@contextlib.asynccontextmanager
async def console(
    services: Services, clock: Clock | None = None, **overrides: Any
) -> AsyncIterator[AsgiClient]:
    app = build_app(settings(**overrides), services.backend, clock or time.time)
    async with AsgiClient(app).running() as client:
        yield client


__all__ = ["AsgiClient", "Clock", "Reply", "console", "settings"]


@contextlib.asynccontextmanager
async def serving(server: ConsoleServer) -> AsyncIterator[str]:
    """``server`` listening on its port for the block; its base URL."""
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(server.run(stop, on_ready=ready.set_result))
    try:
        yield await asyncio.wait_for(ready, 10)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
