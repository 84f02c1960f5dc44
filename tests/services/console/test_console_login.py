"""Logging in through the console, without a network: the cookie, the session replaced at
login, TOTP, token refresh (a refresh token used once, also under concurrent requests), the
end of a login identity revoked, logout, and the limit on login attempts."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from console_fakes import PASSWORD, Services, rpc_error
from console_support import AsgiClient, Clock, console
from support import eventually

from smartcity.services.console.web import COOKIE


async def test_the_session_cookie_is_http_only_strict_and_replaced_at_login() -> None:
    services = Services()
    async with console(services) as client:
        first = await client.request("GET", "/api/session")
        cookie = first.headers["set-cookie"]
        assert "httponly" in cookie.lower()
        assert "samesite=strict" in cookie.lower()
        assert "path=/" in cookie.lower()
        assert "secure" not in cookie.lower()
        assert first.json() == {
            "authenticated": False,
            "csrf_token": first.json()["csrf_token"],
            "totp_required": False,
            "user": None,
        }
        client.csrf = first.json()["csrf_token"]
        planted = client.cookies[COOKIE]
        reply = await client.request(
            "POST", "/api/login", json_body={"username": "op.an", "password": PASSWORD}
        )
        assert reply.status == 200, reply.body
        assert client.cookies[COOKIE] != planted
        assert reply.json()["csrf_token"] != first.json()["csrf_token"]
        assert reply.json()["user"] == {
            "id": "p-op.an",
            "username": "op.an",
            "display_name": "Op.An",
            "roles": ["operator:water_supply", "viewer:*"],
        }
        # the tokens stay in the console: neither in the body nor in a header
        assert b"access-" not in reply.body
        assert b"refresh-" not in reply.body
        assert not any("access-" in value for value in reply.headers.values())
        client.cookies[COOKIE] = planted
        assert (await client.request("GET", "/api/alerts")).status == 401


async def test_the_cookie_is_secure_when_the_console_is_served_over_https() -> None:
    async with console(Services()) as client:
        sent: dict[str, str] = {}

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                sent.update({k.decode(): v.decode() for k, v in message["headers"]})

        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "https",
            "path": "/api/session",
            "raw_path": b"/api/session",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"console.test")],
            "client": ("203.0.113.9", 50000),
            "server": ("console.test", 443),
        }
        await client.app(scope, receive, send)
        assert "; secure" in sent["set-cookie"].lower()


async def test_a_login_that_needs_a_code_finishes_with_the_code() -> None:
    services = Services(totp_users={"op.an"})
    async with console(services) as client:
        reply = await client.login("op.an")
        assert reply.status == 200
        assert reply.json()["totp_required"] is True
        assert reply.json()["authenticated"] is False
        assert b"ch-op.an" not in reply.body  # the challenge id stays in the console
        wrong = await client.request("POST", "/api/login/totp", json_body={"totp_code": "000000"})
        assert wrong.status == 401
        assert wrong.json()["error"] == "invalid credentials"
        done = await client.request("POST", "/api/login/totp", json_body={"totp_code": "123456"})
        assert done.status == 200
        assert done.json()["authenticated"] is True
        client.csrf = done.json()["csrf_token"]
        assert (await client.request("GET", "/api/alerts")).status == 200
        again = await client.request("POST", "/api/login/totp", json_body={"totp_code": "123456"})
        assert again.status == 409
    # Both steps name the browser to identity, whose lockout counts it (not the console).
    assert services.forwarded["Login"]
    assert services.forwarded["VerifyTotp"] == services.forwarded["Login"]


async def test_wrong_credentials_are_refused_with_identitys_words() -> None:
    async with console(Services()) as client:
        reply = await client.login("op.an", password="not the password")
        assert reply.status == 401
        assert reply.json() == {
            "error": "invalid credentials",
            "code": "UNAUTHENTICATED",
            "service": "identity",
        }
        missing = await client.request("POST", "/api/login", json_body={"username": "op.an"})
        assert missing.status == 400


async def test_the_token_is_refreshed_before_it_expires_once_under_concurrent_requests() -> None:
    services = Services(access_seconds=300)
    clock = Clock()
    async with console(services, clock) as client:
        assert (await client.login("op.an")).status == 200
        assert (await client.request("GET", "/api/alerts")).status == 200
        assert [m for m, _ in services.calls].count("RefreshToken") == 0
        clock.now += 300 - 59  # within a minute of expiry
        replies = await asyncio.gather(*(client.request("GET", "/api/alerts") for _ in range(5)))
        assert [r.status for r in replies] == [200] * 5
        assert [m for m, _ in services.calls].count("RefreshToken") == 1
        used = [token for method, token in services.calls if method == "ListAlerts"]
        assert used[-5:] == ["access-2"] * 5  # every call carried the new token


async def test_a_login_identity_revoked_ends_the_session() -> None:
    services = Services(access_seconds=300)
    clock = Clock()
    async with console(services, clock) as client:
        assert (await client.login("op.an")).status == 200
        services.used_refresh.add("refresh-1")  # e.g. logged out elsewhere
        clock.now += 290
        reply = await client.request("GET", "/api/alerts")
        assert reply.status == 401
        assert reply.json()["error"] == "the login has ended; log in again"
        assert (await client.request("GET", "/api/alerts")).status == 401
        session = await client.session()
        assert session["authenticated"] is False


async def test_a_refresh_identity_cannot_answer_keeps_the_token_while_it_is_good() -> None:
    services = Services(access_seconds=300)
    clock = Clock()
    async with console(services, clock) as client:
        assert (await client.login("op.an")).status == 200
        services.failures["RefreshToken"] = rpc_error(grpc.StatusCode.UNAVAILABLE, "down")
        clock.now += 290
        assert (await client.request("GET", "/api/alerts")).status == 200
        del services.failures["RefreshToken"]
        assert (await client.request("GET", "/api/alerts")).status == 200
        assert services.calls[-1] == ("ListAlerts", "access-2")


async def test_logout_ends_the_session_and_the_login_at_identity() -> None:
    services = Services()
    async with console(services) as client:
        assert (await client.login("op.an")).status == 200
        reply = await client.request("POST", "/api/logout")
        assert reply.status == 200
        assert reply.json() == {"authenticated": False}
        assert services.logged_out == ["refresh-1"]
        assert COOKIE not in client.cookies
        assert (await client.request("GET", "/api/alerts")).status == 401


async def test_sessions_left_at_shutdown_are_logged_out_at_identity() -> None:
    services = Services()
    async with console(services) as client:
        assert (await client.login("view.binh")).status == 200
    assert services.logged_out == ["refresh-1"]


async def test_one_address_may_try_ten_logins_a_minute() -> None:
    async with console(Services()) as client:
        statuses = [(await client.login("op.an", password="wrong")).status for _ in range(11)]
        assert statuses == [401] * 10 + [429]


async def test_housekeeping_refreshes_watching_sessions_and_logs_out_idle_ones() -> None:
    services = Services(access_seconds=300)
    clock = Clock()
    async with console(
        services, clock, housekeeping_seconds=0.02, idle_timeout_seconds=3600
    ) as client:
        assert (await client.login("op.an")).status == 200
        watching_id = client.cookies[COOKIE]
        other = await _second_login(client, "view.binh")
        sessions = client.app.state.console.sessions
        watching = sessions.get(watching_id)

        class Watching:
            renewed = 0

            def renew(self) -> None:
                self.renewed += 1

            def close(self, reason: str) -> None:
                pass

        stream = Watching()
        watching.streams.add(stream)
        clock.now += 250  # both tokens due; only the session with a live stream is kept fresh
        await eventually(lambda: stream.renewed == 1, what="the watching session refreshed")
        assert [m for m, _ in services.calls].count("RefreshToken") == 1
        clock.now += 3600  # the other session has been idle for an hour
        await eventually(lambda: other in services.logged_out, what="the idle session logged out")
        assert sessions.get(watching_id) is watching


async def _second_login(client: Any, username: str) -> str:
    """Log ``username`` in from a second browser; its refresh token."""
    second = AsgiClient(client.app)
    assert (await second.login(username)).status == 200
    session = client.app.state.console.sessions.get(second.cookies[COOKIE])
    return str(session.tokens.refresh_token)


async def test_logging_in_again_ends_the_earlier_login_at_identity() -> None:
    services = Services()
    async with console(services) as client:
        assert (await client.login("op.an")).status == 200
        assert (await client.login("view.binh")).status == 200
        assert services.logged_out == ["refresh-1"]
        assert (await client.session())["user"]["username"] == "view.binh"
