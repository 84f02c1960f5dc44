"""The console against the real services, started in-process (``run_service``) on a real
nats-server with identity's tokens verified by each of them: a login through the console,
refusals without a session or a CSRF token, the user's own token reaching the services (a
viewer cannot acknowledge, an operator's acknowledgement is recorded under the operator's
name), and an alert raised by published telemetry arriving over the live stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from console_city import FIELD, PASSWORD, SITE, City, running_city
from console_support import serving
from support import eventually

from smartcity.services.console.app import ConsoleServer
from smartcity.services.console.settings import ConsoleSettings

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def city(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[City]:
    async with running_city(tmp_path_factory.mktemp("city")) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def url(city: City) -> AsyncIterator[str]:
    async with serving(ConsoleServer(ConsoleSettings(targets=city.targets), "127.0.0.1", 0)) as u:
        yield u


class Browser:
    """A browser's view of the console: its cookie jar and the CSRF token it was given."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http
        self.csrf = ""

    async def session(self) -> dict[str, Any]:
        async with self.http.get("/api/session") as reply:
            body: dict[str, Any] = await reply.json()
        self.csrf = body["csrf_token"]
        return body

    async def login(self, username: str) -> dict[str, Any]:
        await self.session()
        return await self.post("/api/login", {"username": username, "password": PASSWORD})

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"X-CSRF-Token": self.csrf}
        async with self.http.post(path, json=body, headers=headers) as reply:
            answer: dict[str, Any] = await reply.json()
            answer["status"] = reply.status
        if "csrf_token" in answer:
            self.csrf = answer["csrf_token"]
        return answer

    async def get(self, path: str, **params: str) -> tuple[int, Any]:
        async with self.http.get(path, params=params) as reply:
            return reply.status, await reply.json()


@contextlib.asynccontextmanager
async def browser(url: str) -> AsyncIterator[Browser]:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(url, cookie_jar=jar) as http:
        yield Browser(http)


async def _firing(city: City, viewer: Browser) -> dict[str, Any]:
    """Turbidity above the rule's 2 NTU: the alert, as the console lists it."""
    await city.publish(3.2)
    found: list[dict[str, Any]] = []

    async def listed() -> bool:
        status, body = await viewer.get("/api/alerts")
        found[:] = [a for a in body.get("alerts", []) if a["state"] == "firing"]
        return status == 200 and bool(found)

    await eventually(listed, what="the firing alert in the console")
    return found[0]


async def test_login_through_the_console_gives_the_users_identity_and_roles(url: str) -> None:
    async with browser(url) as user:
        session = await user.login("op.an")
        assert session["status"] == 200
        assert session["authenticated"] is True
        assert session["user"]["username"] == "op.an"
        assert sorted(session["user"]["roles"]) == ["operator:water_supply", "viewer:*"]
        refused = await user.post("/api/login", {"username": "op.an", "password": "wrong one!"})
        assert refused["status"] == 401
        assert refused == {
            "error": "invalid credentials",
            "code": "UNAUTHENTICATED",
            "service": "identity",
            "status": 401,
        }


async def test_without_a_session_or_csrf_token_nothing_is_done(url: str, city: City) -> None:
    async with browser(url) as stranger, browser(url) as operator:
        status, body = await stranger.get("/api/alerts")
        assert status == 401
        assert body["error"] == "not logged in"
        await operator.login("op.an")
        alert = await _firing(city, operator)
        path = f"/api/alerts/{alert['fingerprint']}/ack"
        async with operator.http.post(path, json={}) as reply:  # no X-CSRF-Token
            assert reply.status == 403
            assert "X-CSRF-Token" in (await reply.json())["error"]
        _, listed = await operator.get("/api/alerts")
        same = next(a for a in listed["alerts"] if a["fingerprint"] == alert["fingerprint"])
        assert same["acknowledged_by"] is None


async def test_a_viewer_cannot_acknowledge_and_an_operator_can(url: str, city: City) -> None:
    async with browser(url) as viewer, browser(url) as operator:
        await viewer.login("view.binh")
        alert = await _firing(city, viewer)
        path = f"/api/alerts/{alert['fingerprint']}/ack"
        refused = await viewer.post(path, {"comment": "seen"})
        assert refused["status"] == 403
        assert refused["service"] == "alerts"
        assert refused["code"] == "PERMISSION_DENIED"
        me = await operator.login("op.an")
        done = await operator.post(path, {"comment": "crew sent"})
        assert done["status"] == 200, done
        # the alerts service recorded the user whose token the console sent, not the console
        assert done["alert"]["acknowledged_by"] == me["user"]["id"]
        assert done["alert"]["acknowledge_comment"] == "crew sent"
        status, history = await operator.get(f"/api/alerts/{alert['fingerprint']}/history")
        assert status == 200
        acked = [e for e in history["events"] if e["type"] == "acknowledged"]
        assert acked[0]["actor"] == me["user"]["id"]
        assert acked[0]["comment"] == "crew sent"


async def _events(reply: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, Any]]:
    frame = ""
    async for line in reply.content:
        frame += line.decode()
        if not frame.endswith("\n\n"):
            continue
        if frame.startswith("event: "):
            head, data = frame.strip("\n").split("\n", 1)
            yield head.removeprefix("event: "), json.loads(data.removeprefix("data: "))
        frame = ""


async def test_the_live_stream_delivers_readings_and_an_alert_event(url: str, city: City) -> None:
    async with browser(url) as operator:
        await operator.login("op.an")
        await city.publish(1.0)  # below the rule's hysteresis: whatever fired is resolved
        _, listed = await operator.get("/api/alerts")
        params = {"since": str(listed["revision"]), "field": FIELD}
        async with operator.http.get("/api/events", params=params) as reply:
            assert reply.status == 200
            events = _events(reply)
            seen: list[tuple[str, Any]] = []

            async def arrived(kind: str, check: Any) -> None:
                async for event in events:
                    seen.append(event)
                    if event[0] == kind and check(event[1]):
                        return

            await asyncio.wait_for(arrived("hello", lambda _: True), 10)
            await city.publish(1.1)
            await asyncio.wait_for(
                arrived("readings", lambda rs: any(r["value"] == 1.1 for r in rs)), 20
            )
            await city.publish(3.7)
            await asyncio.wait_for(
                arrived("alert", lambda e: e["type"] == "firing" and e["alert"]["value"] == 3.7), 20
            )
        alert = seen[-1][1]["alert"]
        assert alert["site"] == SITE
        assert alert["field"] == FIELD
        assert alert["name"] == "Turbidity above 2 NTU"


async def test_the_pages_lists_come_from_the_services(url: str, city: City) -> None:
    async with browser(url) as viewer:
        await viewer.login("view.binh")
        await city.publish(1.3)
        status, fields = await viewer.get("/api/fields")
        assert status == 200
        shown = {f["id"]: f for p in fields["pillars"] for f in p["fields"]}
        assert len(shown) == 16
        assert shown["water_supply"]["pillar"] == "environment"
        assert shown["water_supply"]["summary"]["devices"] == 1
        status, sites = await viewer.get("/api/sites")
        assert status == 200
        assert sites["source"] == "devices"  # no site records in this city: the grid
        assert [s["id"] for s in sites["sites"]] == [SITE]
        status, latest = await viewer.get("/api/latest", field=FIELD)
        assert status == 200
        assert latest["readings"][0]["metric"] == "turbidity"
        status, chart = await viewer.get("/api/range", field=FIELD, metric="turbidity", step="0")
        assert status == 200
        assert 1.3 in [point[1] for point in chart["series"][0]["points"]]
