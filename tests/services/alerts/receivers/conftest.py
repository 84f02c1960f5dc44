"""Real receivers on loopback: an HTTP server that records every webhook call and answers
with the statuses a test scripts, and an SMTP server (aiosmtpd) that keeps every message."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from receivers_support import STALL, Call, SmtpServer, WebhookServer, free_port, self_signed


@contextlib.asynccontextmanager
async def serving(tls: ssl.SSLContext | None = None) -> AsyncIterator[WebhookServer]:
    scheme = "http" if tls is None else "https"
    server = WebhookServer(url="")
    released = asyncio.Event()

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        server.calls.append(Call(request.path, dict(request.headers), body))
        status = server.script.popleft() if server.script else 200
        server.answers.append(status)
        if status == STALL:
            await released.wait()
            status = 200
        return web.Response(status=status, text="" if status < 300 else f"scripted {status}")

    app = web.Application()
    app.router.add_post("/{tail:.*}", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    port = runner.addresses[0][1]
    server.url = f"{scheme}://127.0.0.1:{port}/hook"
    try:
        yield server
    finally:
        released.set()
        await runner.cleanup()


@pytest.fixture
async def webhook_server() -> AsyncIterator[WebhookServer]:
    async with serving() as server:
        yield server


@pytest.fixture
async def tls_webhook_server(tmp_path: Path) -> AsyncIterator[WebhookServer]:
    """The webhook server over HTTPS; its certificate is in ``server.ca_file``."""
    cert_file, key_file = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    async with serving(context) as server:
        server.ca_file = cert_file
        yield server


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer("127.0.0.1", free_port())
    controller = Controller(server, hostname=server.host, port=server.port)
    controller.start()
    yield server
    controller.stop()


@pytest.fixture
def tls_smtp_server(tmp_path: Path) -> Iterator[SmtpServer]:
    """An SMTP server that takes mail only after STARTTLS and a login (ioc / s3cret); its
    certificate is in ``server.ca_file``."""
    cert_file, key_file = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    server = SmtpServer("127.0.0.1", free_port(), ca_file=cert_file)

    def login(
        smtp: SMTP, session: Session, envelope: Envelope, mechanism: str, data: object
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"ioc",
            b"s3cret",
        )
        server.logins.append(ok)
        return AuthResult(success=ok)

    controller = Controller(
        server,
        hostname=server.host,
        port=server.port,
        tls_context=context,
        require_starttls=True,
        authenticator=login,
        auth_require_tls=True,
    )
    controller.start()
    yield server
    controller.stop()
