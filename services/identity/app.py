"""The identity process: storage, the key ring, the gRPC API, the key set over HTTP and the
identity events, as a :class:`~smartcity.runtime.service.ServiceSpec` the runtime runs.

At every start the process loads its signing keys (creating the first, or rotating when the
newest is due) and announces the whole key set on ``city.identity.keys_rotated``, so that
the last message there is always the set in use. It verifies its own callers with its own
key ring and the store's revocations (``ServiceParts.verifier``), not with its announcements.

Background work: the key check (rotation, dropping keys no token needs, forgetting expired
tokens), the outbox (events the bus did not take yet), and the HTTP endpoint. Replicas
sharing a PostgreSQL database hear each other's rotations and revocations on the bus and
reload them from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from nats.aio.msg import Msg

from smartcity.runtime.cancellation import raise_if_cancelled
from smartcity.runtime.config import Settings
from smartcity.runtime.logs import get_logger
from smartcity.runtime.service import ServiceContext, ServiceParts, ServiceSpec
from smartcity.runtime.storage import StoreError
from smartcity.runtime.storage.urls import store_url as default_store_url
from smartcity.runtime.subjects import identity_subject
from smartcity.services.identity.audit import Publisher, Recorder
from smartcity.services.identity.events import EventPublisher
from smartcity.services.identity.http import HttpEndpoint, application
from smartcity.services.identity.issuer import Lifetimes, TokenIssuer
from smartcity.services.identity.keys import KeyRing
from smartcity.services.identity.lockout import LockoutPolicy
from smartcity.services.identity.model import EventType
from smartcity.services.identity.passwords import PasswordPolicy, Passwords
from smartcity.services.identity.server import DEFAULT_PORT, SERVICE_NAME, servicer
from smartcity.services.identity.service import IdentityService
from smartcity.services.identity.store import open_store

__all__ = ["IDENTITY", "open_identity", "store_url"]

_log = get_logger(__name__)

OUTBOX_INTERVAL_SECONDS = 1.0


def store_url(settings: Settings) -> str:
    """The configured storage URL, or SQLite in the data folder."""
    return default_store_url(settings.identity.store_url, settings.data_dir, "identity")


def lifetimes(settings: Settings) -> Lifetimes:
    options = settings.identity
    # A service token must not outlive the revocation events that can cancel it.
    retention = settings.nats.streams.identity.max_age_seconds or options.service_token_max_seconds
    return Lifetimes(
        access=options.access_token_seconds,
        refresh=options.refresh_token_seconds,
        session=options.session_seconds,
        service_max=min(options.service_token_max_seconds, retention),
    )


@contextlib.asynccontextmanager
async def open_identity(
    settings: Settings,
    *,
    publisher: Publisher | None = None,
    clock: Callable[[], float] = time.time,
) -> AsyncIterator[IdentityService]:
    """The identity domain over the configured store, opened; the command line uses it
    directly (its events wait in the store until a running service publishes them)."""
    options = settings.identity
    store = open_store(store_url(settings))
    await store.open()
    try:
        passphrase = options.key_passphrase
        ring = KeyRing(passphrase.get_secret_value().encode() if passphrase else None)
        issuer = TokenIssuer(
            store,
            ring,
            lifetimes(settings),
            rotation_seconds=options.key_rotation_seconds,
            issuer=settings.auth.issuer,
            clock=clock,
        )
        yield IdentityService(
            store,
            issuer,
            Recorder(store, publisher, clock=clock),
            passwords=Passwords(
                time_cost=options.argon2_time_cost,
                memory_cost=options.argon2_memory_kib,
                parallelism=options.argon2_parallelism,
            ),
            password_policy=PasswordPolicy(min_length=options.password_min_length),
            lockout=LockoutPolicy(
                threshold=options.lockout_threshold,
                source_threshold=options.lockout_source_threshold,
                base_seconds=options.lockout_base_seconds,
                max_seconds=options.lockout_max_seconds,
                reset_seconds=options.lockout_reset_seconds,
            ),
            clock=clock,
        )
    finally:
        await store.close()


async def announce_keys(service: IdentityService) -> None:
    recorder = service.recorder
    await recorder.record(
        recorder.event(EventType.KEYS_ROTATED, jwks=service.issuer.ring.jwks_json())
    )


async def _key_loop(service: IdentityService, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            if await service.issuer.refresh_keys():
                await announce_keys(service)
            await service.store.purge(time.time())
        except StoreError as exc:
            _log.warning("key check failed; trying again at the next interval", error=str(exc))


async def _outbox_loop(service: IdentityService) -> None:
    while True:
        raise_if_cancelled()  # a publish may have swallowed the request to stop
        await asyncio.sleep(OUTBOX_INTERVAL_SECONDS)
        try:
            await service.recorder.flush()
        except StoreError as exc:
            _log.warning("pending identity events not read", error=str(exc))


@contextlib.asynccontextmanager
async def _setup(context: ServiceContext) -> AsyncIterator[ServiceParts]:
    settings = context.settings
    async with open_identity(settings, publisher=EventPublisher(context.bus)) as service:
        issuer = service.issuer
        await issuer.refresh_keys()
        await issuer.load_revocations()
        await announce_keys(service)
        options = settings.identity
        http = HttpEndpoint(
            application(issuer, options.public_url), options.http_host, options.http_port
        )

        async def reload(msg: Msg) -> None:
            # Another replica (or the command line, through the outbox) changed keys or
            # revoked tokens; the store has it.
            try:
                if msg.subject == identity_subject(EventType.KEYS_ROTATED.value):
                    await issuer.refresh_keys()
                else:
                    await issuer.load_revocations()
            except StoreError as exc:
                _log.warning("cannot reload after an identity event", error=str(exc))

        subscriptions = [
            await context.bus.subscribe(identity_subject(kind.value), cb=reload)
            for kind in (EventType.KEYS_ROTATED, EventType.TOKEN_REVOKED)
        ]

        async def storage() -> str | None:
            try:
                await service.store.ping()
            except StoreError as exc:
                return str(exc)
            return None

        try:
            yield ServiceParts(
                registrations=[servicer(service, frozenset(options.trusted_proxies))],
                service_names=[SERVICE_NAME],
                tasks={
                    "keys": lambda: _key_loop(service, options.key_check_interval_seconds),
                    "outbox": lambda: _outbox_loop(service),
                    "http": http.serve,
                },
                checks={"storage": storage},
                on_stop=http.close,
                details={"storage": service.store.url, "http": http.url},
                verifier=issuer.verifier,
            )
        finally:
            http.close()
            for subscription in subscriptions:
                with contextlib.suppress(Exception):
                    await subscription.unsubscribe()


IDENTITY = ServiceSpec(name="identity", default_port=DEFAULT_PORT, setup=_setup)
"""The identity service, for :func:`smartcity.runtime.service.run_service`."""
