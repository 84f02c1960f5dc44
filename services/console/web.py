"""What every endpoint shares: finding the session, the CSRF and Origin checks, reading a
request's parameters and body, and answering in JSON.

Every input gets a verdict. A parameter or body that is wrong is a 400 naming it, a missing
session 401, a missing CSRF token or a foreign Origin 403, each with a reason the page can
show; nothing a browser sends can make an endpoint fail with 500.
"""

from __future__ import annotations

import functools
import json
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from smartcity.runtime.errors import DomainError
from smartcity.runtime.logs import get_logger
from smartcity.services.console.backend import ApiError, Backend
from smartcity.services.console.sessions import Session, SessionStore
from smartcity.services.console.settings import ConsoleSettings

if TYPE_CHECKING:
    from smartcity.services.console.events import EventHub
    from smartcity.services.console.login import Authenticator

__all__ = [
    "COOKIE",
    "CSRF_HEADER",
    "Console",
    "Handler",
    "comment",
    "endpoint",
    "identifier",
    "integer",
    "json_response",
    "read_body",
]

COOKIE = "smartcity_console"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_ID = re.compile(r"[A-Za-z0-9_.:@/+-]{1,128}", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

_log = get_logger(__name__)


@dataclass
class Console:
    """Everything a request handler may need, held by the application."""

    settings: ConsoleSettings
    backend: Backend
    sessions: SessionStore
    auth: Authenticator
    hub: EventHub


Handler = Callable[[Request, Session, Console], Awaitable[Response]]


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return JSONResponse(body, status, headers={"Cache-Control": "no-store", **(headers or {})})


def error_response(error: ApiError) -> Response:
    return json_response(error.body(), error.status)


def _own_origin(request: Request) -> str:
    host = request.headers.get("host", "")
    return f"{request.url.scheme}://{host}"


def origin_refusal(request: Request, allowed: tuple[str, ...]) -> str | None:
    """Why a state-changing request from this ``Origin`` is refused, or ``None``. Browsers
    send the header with every cross-site POST; when absent, SameSite=Strict and the CSRF
    token stand alone."""
    origin = request.headers.get("origin")
    if origin is None:
        return None
    if origin == _own_origin(request) or origin in allowed:
        return None
    return f"requests from origin {origin[:100]!r} are not accepted"


def endpoint(*, login_required: bool = True) -> Callable[[Handler], Callable[..., Any]]:
    """Wrap ``handler(request, session, console)`` with the session, CSRF and Origin checks
    and the translation of refusals into JSON answers."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(handler)
        async def run(request: Request) -> Response:
            console: Console = request.app.state.console
            try:
                session = console.sessions.get(request.cookies.get(COOKIE))
                if request.method not in SAFE_METHODS:
                    _check_unsafe(request, session, console.settings)
                if session is None or (login_required and not session.authenticated):
                    raise ApiError(401, "not logged in", "UNAUTHENTICATED")
                return await handler(request, session, console)
            except ApiError as error:
                return error_response(error)
            except DomainError as error:
                return error_response(ApiError.from_domain(error))
            except ClientDisconnect:
                return Response(status_code=400)

        return run

    return wrap


def _check_unsafe(request: Request, session: Session | None, settings: ConsoleSettings) -> None:
    refusal = origin_refusal(request, settings.allowed_origins)
    if refusal is not None:
        raise ApiError(403, refusal, "CSRF")
    if session is None:
        raise ApiError(
            403,
            f"no session: GET /api/session first and send its csrf_token in {CSRF_HEADER}",
            "CSRF",
        )
    if not session.csrf_matches(request.headers.get(CSRF_HEADER)):
        raise ApiError(
            403, f"missing or wrong {CSRF_HEADER} header (from GET /api/session)", "CSRF"
        )


# -- reading what the browser sent ------------------------------------------------------------


async def read_body(request: Request, limit: int) -> dict[str, str]:
    """The body's fields, from a JSON object or a URL-encoded form; every value text."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the request body is larger than {limit} bytes")
    raw = bytearray()
    async for chunk in request.stream():
        raw.extend(chunk)
        if len(raw) > limit:
            raise ApiError(413, f"the request body is larger than {limit} bytes")
    if not raw.strip():
        return {}
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "the request body is not UTF-8") from None
    if kind == "application/json":
        return _json_fields(text)
    if kind == "application/x-www-form-urlencoded":
        try:
            pairs = urllib.parse.parse_qsl(text, keep_blank_values=True, errors="strict")
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "the form is not valid URL-encoded UTF-8") from None
        return dict(pairs)
    raise ApiError(
        415, "send application/json or application/x-www-form-urlencoded", "UNSUPPORTED_MEDIA_TYPE"
    )


def _json_fields(text: str) -> dict[str, str]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise ApiError(400, "the request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise ApiError(400, "the request body must be a JSON object")
    fields: dict[str, str] = {}
    for key, item in value.items():
        if item is None:
            continue
        if isinstance(item, bool):
            fields[key] = "true" if item else "false"
        elif isinstance(item, str | int | float):
            fields[key] = str(item)
        else:
            raise ApiError(400, f"{key[:40]!r}: expected text or a number")
    return fields


def _text(source: Mapping[str, str], name: str) -> str:
    value = source.get(name, "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, f"{name}: not valid text") from None
    return value


def identifier(source: Mapping[str, str], name: str, *, required: bool = False) -> str:
    """An id (field, site, device, metric, fingerprint, user name): letters, digits and
    ``_ . : @ / + -``, at most 128 characters; empty when absent and not required."""
    value = _text(source, name)
    if not value:
        if required:
            raise ApiError(400, f"{name}: required")
        return ""
    if not _ID.fullmatch(value):
        raise ApiError(400, f"{name}: not an id (letters, digits and _ . : @ / + -, at most 128)")
    return value


def comment(source: Mapping[str, str], name: str = "comment", limit: int = 500) -> str:
    value = _text(source, name).strip()
    if len(value) > limit:
        raise ApiError(400, f"{name}: longer than {limit} characters")
    if _CONTROL.search(value):
        raise ApiError(400, f"{name}: control characters are not allowed")
    return value


def integer(source: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    value = _text(source, name).strip()
    if not value:
        return default
    if not re.fullmatch(r"[0-9]{1,19}", value):
        raise ApiError(400, f"{name}: expected a whole number from {low} to {high}")
    number = int(value)
    if not low <= number <= high:
        raise ApiError(400, f"{name}: expected a whole number from {low} to {high}")
    return number
