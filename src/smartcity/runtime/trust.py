"""Where a process's trust comes from: the keys that verify tokens, and what is revoked.

Three sources, chosen by ``auth.mode`` (:class:`~smartcity.runtime.tokens.AuthSettings`):

* ``off``: nobody is asked for a token (:func:`open_authenticator` yields ``None``);
* ``keys``: key files read at start (:class:`LocalAuthenticator`), for agents and for
  deployments that hand keys over out of band;
* ``identity``: :class:`IdentityFeed` follows the IDENTITY stream. Identity publishes its
  whole key set on ``city.identity.keys_rotated`` at every start and rotation, so the last
  message on that subject is the set in use: the feed reads it at start and follows later
  ones, and reads it again when a token names a key it does not know yet (rate-limited, so
  forged key ids cannot make it hammer the server). Revocations arrive on
  ``city.identity.token_revoked`` and ``city.identity.principal_disabled``; the feed replays
  what the stream holds of them (the stream keeps them longer than any token lives), so a
  service started after a revocation refuses the token too. Nothing here asks identity
  itself: a service verifies tokens while identity is down.

Every message is decoded defensively: one that is not an ``IdentityEvent``, or carries a key
set that cannot be used, is logged and ignored, and the keys in use stay as they were.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from google.protobuf.message import DecodeError
from nats.js import api as js_api
from nats.js.errors import NotFoundError

from smartcity.identity.v1 import identity_pb2
from smartcity.runtime import subjects
from smartcity.runtime.bus import IDENTITY_STREAM, Bus
from smartcity.runtime.logs import get_logger
from smartcity.runtime.tokens import (
    AuthMode,
    AuthSettings,
    Claims,
    KeySet,
    KeySetError,
    RevocationList,
    TokenError,
    TokenVerifier,
    UnknownKeyError,
)

__all__ = ["IdentityFeed", "LocalAuthenticator", "open_authenticator"]

_log = get_logger(__name__)

KEYS_SUBJECT = subjects.identity_subject("keys_rotated")
REVOCATION_SUBJECTS = (
    subjects.identity_subject("token_revoked"),
    subjects.identity_subject("principal_disabled"),
)
KEY_REFRESH_MIN_SECONDS = 5.0
"""At most one re-read of the key set per this many seconds on unknown key ids."""
KEY_WAIT_SECONDS = 5.0
"""How long a starting service waits for identity's key set before it serves anyway (and
refuses tokens, and reports NOT_SERVING, until the set arrives)."""


class LocalAuthenticator:
    """Verifies tokens with a :class:`TokenVerifier` whose keys and revocation hook its owner
    manages (key files; identity's own key ring and store)."""

    def __init__(self, verifier: TokenVerifier) -> None:
        self.verifier = verifier

    async def authenticate(self, token: str) -> Claims:
        return self.verifier.verify(token)

    def is_revoked(self, claims: Claims) -> bool:
        return self.verifier.revoked(claims)

    @property
    def problem(self) -> str | None:
        return None


class IdentityFeed:
    """Keys and revocations from the IDENTITY stream (see the module docstring)."""

    def __init__(self, bus: Bus, settings: AuthSettings) -> None:
        self._bus = bus
        self.revocations = RevocationList()
        self.verifier = TokenVerifier(
            KeySet.empty(),
            issuer=settings.issuer,
            audiences=settings.audiences,
            leeway=settings.leeway_seconds,
            is_revoked=self.revocations,
        )
        self._have_keys = asyncio.Event()
        self._last_refresh = 0.0
        self._refreshing: asyncio.Lock = asyncio.Lock()
        self._subscriptions: list[Any] = []
        self.ignored = 0
        """Messages on the followed subjects that could not be used."""

    @property
    def problem(self) -> str | None:
        """Why tokens cannot be verified now (for the health check), or ``None``."""
        if not self._have_keys.is_set():
            return "no key set from identity yet (nothing on " + KEYS_SUBJECT + ")"
        return None

    async def start(self, wait: float = KEY_WAIT_SECONDS) -> None:
        js = self._bus.js
        self._subscriptions.append(
            await js.subscribe(
                KEYS_SUBJECT,
                stream=IDENTITY_STREAM,
                ordered_consumer=True,
                deliver_policy=js_api.DeliverPolicy.LAST,
                cb=self._on_keys,
            )
        )
        for subject in REVOCATION_SUBJECTS:
            self._subscriptions.append(
                await js.subscribe(
                    subject,
                    stream=IDENTITY_STREAM,
                    ordered_consumer=True,
                    deliver_policy=js_api.DeliverPolicy.ALL,
                    cb=self._on_revocation,
                )
            )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._have_keys.wait()
        if not self._have_keys.is_set():
            _log.warning(
                "identity has not published a key set: every token is refused until it does",
                subject=KEYS_SUBJECT,
            )

    async def stop(self) -> None:
        for subscription in self._subscriptions:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
        self._subscriptions.clear()

    async def authenticate(self, token: str) -> Claims:
        try:
            return self.verifier.verify(token)
        except UnknownKeyError:
            if not await self._refresh_keys():
                if not self._have_keys.is_set():
                    raise TokenError("no key set from identity yet: try again shortly") from None
                raise
        return self.verifier.verify(token)

    def is_revoked(self, claims: Claims) -> bool:
        return self.revocations(claims)

    async def _refresh_keys(self) -> bool:
        """Read the last key set again; ``False`` when rate-limited or nothing changed."""
        async with self._refreshing:
            now = time.monotonic()
            if now - self._last_refresh < KEY_REFRESH_MIN_SECONDS:
                return False
            self._last_refresh = now
            try:
                message = await self._bus.js.get_last_msg(IDENTITY_STREAM, KEYS_SUBJECT)
            except NotFoundError:
                return False
            except Exception as exc:  # the bus is down: keep the keys we have
                _log.warning("could not re-read identity's key set", error=str(exc))
                return False
            return self._use_keys(message.data or b"")

    async def _on_keys(self, msg: Any) -> None:
        self._use_keys(msg.data)

    def _use_keys(self, data: bytes) -> bool:
        event = self._decode(data)
        if event is None:
            return False
        try:
            keys = KeySet.from_jwks(event.jwks, source=KEYS_SUBJECT)
        except KeySetError as exc:
            self.ignored += 1
            _log.warning("identity's key set is unusable; keeping the keys in use", error=str(exc))
            return False
        changed = set(keys) != set(self.verifier.keys)
        self.verifier.replace_keys(keys)
        if not self._have_keys.is_set() or changed:
            _log.info("token keys in use", kids=sorted(keys))
        self._have_keys.set()
        return changed

    async def _on_revocation(self, msg: Any) -> None:
        event = self._decode(msg.data)
        if event is None or not event.token_id:
            return
        until = event.token_expire_time.ToSeconds() if event.HasField("token_expire_time") else 0
        if until <= time.time():
            return  # whatever it revoked has expired anyway
        if event.token_id == "*":
            if not event.principal.id:
                self.ignored += 1
                return
            before = event.event_time.ToSeconds() + event.event_time.nanos / 1e9
            self.revocations.revoke_subject(event.principal.id, before, until)
        else:
            self.revocations.revoke(event.token_id, until)

    def _decode(self, data: bytes) -> identity_pb2.IdentityEvent | None:
        event = identity_pb2.IdentityEvent()
        try:
            event.ParseFromString(data)
        except (DecodeError, ValueError) as exc:
            self.ignored += 1
            _log.warning("ignored a message on the IDENTITY stream", error=str(exc))
            return None
        return event


@contextlib.asynccontextmanager
async def open_authenticator(
    settings: AuthSettings, bus: Bus
) -> AsyncIterator[LocalAuthenticator | IdentityFeed | None]:
    """The authenticator ``settings`` ask for, started; ``None`` when auth is off."""
    mode = settings.resolved_mode
    if mode is AuthMode.OFF:
        yield None
    elif mode is AuthMode.KEYS:
        yield LocalAuthenticator(TokenVerifier.from_settings(settings))
    else:
        feed = IdentityFeed(bus, settings)
        await feed.start()
        try:
            yield feed
        finally:
            await feed.stop()
