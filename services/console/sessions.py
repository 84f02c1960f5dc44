"""Browser sessions, kept in this process's memory only.

A browser holds nothing but a random session id in an HttpOnly cookie; the user's tokens stay
here. Every session, even one that has not logged in yet, has its own CSRF token, so the login
form is protected like everything else. Logging in replaces the session (new id, new CSRF
token), so an id planted in a browser before the login is worth nothing after it.

Nothing here talks to a service: refreshing and logging out are :mod:`.login`'s, and live
streams (:mod:`.events`) register with their session so that it can renew or end them.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from smartcity.runtime.errors import ResourceExhausted
from smartcity.runtime.tokens import WILDCARD_FIELD, Role, RoleBinding, implied_roles
from smartcity.services.console.settings import ConsoleSettings

__all__ = ["LiveStream", "Session", "SessionStore", "TokenPair", "User"]


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What identity issued for one login, as the console keeps it."""

    access_token: str
    access_expires: float
    """Seconds since the epoch."""
    refresh_token: str
    issued: float
    """When the console received the pair; with ``access_expires``, the token's lifetime."""

    def due(self, now: float, margin: float) -> bool:
        """Whether the access token should be refreshed now: within ``margin`` seconds of
        its expiry, or of a third of its lifetime if that is shorter."""
        lifetime = max(self.access_expires - self.issued, 0.0)
        return self.access_expires - now <= min(margin, lifetime / 3)


@dataclass(frozen=True, slots=True)
class User:
    id: str
    username: str
    display_name: str
    roles: tuple[str, ...] | None
    """``role:field`` bindings as identity lists them; ``None`` when identity would not say,
    in which case the console asks the services for everything and lets them decide."""

    def viewable_fields(self) -> frozenset[str] | None:
        """The fields the user may view, or ``None`` for every field (a role on ``*``, or
        roles unknown). Only for choosing what to ask: the services decide what to answer."""
        if self.roles is None:
            return None
        fields: set[str] = set()
        for text in self.roles:
            try:
                binding = RoleBinding.parse(text)
            except ValueError:
                continue
            if Role.VIEWER in implied_roles(binding.role):
                if binding.field == WILDCARD_FIELD:
                    return None
                fields.add(binding.field)
        return frozenset(fields)


class LiveStream(Protocol):
    """A live stream as its session sees it."""

    def renew(self) -> None:
        """The session's access token changed: reopen what was opened with the old one."""

    def close(self, reason: str) -> None:
        """End the stream, telling the browser ``reason``."""


class Session:
    """One browser's session. Its tokens change only under ``refresh_lock``, because a
    refresh token is good once: a second use would make identity revoke the whole login."""

    def __init__(self, session_id: str, now: float) -> None:
        self.id = session_id
        self.csrf_token = secrets.token_urlsafe(32)
        self.created = now
        self.last_seen = now
        self.tokens: TokenPair | None = None
        self.user: User | None = None
        self.challenge: str | None = None
        """A TOTP challenge id from identity, waiting for the code (never sent out)."""
        self.challenge_expires = 0.0
        self.streams: set[LiveStream] = set()
        self.refresh_lock = asyncio.Lock()
        self.ended: str | None = None

    @property
    def authenticated(self) -> bool:
        return self.tokens is not None and self.user is not None and self.ended is None

    def csrf_matches(self, presented: str | None) -> bool:
        if not presented:
            return False
        # Header values may hold any byte; compare bytes so that nothing can raise here.
        given = presented.encode("utf-8", "surrogateescape")
        return hmac.compare_digest(given, self.csrf_token.encode("ascii"))

    def renewed(self, tokens: TokenPair) -> None:
        self.tokens = tokens
        for stream in list(self.streams):
            stream.renew()

    def end(self, reason: str) -> None:
        if self.ended is None:
            self.ended = reason
        for stream in list(self.streams):
            stream.close(reason)


class SessionStore:
    """Sessions by id, least recently used first."""

    def __init__(self, settings: ConsoleSettings, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._sessions.values()))

    def now(self) -> float:
        return self._clock()

    def open(self) -> Session:
        """A new session that has not logged in yet."""
        self._make_room()
        session = Session(secrets.token_urlsafe(32), self._clock())
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id, marked as used; ``None`` for an unknown, ended or
        expired one (expired ones are ended by :meth:`expire`)."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        now = self._clock()
        if session is None or session.ended is not None or self._expired(session, now):
            return None
        session.last_seen = now
        self._sessions.move_to_end(session.id)
        return session

    def promote(self, old: Session, tokens: TokenPair, user: User) -> Session:
        """The logged-in session that replaces ``old`` (a new id and CSRF token)."""
        self._sessions.pop(old.id, None)
        old.end("logged in again")
        session = Session(secrets.token_urlsafe(32), self._clock())
        session.tokens = tokens
        session.user = user
        self._sessions[session.id] = session
        return session

    def discard(self, session: Session, reason: str) -> None:
        self._sessions.pop(session.id, None)
        session.end(reason)

    def expire(self) -> list[Session]:
        """End and forget every expired session; the ones that were logged in are returned,
        to be logged out at identity."""
        now = self._clock()
        gone = [s for s in self._sessions.values() if s.ended or self._expired(s, now)]
        for session in gone:
            self.discard(session, "the session expired")
        return [s for s in gone if s.tokens is not None]

    def _expired(self, session: Session, now: float) -> bool:
        if session.streams:
            return False  # an open live stream is a browser still watching
        if session.tokens is None:
            return now - session.last_seen > self._settings.anonymous_timeout_seconds
        return now - session.last_seen > self._settings.idle_timeout_seconds

    def _make_room(self) -> None:
        if len(self._sessions) < self._settings.max_sessions:
            return
        for session in self._sessions.values():
            if session.tokens is None and not session.streams:
                self.discard(session, "the console needed room for newer sessions")
                return
        raise ResourceExhausted(
            f"the console holds its maximum of {self._settings.max_sessions} sessions"
        )
