"""Connecting to NATS: the servers, the user's credentials and inbox, and what a refusal or
a lost connection looks like in the log.

:meth:`smartcity.runtime.bus.Bus.connect` is :func:`connect_client` wrapped in a
:class:`~smartcity.runtime.bus.Bus`. Credentials and the reading of the server's refusals
are :mod:`smartcity.runtime.nats_auth.credentials`'s.
"""

from __future__ import annotations

import asyncio

import nats.errors
import structlog
from nats.aio.client import Client

from smartcity.runtime.bus_errors import BusError
from smartcity.runtime.config import NatsSettings
from smartcity.runtime.nats_auth.credentials import (
    CredentialsError,
    Refusals,
    connect_refusal,
    inbox_prefix,
    resolve_credentials,
)

# Logged under the bus's own name, as every event of the bus is, whichever module of it
# logs: an operator filters the bus's events by one logger name.
_log = structlog.stdlib.get_logger("smartcity.runtime.bus")


async def connect_client(
    settings: NatsSettings, *, name: str, url: str | None = None
) -> tuple[Client, Refusals]:
    """A client connected to ``url`` (default ``settings.url``) as ``settings``' user, and
    the record of the server's refusals on that connection; see
    :meth:`smartcity.runtime.bus.Bus.connect` for what is promised."""
    servers = url or settings.url
    if not servers:
        raise BusError(
            "no NATS server to connect to: set nats.url (SMARTCITY_NATS__URL) "
            "or start the embedded server"
        )
    try:
        credentials = resolve_credentials(settings)
    except CredentialsError as exc:
        raise BusError(str(exc)) from None
    user = credentials.user if credentials is not None else None
    log = _log.bind(connection=name, user=user)
    nc = Client()
    errors: list[Exception] = []
    refusals = Refusals(user)
    connecting: list[asyncio.Timeout] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)
        refused = refusals.record(exc) or connect_refusal(user, servers, exc)
        if refused is None:
            log.warning("nats_error", error=str(exc) or type(exc).__name__)
            return
        log.warning("nats_refused", error=refused)
        if connecting and not nc.is_connected:
            # Retrying the same credentials cannot succeed: give up at once.
            connecting[0].reschedule(asyncio.get_running_loop().time())

    async def on_disconnected() -> None:
        if not nc.is_closed:  # closing says so itself
            log.warning("nats_disconnected")

    async def on_reconnected() -> None:
        log.info("nats_reconnected", url=_connected_url(nc))

    async def on_closed() -> None:
        log.info("nats_closed")

    timeout = settings.connect_timeout_seconds
    try:
        async with asyncio.timeout(timeout) as deadline:
            connecting.append(deadline)
            await nc.connect(
                servers=[server.strip() for server in servers.split(",")],
                name=name,
                connect_timeout=timeout,
                max_reconnect_attempts=settings.max_reconnect_attempts,
                reconnect_time_wait=settings.reconnect_wait_seconds,
                error_cb=on_error,
                disconnected_cb=on_disconnected,
                reconnected_cb=on_reconnected,
                closed_cb=on_closed,
                user=user,
                password=credentials.password if credentials is not None else None,
                # Replies to this user's requests arrive under its own inbox prefix,
                # the only part of _INBOX its permissions let it read.
                inbox_prefix=inbox_prefix(user),
            )
    except (TimeoutError, OSError, nats.errors.Error) as exc:
        await nc.close()
        cause = errors[-1] if errors else exc
        refusal = (connect_refusal(user, servers, error) for error in [*errors, exc])
        refused = next((sentence for sentence in refusal if sentence is not None), None)
        if refused is not None:
            raise BusError(refused) from exc
        reason = str(cause) or type(cause).__name__
        raise BusError(
            f"cannot connect to NATS at {servers} within {timeout:g} s: {reason}"
        ) from exc
    finally:
        connecting.clear()
    log.info("nats_connected", url=_connected_url(nc))
    return nc, refusals


def _connected_url(nc: Client) -> str | None:
    url = nc.connected_url
    return url.geturl() if url is not None else None
