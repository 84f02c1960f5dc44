"""What goes wrong with an OPC-UA server, in an engineer's words: a session that could not
be opened (:class:`OpcuaConnectError`), a session that stopped working
(:class:`SessionLostError`), and a library exception turned into a sentence about the device
(:func:`explain`), e.g. a refused user or an agent certificate the server does not trust.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from asyncua import ua

from smartcity.agents.driver import DeviceUnreachableError
from smartcity.agents.opcua.status import status_name
from smartcity.agents.profile import OpcuaDevice


class OpcuaConnectError(DeviceUnreachableError):
    """No session could be opened; the message says why in an engineer's words."""


class SessionLostError(Exception):
    """The session stopped working; the message is the reason."""


_HINTS = {
    ua.StatusCodes.BadUserAccessDenied: "the server refused the user {user}: wrong user name or "
    "password, or the user may not log in",
    ua.StatusCodes.BadIdentityTokenRejected: "the server does not accept {identity} logins",
    ua.StatusCodes.BadIdentityTokenInvalid: "the server does not accept {identity} logins",
    ua.StatusCodes.BadCertificateUntrusted: "the server does not trust the agent certificate "
    "{cert}: add it to the server's trusted certificates",
    ua.StatusCodes.BadSecurityChecksFailed: "the server rejected the agent certificate {cert} "
    "(is it trusted by the server, and does its application URI match?)",
    ua.StatusCodes.BadCertificateUriInvalid: "the application URI in the agent certificate "
    "{cert} is not accepted by the server",
    ua.StatusCodes.BadCertificateTimeInvalid: "the agent certificate {cert} has expired or is "
    "not yet valid",
    ua.StatusCodes.BadSecurityPolicyRejected: "the server rejected security policy {policy}",
    ua.StatusCodes.BadTooManySessions: "the server has no room for another session",
}


def explain(exc: BaseException, device: OpcuaDevice) -> str:
    """Turn a library exception into a sentence about the device."""
    parts = urlsplit(device.endpoint)
    where = f"{parts.hostname}:{parts.port or 4840}"
    security = device.security
    if isinstance(exc, ua.UaStatusCodeError):
        name = status_name(exc.code)
        hint = _HINTS.get(exc.code)
        if hint is None:
            return f"{name} from {device.endpoint}"
        text = hint.format(
            user=repr(security.username) if security.username else "(anonymous)",
            identity="user name" if security.username else "anonymous",
            cert=security.cert,
            policy=security.policy,
        )
        return f"{text} ({name})"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused by {where}"
    if isinstance(exc, TimeoutError):
        return f"no answer from {where} within {device.timeout:g}s"
    if isinstance(exc, ConnectionError) and str(exc):
        return f"{where}: {exc}"
    if isinstance(exc, OSError):
        return f"cannot reach {where}: {exc.strerror or exc}"
    if isinstance(exc, ua.UaError) and "certificate mismatch" in str(exc).lower():
        return f"{device.endpoint} changed its certificate during the handshake"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
