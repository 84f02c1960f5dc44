"""What the console refuses and how, without a network: no session, no or a wrong CSRF token,
a foreign Origin, bodies and parameters that are wrong; the services' refusals mapped to HTTP
statuses with their own words; the headers every answer carries."""

from __future__ import annotations

import grpc
import pytest
from console_fakes import Services, rpc_error
from console_support import console


async def test_a_protected_endpoint_refuses_without_a_session() -> None:
    async with console(Services()) as client:
        for path in ("/api/alerts", "/api/fields", "/api/devices", "/api/events"):
            reply = await client.request("GET", path)
            assert reply.status == 401, path
            assert reply.json() == {"error": "not logged in", "code": "UNAUTHENTICATED"}
        refused = await client.request("POST", "/api/alerts/fp-1/ack", json_body={})
        assert refused.status == 403
        assert refused.json()["error"].startswith("no session: GET /api/session first")


async def test_state_changes_need_the_sessions_csrf_token() -> None:
    services = Services()
    async with console(services) as client:
        assert (await client.login("op.an")).status == 200
        missing = await client.request("POST", "/api/alerts/fp-1/ack", json_body={}, csrf=False)
        assert missing.status == 403
        assert missing.json() == {
            "error": "missing or wrong X-CSRF-Token header (from GET /api/session)",
            "code": "CSRF",
        }
        wrong = await client.request(
            "POST",
            "/api/alerts/fp-1/ack",
            json_body={},
            csrf=False,
            headers=[(b"x-csrf-token", client.csrf[:-2].encode() + b"xx")],
        )
        assert wrong.status == 403
        other = await _other_sessions_token(services)
        stolen = await client.request(
            "POST",
            "/api/alerts/fp-1/ack",
            json_body={},
            csrf=False,
            headers=[(b"x-csrf-token", other.encode())],
        )
        assert stolen.status == 403
        assert services.acknowledged == []
        done = await client.request("POST", "/api/alerts/fp-1/ack", json_body={})
        assert done.status == 200
        assert services.acknowledged == [("fp-1", "op.an")]


async def _other_sessions_token(services: Services) -> str:
    async with console(services) as other:
        return str((await other.session())["csrf_token"])


async def test_the_login_form_itself_needs_the_csrf_token() -> None:
    services = Services()
    async with console(services) as client:
        await client.session()
        reply = await client.request(
            "POST", "/api/login", json_body={"username": "op.an", "password": "x"}, csrf=False
        )
        assert reply.status == 403
        assert reply.json()["code"] == "CSRF"
        assert services.calls == []


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (b"http://console.test", True),
        (b"https://ioc.danang.gov.vn", True),  # configured
        (b"http://evil.example", False),
        (b"null", False),
        (b"http://console.test.evil.example", False),
    ],
)
async def test_a_state_change_from_another_origin_is_refused(origin: bytes, allowed: bool) -> None:
    async with console(Services(), allowed_origins=("https://ioc.danang.gov.vn",)) as client:
        assert (await client.login("op.an")).status == 200
        reply = await client.request(
            "POST", "/api/alerts/fp-1/ack", json_body={}, headers=[(b"origin", origin)]
        )
        if allowed:
            assert reply.status == 200
        else:
            assert reply.status == 403
            assert (
                reply.json()["error"]
                == f"requests from origin {origin.decode()!r} are not accepted"
            )


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (grpc.StatusCode.UNAUTHENTICATED, 401),
        (grpc.StatusCode.PERMISSION_DENIED, 403),
        (grpc.StatusCode.INVALID_ARGUMENT, 400),
        (grpc.StatusCode.NOT_FOUND, 404),
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.FAILED_PRECONDITION, 409),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
        (grpc.StatusCode.INTERNAL, 502),
    ],
)
async def test_a_services_refusal_becomes_its_http_status_with_its_message(
    code: grpc.StatusCode, status: int
) -> None:
    services = Services()
    async with console(services) as client:
        assert (await client.login("view.binh")).status == 200
        services.failures["ListAlerts"] = rpc_error(code, f"the service says {code.name}")
        reply = await client.request("GET", "/api/alerts")
        assert reply.status == status
        assert reply.json() == {
            "error": f"the service says {code.name}",
            "code": code.name,
            "service": "alerts",
        }


