"""Opening an OPC-UA session: the endpoint with the profile's security policy and mode, the
server authenticated before the user's credentials are sent (its certificate pinned, in the
trust list, or trusted on first use: :mod:`~smartcity.agents.opcua.trust`), an identity the
endpoint takes and that never crosses the network in clear text, and the server's operation
limits, to which every later request is sized (:func:`batched`).

A :class:`Session` also records why it was lost when the transport drops, for the driver to
drop it and open a new one (:mod:`~smartcity.agents.opcua.driver`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import structlog
from asyncua import Client, ua
from asyncua.client.ua_client import UaClientState
from asyncua.crypto import security_policies

from smartcity.agents.opcua.certificates import CertificateError, application_uri_of
from smartcity.agents.opcua.errors import OpcuaConnectError, explain
from smartcity.agents.opcua.trust import ServerIdentity, ServerTrust
from smartcity.agents.profile import OpcuaDevice

# one logger for the driver and the parts it is made of
log = structlog.get_logger("smartcity.agents.opcua.driver")

DEFAULT_ITEMS_PER_CALL = 500
"""Monitored items per CreateMonitoredItems call when the server does not publish a limit."""
SESSION_TIMEOUT_MS = 60_000
"""How long a server keeps the session of an agent that vanished without closing it."""

_T = TypeVar("_T")
_R = TypeVar("_R")

_MODES = {
    "None": ua.MessageSecurityMode.None_,
    "Sign": ua.MessageSecurityMode.Sign,
    "SignAndEncrypt": ua.MessageSecurityMode.SignAndEncrypt,
}
_POLICIES: dict[str, type[security_policies.SecurityPolicy]] = {
    "None": security_policies.SecurityPolicyNone,
    "Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256,
}


@dataclass
class Session:
    """An open session, sized to the server's limits; ``lost`` says why it no longer works."""

    client: Client
    read_chunk: int
    items_per_call: int
    lost: str | None = None


async def connect_client(device: OpcuaDevice) -> tuple[Client, ServerIdentity | None]:
    """A client logged in to ``device``'s server, and the certificate the server was accepted
    with (None with security policy None). Raises :class:`OpcuaConnectError` with the reason."""
    security = device.security
    client = Client(device.endpoint, timeout=device.timeout, watchdog_intervall=device.timeout)
    client.session_timeout = SESSION_TIMEOUT_MS
    client.name = f"smartcity agent {device.site}/{device.device}"
    client.description = client.name
    client.product_uri = "urn:smartcity:agent"
    mode = _MODES[security.mode]
    policy = _POLICIES[security.policy]
    trust = None
    if security.policy != "None":
        trust = client.certificate_validator = ServerTrust(
            device.endpoint,
            folder=security.trust_folder,
            pinned=security.server_cert,
            first_use=security.trust_on_first_use,
        )
    try:
        endpoints = await client.connect_and_get_server_endpoints()
        offered = [
            ep for ep in endpoints if ep.SecurityPolicyUri == policy.URI and ep.SecurityMode == mode
        ]
        if not offered:
            raise OpcuaConnectError(
                f"{device.endpoint} offers no endpoint with security policy "
                f"{security.policy} and mode {security.mode}; it offers "
                f"{_describe(endpoints)}"
            )
        _check_identity(device, offered[0], mode)
        if security.policy != "None":
            assert security.cert is not None  # the profile model enforces both
            assert security.key is not None
            # the channel is encrypted to this certificate; ServerTrust judges it
            server_cert = _first_certificate(offered[0].ServerCertificate)
            client.application_uri = application_uri_of(security.cert)
            await client.set_security(
                policy,
                certificate=str(security.cert),
                private_key=str(security.key),
                server_certificate=server_cert,
                mode=mode,
            )
        if security.username is not None and security.password is not None:
            client.set_user(security.username)
            client.set_password(security.password)
        await client.connect()
    except OpcuaConnectError:
        await close_client(client, device.timeout)
        raise
    except CertificateError as exc:
        await close_client(client, device.timeout)
        raise OpcuaConnectError(str(exc)) from None
    except ValueError as exc:  # cryptography cannot load the certificate or key
        await close_client(client, device.timeout)
        raise OpcuaConnectError(
            f"cannot use the agent certificate {security.cert} or key {security.key}: {exc}"
        ) from None
    except Exception as exc:
        await close_client(client, device.timeout)
        if trust is not None and trust.refusal is not None:
            raise OpcuaConnectError(trust.refusal) from None
        raise OpcuaConnectError(explain(exc, device)) from None
    identity = trust.accepted if trust is not None else None
    if identity is not None and identity.first_use:
        log.warning(
            "opcua server trusted on first use",
            device=device.device,
            endpoint=device.endpoint,
            thumbprint=identity.thumbprint,
            subject=identity.subject,
            stored=identity.trusted_by,
        )
    return client, identity


