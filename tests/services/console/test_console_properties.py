"""Whatever a browser (or anything else) sends, every endpoint gives a verdict and never fails
with a 500: arbitrary query parameters, form fields and JSON bodies, cookies, headers and
path segments, logged in or not."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from console_fakes import Services
from console_support import AsgiClient, console
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

GETS = [
    "/api/session",
    "/api/fields",
    "/api/sites",
    "/api/devices",
    "/api/latest",
    "/api/range",
    "/api/alerts",
    "/api/alerts/fp-1/history",
]
POSTS = [
    "/api/login",
    "/api/login/totp",
    "/api/logout",
    "/api/alerts/fp-1/ack",
    "/api/alerts/fp-1/unack",
    "/api/alerts/fp-1/assign",
    "/api/silences",
]
NAMES = [
    "field",
    "site",
    "device",
    "metric",
    "since",
    "step",
    "agg",
    "all",
    "username",
    "password",
    "totp_code",
    "comment",
    "assignee",
    "minutes",
    "alertname",
    "request_id",
]

# Lone surrogates (valid in JSON text, not in UTF-8) and control characters, beside the rest.
awkward = st.sampled_from(["\ud800", "\udcff", "\x00", "\n", "\x7f", "é", "Đ", "💧", "%", "&", "="])
# (joined by hand: st.text leaves surrogates out)
text = st.lists(st.one_of(st.characters(), awkward), max_size=40).map("".join)
names = st.one_of(st.sampled_from(NAMES), st.sampled_from(NAMES), text)
values = st.one_of(
    text,
    text,
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(["60", "3600", "avg", "1", "water_supply", "op.an", "123456"]),
)
header_bytes = st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
LIMITED = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _run(scenario: Callable[[AsgiClient], Awaitable[None]], logged_in: bool) -> None:
    async def main() -> None:
        async with console(Services()) as client:
            if logged_in:
                assert (await client.login("op.an")).status == 200
            await scenario(client)

    asyncio.run(main())


def _verdict(status: int) -> None:
    assert 200 <= status < 500 or status in (502, 503, 504), status
    assert status != 500


@pytest.mark.parametrize("path", GETS)
@LIMITED
@given(
    query=st.lists(st.tuples(names, values), max_size=6),
    raw=st.binary(max_size=40),
    logged_in=st.booleans(),
)
def test_any_query_gets_a_verdict(
    path: str, query: list[tuple[str, str]], raw: bytes, logged_in: bool
) -> None:
    async def scenario(client: AsgiClient) -> None:
        encoded = urllib.parse.urlencode(query, errors="surrogatepass").encode("latin-1")
        for query_string in (encoded, raw):
            reply = await client.request("GET", path, query=query_string)
            _verdict(reply.status)
            json.loads(reply.body)

    _run(scenario, logged_in)


@pytest.mark.parametrize("path", POSTS)
@LIMITED
@given(
    fields=st.dictionaries(names, values, max_size=6),
    as_json=st.booleans(),
    logged_in=st.booleans(),
)
def test_any_form_gets_a_verdict(
    path: str, fields: dict[str, str], as_json: bool, logged_in: bool
) -> None:
    async def scenario(client: AsgiClient) -> None:
        await client.session()
        if as_json:
            reply = await client.request("POST", path, json_body=fields)
        else:
            body = urllib.parse.urlencode(fields, errors="surrogatepass").encode("latin-1")
            kind = (b"content-type", b"application/x-www-form-urlencoded")
            reply = await client.request("POST", path, body=body, headers=[kind])
        _verdict(reply.status)
        json.loads(reply.body)

    _run(scenario, logged_in)


json_values: Any = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)


@LIMITED
@given(
    path=st.sampled_from(POSTS),
    document=json_values,
    raw=st.binary(max_size=200),
    kind=st.sampled_from(
        [b"application/json", b"application/x-www-form-urlencoded", b"text/plain", b"", b"\xff"]
    ),
)
def test_any_body_gets_a_verdict(path: str, document: Any, raw: bytes, kind: bytes) -> None:
    async def scenario(client: AsgiClient) -> None:
        await client.session()
        encoded = json.dumps(document).encode()
        for body in (encoded, raw):
            reply = await client.request("POST", path, body=body, headers=[(b"content-type", kind)])
            _verdict(reply.status)

    _run(scenario, True)


@LIMITED
@given(
    path=st.sampled_from(GETS + POSTS),
    cookie=header_bytes,
    headers=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    b"origin",
                    b"x-csrf-token",
                    b"content-type",
                    b"content-length",
                    b"host",
                    b"accept",
                    b"x-forwarded-for",
                ]
            ),
            header_bytes,
        ),
        max_size=4,
    ),
    logged_in=st.booleans(),
)
def test_any_cookie_and_headers_get_a_verdict(
    path: str, cookie: bytes, headers: list[tuple[bytes, bytes]], logged_in: bool
) -> None:
    async def scenario(client: AsgiClient) -> None:
        method = "GET" if path in GETS else "POST"
        given_headers = [(b"cookie", cookie), *headers]
        reply = await client.request(method, path, headers=given_headers, csrf=False)
        _verdict(reply.status)
        with_jar = await client.request(method, path, headers=headers)
        _verdict(with_jar.status)

    _run(scenario, logged_in)


@LIMITED
@given(
    segment=st.text(min_size=1, max_size=60), action=st.sampled_from(["history", "ack", "assign"])
)
def test_any_fingerprint_in_the_path_gets_a_verdict(segment: str, action: str) -> None:
    async def scenario(client: AsgiClient) -> None:
        quoted = urllib.parse.quote(segment, safe="", errors="surrogatepass")
        method = "GET" if action == "history" else "POST"
        reply = await client.request(method, f"/api/alerts/{quoted}/{action}", json_body={})
        _verdict(reply.status)

    _run(scenario, True)
