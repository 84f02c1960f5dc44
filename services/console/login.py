"""Logging in and out, and keeping a session's access token fresh.

Login is identity's ``Login`` (and ``VerifyTotp`` when identity answers with a challenge);
the console only carries the user's words there and keeps the tokens it gets back. Access
tokens are refreshed with ``RefreshToken`` shortly before they expire, on the next request or,
for a browser that only watches live streams, by the housekeeping loop; logging out, or a
session expiring here, calls ``Logout`` so that identity revokes the tokens too.
"""

from __future__ import annotations

import collections
import re
import time

from starlette.requests import Request
from starlette.responses import Response

from smartcity.identity.v1 import identity_pb2
from smartcity.runtime.errors import DomainError
from smartcity.runtime.logs import get_logger
from smartcity.services.console.backend import ApiError, Backend
from smartcity.services.console.sessions import Session, SessionStore, TokenPair, User
from smartcity.services.console.settings import ConsoleSettings
from smartcity.services.console.web import (
    COOKIE,
    Console,
    endpoint,
    error_response,
    json_response,
    read_body,
)

__all__ = ["Authenticator", "login", "logout", "session_info", "verify_totp"]

_log = get_logger(__name__)
_CODE = re.compile(r"[0-9]{6,10}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _pair(tokens: identity_pb2.TokenSet, now: float) -> TokenPair:
    expires = tokens.access_token_expire_time
    return TokenPair(
        access_token=tokens.access_token,
        access_expires=expires.seconds + expires.nanos / 1e9,
        refresh_token=tokens.refresh_token,
        issued=now,
    )


class Authenticator:
    """Tokens of the sessions, from identity."""

    def __init__(self, settings: ConsoleSettings, backend: Backend, sessions: SessionStore) -> None:
        self._settings = settings
        self._backend = backend
        self._sessions = sessions
        self._attempts: collections.OrderedDict[str, collections.deque[float]] = (
            collections.OrderedDict()
        )

    async def token(self, session: Session) -> str:
        """The session's access token, refreshed first when it is due."""
        tokens = session.tokens
        if tokens is None or session.ended is not None:
            raise ApiError(401, "not logged in", "UNAUTHENTICATED")
        if tokens.due(self._sessions.now(), self._settings.refresh_margin_seconds):
            await self.refresh(session)
        if session.tokens is None or session.ended is not None:
            raise ApiError(401, "the session has ended; log in again", "UNAUTHENTICATED")
        return session.tokens.access_token

    async def refresh(self, session: Session) -> None:
        """Refresh the access token if it is still due once the lock is held (another request
        may have done it meanwhile: a refresh token is good once)."""
        async with session.refresh_lock:
            current = session.tokens
            now = self._sessions.now()
            if current is None or session.ended is not None:
                return
            if not current.due(now, self._settings.refresh_margin_seconds):
                return
            request = identity_pb2.RefreshTokenRequest(refresh_token=current.refresh_token)
            try:
                reply = await self._backend.call(
                    "identity", self._backend.identity.RefreshToken, request
                )
            except ApiError as error:
                if error.status in (400, 401, 403, 404):
                    self._sessions.discard(session, f"identity ended the login: {error.message}")
                    raise ApiError(401, "the login has ended; log in again", error.code) from None
                if now < current.access_expires:
                    _log.warning("token_refresh_deferred", reason=error.message)
                    return  # the old token is still good; try again at the next occasion
                raise
            session.renewed(_pair(reply.tokens, self._sessions.now()))

    async def logout_at_identity(self, tokens: TokenPair) -> None:
        request = identity_pb2.LogoutRequest(refresh_token=tokens.refresh_token)
        try:
            await self._backend.call("identity", self._backend.identity.Logout, request)
        except ApiError as error:
            _log.warning("logout_not_confirmed", reason=error.message)

    async def user(self, tokens: identity_pb2.TokenSet) -> User:
        """Who logged in, with their roles when identity tells the principal itself."""
        ref = tokens.principal
        request = identity_pb2.GetPrincipalRequest(id=ref.id)
        try:
            reply = await self._backend.call(
                "identity", self._backend.identity.GetPrincipal, request, tokens.access_token
            )
        except ApiError as error:
            _log.warning("roles_unknown", principal=ref.id, reason=error.message)
            return User(ref.id, ref.display_name or ref.id, ref.display_name or ref.id, None)
        found = reply.principal
        roles = tuple(f"{b.role}:{b.field}" for b in found.role_bindings)
        return User(found.id, found.username, found.display_name or found.username, roles)

    def attempt(self, client: str) -> None:
        """Count a login attempt from ``client``; refuse past the per-minute limit, before
        identity is asked. Identity locks out failing sources too, per browser when it
        trusts the console's ``x-forwarded-for`` (``identity.trusted_proxies``), else per
        console: this limit keeps one browser from using up that allowance."""
        now = time.monotonic()
        seen = self._attempts.pop(client, None) or collections.deque()
        while seen and now - seen[0] > 60:
            seen.popleft()
        self._attempts[client] = seen
        while len(self._attempts) > 10_000:
            self._attempts.popitem(last=False)
        if len(seen) >= self._settings.login_attempts_per_minute:
            raise ApiError(429, "too many login attempts from this address; wait a minute")
        seen.append(now)


def session_body(session: Session) -> dict[str, object]:
    user = session.user if session.authenticated else None
    return {
        "authenticated": session.authenticated,
        "csrf_token": session.csrf_token,
        "totp_required": session.challenge is not None and not session.authenticated,
        "user": None
        if user is None
        else {
            "id": user.id,
            "username": user.username,
            "display_name": user.display_name,
            "roles": list(user.roles) if user.roles is not None else None,
        },
    }


def _with_cookie(response: Response, request: Request, session: Session) -> Response:
    response.set_cookie(
        COOKIE,
        session.id,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def session_info(request: Request) -> Response:
    """``GET /api/session``: who is logged in and the CSRF token; opens a session (not logged
    in) for a browser that has none, so that its login form can be protected."""
    console: Console = request.app.state.console
    session = console.sessions.get(request.cookies.get(COOKIE))
    if session is not None:
        return json_response(session_body(session))
    try:
        session = console.sessions.open()
    except DomainError as error:
        return error_response(ApiError(503, error.message))
    return _with_cookie(json_response(session_body(session)), request, session)


def _credentials(fields: dict[str, str]) -> tuple[str, str, str]:
    username = fields.get("username", "").strip()
    password = fields.get("password", "")
    code = fields.get("totp_code", "").strip()
    if not username or not password:
        raise ApiError(400, "username and password are required")
    if len(username) > 128 or _CONTROL.search(username):
        raise ApiError(400, "username: not a user name")
    if len(password) > 1024:
        raise ApiError(400, "password: longer than 1024 characters")
    if code and not _CODE.fullmatch(code):
        raise ApiError(400, "totp_code: expected the digits your authenticator app shows")
    for value in (username, password):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(400, "username and password must be valid text") from None
    return username, password, code


async def _established(
    request: Request, session: Session, console: Console, tokens: identity_pb2.TokenSet
) -> Response:
    user = await console.auth.user(tokens)
    earlier = session.tokens
    promoted = console.sessions.promote(session, _pair(tokens, console.sessions.now()), user)
    if earlier is not None:  # logging in again over a live login: end that one at identity too
        await console.auth.logout_at_identity(earlier)
    _log.info("console_login", principal=user.id)
    return _with_cookie(json_response(session_body(promoted)), request, promoted)


@endpoint(login_required=False)
async def login(request: Request, session: Session, console: Console) -> Response:
    """``POST /api/login`` with ``username``, ``password`` and maybe ``totp_code``."""
    client = request.client.host if request.client else None
    console.auth.attempt(client or "unknown")
    fields = await read_body(request, console.settings.max_body_bytes)
    username, password, code = _credentials(fields)
    identity = console.backend.identity
    reply = await console.backend.call(
        "identity",
        identity.Login,
        identity_pb2.LoginRequest(username=username, password=password, totp_code=code),
        client=client,
    )
    if reply.WhichOneof("result") == "totp_challenge":
        challenge = reply.totp_challenge
        session.challenge = challenge.challenge_id
        # identity says how long the challenge lives; five minutes if it does not
        session.challenge_expires = challenge.expire_time.seconds or console.sessions.now() + 300
        return json_response(session_body(session))
    return await _established(request, session, console, reply.tokens)


@endpoint(login_required=False)
async def verify_totp(request: Request, session: Session, console: Console) -> Response:
    """``POST /api/login/totp`` with ``totp_code``, after a login that asked for it."""
    client = request.client.host if request.client else None
    console.auth.attempt(client or "unknown")
    fields = await read_body(request, console.settings.max_body_bytes)
    code = fields.get("totp_code", "").strip()
    if session.challenge is None or session.challenge_expires < console.sessions.now():
        session.challenge = None
        raise ApiError(409, "no login is waiting for a code; log in with your password first")
    if not _CODE.fullmatch(code):
        raise ApiError(400, "totp_code: expected the digits your authenticator app shows")
    request_message = identity_pb2.VerifyTotpRequest(challenge_id=session.challenge, totp_code=code)
    reply = await console.backend.call(
        "identity", console.backend.identity.VerifyTotp, request_message, client=client
    )
    return await _established(request, session, console, reply.tokens)


@endpoint(login_required=False)
async def logout(request: Request, session: Session, console: Console) -> Response:
    """``POST /api/logout``: ends the session here and the login at identity."""
    tokens = session.tokens
    console.sessions.discard(session, "logged out")
    if tokens is not None:
        await console.auth.logout_at_identity(tokens)
    response = json_response({"authenticated": False})
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response