async def start_session(client: Client, device: OpcuaDevice) -> Session:
    """The session of a logged-in client, sized to the server's operation limits."""
    security = device.security
    session = Session(client, read_chunk=device.max_nodes_per_read, items_per_call=0)
    client.connection_lost_callback = _on_lost(session)
    try:
        max_read, max_items = await server_limits(client)
    except Exception as exc:
        await close_client(client, device.timeout)
        raise OpcuaConnectError(explain(exc, device)) from None
    if max_read:
        session.read_chunk = min(session.read_chunk, max_read)
    session.items_per_call = max_items or DEFAULT_ITEMS_PER_CALL
    log.info(
        "opcua session open",
        device=device.device,
        endpoint=device.endpoint,
        policy=security.policy,
        mode=security.mode,
        read_chunk=session.read_chunk,
        items_per_call=session.items_per_call,
    )
    return session


async def server_limits(client: Client) -> tuple[int, int]:
    """MaxNodesPerRead and MaxMonitoredItemsPerCall; 0 where the server sets no limit
    or does not say."""
    limits = ua.ObjectIds
    params = ua.ReadParameters(
        NodesToRead=[
            ua.ReadValueId(NodeId=ua.NodeId(node), AttributeId=ua.AttributeIds.Value)
            for node in (
                limits.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead,
                limits.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall,
            )
        ]
    )
    values = await client.uaclient.read(params)
    found = []
    for value in values:
        ok = value.StatusCode is None or value.StatusCode.is_good()
        number = value.Value.Value if ok and value.Value is not None else None
        found.append(number if isinstance(number, int) and number > 0 else 0)
    return found[0], found[1]


async def close_client(client: Client, within: float) -> None:
    """Disconnect, giving up after ``within`` seconds; a failure to say goodbye is no error."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.disconnect(), within)


async def batched(
    items: Sequence[_T],
    size: int,
    call: Callable[[Sequence[_T]], Awaitable[list[_R]]],
) -> list[_R]:
    """``call`` on consecutive slices of at most ``size`` items, concatenated in order. A
    server that answers BadTooManyOperations gets the same items in halves."""
    results: list[_R] = []
    start = 0
    while start < len(items):
        batch = items[start : start + size]
        try:
            results.extend(await call(batch))
        except ua.UaStatusCodeError as exc:
            if exc.code != ua.StatusCodes.BadTooManyOperations or size == 1:
                raise
            size = max(1, size // 2)
            continue
        start += len(batch)
    return results


def _check_identity(
    device: OpcuaDevice, endpoint: ua.EndpointDescription, mode: ua.MessageSecurityMode
) -> None:
    """Refuse, before logging in, an identity the endpoint does not take, and a password
    that would cross the network in clear text."""
    tokens = {token.TokenType: token for token in endpoint.UserIdentityTokens or []}
    if device.security.username is None:
        if ua.UserTokenType.Anonymous not in tokens:
            raise OpcuaConnectError(
                f"{device.endpoint} does not accept anonymous logins; set security.username "
                "and security.password"
            )
        return
    token = tokens.get(ua.UserTokenType.UserName)
    if token is None:
        raise OpcuaConnectError(f"{device.endpoint} does not accept user name logins")
    token_policy = token.SecurityPolicyUri or endpoint.SecurityPolicyUri
    if (
        token_policy == security_policies.SecurityPolicyNone.URI
        and mode != ua.MessageSecurityMode.SignAndEncrypt
    ):
        raise OpcuaConnectError(
            f"{device.endpoint} would receive the password in clear text (neither the channel "
            "nor the user token is encrypted); use Basic256Sha256 with SignAndEncrypt"
        )


def alive(client: Client) -> bool:
    return client.state is UaClientState.CONNECTED


def _on_lost(session: Session) -> Callable[[Exception], Awaitable[None]]:
    async def lost(exc: Exception) -> None:
        detail = str(exc) or type(exc).__name__
        session.lost = detail if "transport lost" in detail else f"transport lost: {detail}"

    return lost


def _describe(endpoints: Iterable[ua.EndpointDescription]) -> str:
    found = sorted(
        {
            f"{ep.SecurityPolicyUri.rsplit('#', 1)[-1]}/{ep.SecurityMode.name.rstrip('_')}"
            for ep in endpoints
        }
    )
    return ", ".join(found) if found else "no endpoint at all"


def _first_certificate(der: bytes | None) -> bytes:
    """The leading certificate of a DER chain (servers may send theirs with its issuers)."""
    if not der:
        raise OpcuaConnectError("the server offers a secure endpoint without a certificate")
    if der[1] & 0x80:
        width = der[1] & 0x7F
        length = int.from_bytes(der[2 : 2 + width], "big") + 2 + width
    else:
        length = der[1] + 2
    return der[:length]
