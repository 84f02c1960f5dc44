"""The console process: the Starlette application (JSON API, live events, the static page)
and uvicorn serving it on a socket bound before anything starts, so that a port in use is
reported at once and port 0 picks a free one.

On the way out, live streams end first (uvicorn would otherwise wait for them), then every
logged-in session is logged out at identity: sessions live in memory only, so nobody could
use those tokens after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smartcity.runtime.logs import get_logger
from smartcity.services.console import actions, api
from smartcity.services.console.backend import Backend, GrpcBackend
from smartcity.services.console.events import EventHub, events
from smartcity.services.console.login import (
    Authenticator,
    login,
    logout,
    session_info,
    verify_totp,
)
from smartcity.services.console.sessions import SessionStore
from smartcity.services.console.settings import ConsoleSettings
from smartcity.services.console.web import Console, json_response

__all__ = ["STATIC", "ConsoleServer", "PortInUseError", "build_app"]

STATIC = Path(__file__).parent / "static"
_log = get_logger(__name__)

# The page loads only what it ships: no CDN, no inline script. uPlot sizes its parts with
# inline styles, hence 'unsafe-inline' for styles alone.
_SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        b"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
        b"form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


class _SecurityHeaders:
    """Adds the security headers to every HTTP response (pure ASGI, so that live streams
    pass through unbuffered)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *_SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, receive, sending)


async def _healthz(request: Request) -> Response:
    return json_response({"status": "serving"})


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
    if request.url.path.startswith("/api/"):
        return json_response({"error": str(detail), "code": f"HTTP_{status}"}, status)
    return Response(str(detail), status, media_type="text/plain")


async def _housekeeping(console: Console) -> None:
    """End idle sessions (logging them out at identity) and refresh the tokens of sessions
    that only watch live streams, so that their streams never run on an expired token."""
    settings = console.settings
    while True:
        await asyncio.sleep(settings.housekeeping_seconds)
        try:
            ended = console.sessions.expire()
            await asyncio.gather(
                *(console.auth.logout_at_identity(s.tokens) for s in ended if s.tokens),
                return_exceptions=True,
            )
            now = console.sessions.now()
            due = [
                s
                for s in console.sessions
                if s.authenticated
                and s.streams
                and s.tokens is not None
                and s.tokens.due(now, settings.refresh_margin_seconds)
            ]
            await asyncio.gather(*(console.auth.refresh(s) for s in due), return_exceptions=True)
        except Exception:  # one bad round must not stop the next
            _log.exception("console_housekeeping_failed")


def close_streams(console: Console, reason: str) -> None:
    for session in console.sessions:
        for stream in list(session.streams):
            stream.close(reason)


def build_app(
    settings: ConsoleSettings,
    backend: Callable[[], Backend] | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """The console application. ``backend`` makes the service stubs inside the event loop
    (default: channels to ``settings.targets``); ``clock`` tells sessions the time."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        made = backend() if backend is not None else GrpcBackend(settings)
        sessions = SessionStore(settings, clock)
        auth = Authenticator(settings, made, sessions)
        hub = EventHub(settings, made, auth.token, sessions.now)
        console = Console(settings, made, sessions, auth, hub)
        app.state.console = console
        keeping = asyncio.create_task(_housekeeping(console))
        try:
            yield
        finally:
            keeping.cancel()
            close_streams(console, "the console is shutting down")
            logged_in = [s.tokens for s in sessions if s.authenticated and s.tokens]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(
                        *(auth.logout_at_identity(t) for t in logged_in), return_exceptions=True
                    ),
                    timeout=5,
                )
            await made.close()

    routes: list[Any] = [
        Route("/healthz", _healthz, methods=["GET"]),
        Route("/api/session", session_info, methods=["GET"]),
        Route("/api/login", login, methods=["POST"]),
        Route("/api/login/totp", verify_totp, methods=["POST"]),
        Route("/api/logout", logout, methods=["POST"]),
        Route("/api/events", events, methods=["GET"]),
        *(Route(path, handler, methods=methods) for path, handler, methods in api.ROUTES),
        *(Route(path, handler, methods=methods) for path, handler, methods in actions.ROUTES),
        Mount("/", StaticFiles(directory=STATIC, html=True), name="static"),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, 500: _http_error},
    )
    app.add_middleware(_SecurityHeaders)
    return app


class PortInUseError(OSError):
    """The address the console was asked to listen on is taken."""


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket on ``host:port`` (0: a free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise PortInUseError(
                errno.EADDRINUSE, f"port {port} on {host} is already in use"
            ) from None
        raise
    return sock


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the caller decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


class ConsoleServer:
    """The application under uvicorn on a socket of its own."""

    def __init__(
        self,
        settings: ConsoleSettings,
        host: str = "127.0.0.1",
        port: int = 8080,
        backend: Callable[[], Backend] | None = None,
    ) -> None:
        self.app = build_app(settings, backend)
        self._socket = bind(host, port)
        bound = self._socket.getsockname()
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{bound[1]}"
        self._server = _Server(
            uvicorn.Config(
                self.app,
                log_config=None,
                access_log=False,
                lifespan="on",
                server_header=False,
                timeout_graceful_shutdown=5,
            )
        )

    async def run(self, stop: asyncio.Event, on_ready: Callable[[str], None] | None = None) -> None:
        """Serve until ``stop`` is set; ``on_ready(url)`` once it listens."""
        serving = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        try:
            while not self._server.started:
                if serving.done():
                    serving.result()
                    return
                await asyncio.sleep(0.02)
            if on_ready is not None:
                on_ready(self.url)
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait([serving, stopping], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
        finally:
            console = getattr(self.app.state, "console", None)
            if console is not None:
                close_streams(console, "the console is shutting down")
            self._server.should_exit = True
            await serving