async def test_a_viewer_is_refused_by_the_service_not_by_the_console() -> None:
    services = Services()
    async with console(services) as client:
        assert (await client.login("view.binh")).status == 200
        reply = await client.request("POST", "/api/alerts/fp-1/ack", json_body={"comment": "x"})
        assert reply.status == 403
        assert reply.json()["error"] == "needs operator on water_supply"
        assert services.calls[-1] == ("AcknowledgeAlert", "access-1")


async def test_a_user_with_roles_on_some_fields_is_asked_about_per_field() -> None:
    services = Services()
    async with console(services) as client:
        assert (await client.login("water.chi")).status == 200
        reply = await client.request("GET", "/api/devices")
        assert reply.status == 200
        assert len(reply.json()["devices"]) == 1
        fields = await client.request("GET", "/api/fields")
        shown = {f["id"]: f for p in fields.json()["pillars"] for f in p["fields"]}
        assert shown["water_supply"]["summary"]["devices"] == 1
        assert shown["traffic"]["summary"] is None
        assert shown["traffic"]["note"] == "no role on this field"


@pytest.mark.parametrize(
    ("query", "error"),
    [
        (b"site=a%20b", "site: not an id"),
        (b"field=" + b"x" * 129, "field: not an id"),
        (b"field=%ff", "field: not an id"),
    ],
)
async def test_a_wrong_parameter_is_refused_naming_it(query: bytes, error: str) -> None:
    async with console(Services()) as client:
        assert (await client.login("op.an")).status == 200
        reply = await client.request("GET", "/api/devices", query=query)
        assert reply.status == 400
        assert reply.json()["error"].startswith(error)


async def test_range_parameters_are_checked_before_any_call() -> None:
    services = Services()
    async with console(services) as client:
        assert (await client.login("op.an")).status == 200
        before = len(services.calls)
        for query, error in [
            (b"metric=turbidity", "field: required"),
            (b"field=water_supply&metric=turbidity&since=10", "since: expected"),
            (b"field=water_supply&metric=turbidity&agg=median", "agg: one of"),
            (b"field=water_supply&metric=turbidity&step=-1", "step: expected"),
        ]:
            reply = await client.request("GET", "/api/range", query=query)
            assert reply.status == 400
            assert reply.json()["error"].startswith(error), query
        assert len(services.calls) == before
        ok = await client.request("GET", "/api/range", query=b"field=water_supply&metric=turbidity")
        assert ok.status == 200
        assert ok.json()["series"][0]["points"][0][1] == 1.0


async def test_bodies_are_limited_typed_and_parsed() -> None:
    async with console(Services(), max_body_bytes=1024) as client:
        assert (await client.login("op.an")).status == 200
        path = "/api/alerts/fp-1/assign"
        large = await client.request(
            "POST", path, body=b"x" * 2000, headers=[(b"content-type", b"application/json")]
        )
        assert large.status == 413
        typed = await client.request(
            "POST", path, body=b"a=b", headers=[(b"content-type", b"text/plain")]
        )
        assert typed.status == 415
        broken = await client.request(
            "POST", path, body=b"{", headers=[(b"content-type", b"application/json")]
        )
        assert broken.status == 400
        assert broken.json()["error"] == "the request body is not valid JSON"
        listed = await client.request("POST", path, json_body=["nguyen"])
        assert listed.status == 400
        form = await client.request(
            "POST",
            path,
            body=b"assignee=nguyen.van.a&comment=on+site",
            headers=[(b"content-type", b"application/x-www-form-urlencoded")],
        )
        assert form.status == 200
        assert form.json()["alert"]["assignee"] == "nguyen.van.a"


async def test_answers_carry_the_security_headers() -> None:
    async with console(Services()) as client:
        for path in ("/", "/api/session", "/healthz", "/js/main.js"):
            reply = await client.request("GET", path)
            assert reply.status == 200, path
            assert "default-src 'self'" in reply.headers["content-security-policy"]
            assert reply.headers["x-content-type-options"] == "nosniff"
        assert (await client.request("GET", "/api/session")).headers["cache-control"] == "no-store"
        missing = await client.request("GET", "/api/nothing")
        assert missing.status == 404
        assert missing.json()["code"] == "HTTP_404"
        wrong = await client.request("DELETE", "/api/alerts", csrf=False)
        assert wrong.status in (403, 405)
